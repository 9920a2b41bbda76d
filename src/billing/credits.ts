/**
 * Credit balances (issue #17): compute units a key or tenant may still use,
 * optionally reset to a refill amount at each UTC day or month, plus one-off
 * top-ups recorded in the CreditGrant ledger. The live balance is held by
 * the limiter (Redis, checked in the same atomic script as every other
 * limit); Postgres holds what rebuilds it:
 *
 *   balance = refill amount (if any) + grants since the period began
 *             − compute units billed since the period began,
 *
 * where the period begins at the last refill boundary, or when credits were
 * configured if that is later (without refill: when credits were configured).
 */
import type { Database } from '../db/database';
import type { ApiKey, Tenant } from '../db/generated/client';
import { BadInputError, NotFoundError } from '../errors';
import type { CreditsConfig, Principal } from '../auth/principal';
import { creditsOf } from '../auth/principal-from-rows';
import { requireScope } from '../auth/scopes';
import { auditActor } from '../auth/actor';
import { billedUnitsBetween } from './billed-units';
import { findTenant } from './price-book';
import { UUID } from '../ids/ids';
import { isKeyStart } from '../ids/key-format';

/** One grant at most; a balance stays far below 2^53 (the limiter's counters are doubles). */
export const MAX_GRANT = 1_000_000_000;

/** Where the live balances are held (the rate-limit service). */
export interface CreditBalances {
  grantCredits(target: { tenantId: string; apiKeyId?: string }, credits: CreditsConfig, amount: number): Promise<number>;
}

export interface GrantCreditsInput {
  /** Tenant id or name. */
  tenant: string;
  /** A key of that tenant, by id or display prefix: its balance; absent: the tenant's. */
  apiKey?: string | null;
  amount: number;
  reason?: string | null;
}

export interface GrantResult {
  grantId: string;
  tenantId: string;
  apiKeyId: string | null;
  amount: number;
  /** The balance right after the grant. */
  balance: number;
}

/** The balance Postgres says a key (apiKeyId set) or tenant has: see the module comment. */
export async function creditBalanceFromLedger(db: Database, tenantId: string, apiKeyId: string | undefined, from: Date, to: Date, refill: number | null): Promise<number> {
  const rows = await db.prismaEvenIfDown.$queryRawUnsafe<{ granted: string }[]>(
    `SELECT coalesce(sum("amount"), 0)::text AS granted FROM "CreditGrant"
      WHERE "tenantId" = $1::uuid AND "apiKeyId" ${apiKeyId ? '= $4::uuid' : 'IS NULL'} AND "createdAt" >= $2::timestamptz AND "createdAt" < $3::timestamptz`,
    tenantId,
    from.toISOString(),
    to.toISOString(),
    ...(apiKeyId ? [apiKeyId] : []),
  );
  const granted = Number(rows[0]?.granted ?? 0);
  const used = await billedUnitsBetween(db, tenantId, from, to, apiKeyId);
  return (refill ?? 0) + granted - used;
}

export class CreditService {
  constructor(
    private readonly db: Database,
    private readonly balances: CreditBalances,
  ) {}

  /** Records a top-up (with its audit event, one transaction) and answers the new balance. Scope: admin. */
  async grant(principal: Principal | null, input: GrantCreditsInput): Promise<GrantResult> {
    if (principal) requireScope(principal, 'admin');
    if (!Number.isInteger(input.amount) || input.amount < 1 || input.amount > MAX_GRANT) {
      throw new BadInputError(`amount must be a whole number of compute units from 1 to ${MAX_GRANT}`, 'amount');
    }
    const reason = input.reason?.trim() || null;
    if (reason && reason.length > 500) throw new BadInputError('reason must be at most 500 characters', 'reason');
    const actor = auditActor({ principal });
    const { grant, credits } = await this.db.prisma.$transaction(async (tx) => {
      const tenant = await findTenant(tx, input.tenant);
      let key: ApiKey | null = null;
      if (input.apiKey) {
        const id = input.apiKey.trim();
        // By id or display prefix, like every other command that names a key; another tenant's key reads as unknown.
        if (UUID.test(id)) key = await tx.apiKey.findFirst({ where: { id, tenantId: tenant.id } });
        else if (isKeyStart(id)) {
          const rows = await tx.apiKey.findMany({ where: { prefix: id.slice(0, 16), tenantId: tenant.id }, take: 2 });
          if (rows.length > 1) throw new BadInputError(`Prefix "${id}" matches more than one key; use the id`, 'apiKey');
          key = rows[0] ?? null;
        }
        if (!key) throw new NotFoundError('Unknown API key', { id });
      }
      const owner: ApiKey | Tenant = key ?? tenant;
      const credits = creditsOf(owner);
      if (!credits) {
        throw new BadInputError(`${key ? 'This key' : 'This tenant'} has no credit balance: configure credits (updateApiKey / updateTenant, credits) first`, key ? 'apiKey' : 'tenant');
      }
      const grant = await tx.creditGrant.create({ data: { tenantId: tenant.id, apiKeyId: key?.id ?? null, amount: input.amount, reason, actor: actor.actor } });
      await tx.auditEvent.create({
        data: {
          ...actor,
          action: 'credits.grant',
          targetType: key ? 'ApiKey' : 'Tenant',
          targetId: owner.id,
          tenantId: tenant.id,
          after: { grantId: grant.id, amount: input.amount, reason },
        },
      });
      return { grant, credits };
    });
    // After commit: a rebuild from the ledger then already includes this grant.
    const balance = await this.balances.grantCredits({ tenantId: grant.tenantId, ...(grant.apiKeyId ? { apiKeyId: grant.apiKeyId } : {}) }, credits, grant.amount);
    return { grantId: grant.id, tenantId: grant.tenantId, apiKeyId: grant.apiKeyId, amount: grant.amount, balance };
  }
}

