/**
 * The price book and what it makes of usage: spend and monthly invoices.
 *
 * Money is integer micro-units of a currency (bigint here, decimal strings
 * on the API), never a float. A price starts on a whole UTC hour, the
 * current one at the earliest, so every hourly rollup has exactly one price
 * and usage of earlier hours keeps the price it had. A price starting in the
 * current hour prices that whole hour, including what it already recorded:
 * every reader (invoice, spend, usage summaries, the CSV) prices by the
 * hour, so they all agree at once; the money-budget counters, which charged
 * that hour's requests at admission, are dropped and rebuilt from this spend
 * (see setPrice). Amounts are computed in Postgres numeric (units × price
 * per hour, summed), so a line is exact and a total is the exact sum of its
 * lines.
 */
import type { Database } from '../db/database';
import type { Price, Prisma, Tenant } from '../db/generated/client';
import { BadInputError, ForbiddenError, NotFoundError } from '../errors';
import type { Principal } from '../auth/principal';
import { hasScope, isAdminKey, requireScope } from '../auth/scopes';
import { auditActor } from '../auth/actor';
import { UUID } from '../ids/ids';

const HOUR_MS = 3_600_000;
const CURRENCY = /^[A-Z]{3}$/;
/** 10^15 micro-units (a billion per unit in a 3-decimal currency): far above any real price, far below numeric limits. */
const MAX_MICROS = 10n ** 15n;

export interface SetPriceInput {
  model: string;
  /** Tenant id or name; absent: the list price. */
  tenant?: string | null;
  currency: string;
  /** Micro-units per compute unit, as a decimal integer string. */
  unitPriceMicros: string;
  effectiveFrom: Date;
}

export interface InvoiceLine {
  model: string;
  currency: string | null;
  /** null: no price was in effect (the units are listed, the amount is 0). */
  unitPriceMicros: bigint | null;
  units: bigint;
  amountMicros: bigint;
  /** The hours this line covers: [from, to). */
  from: Date;
  to: Date;
}

export interface Invoice {
  tenantId: string;
  tenantName: string;
  month: string;
  from: Date;
  to: Date;
  lines: InvoiceLine[];
  /** One per currency: the exact sum of that currency's lines. */
  totals: { currency: string; amountMicros: bigint }[];
  unpricedUnits: bigint;
}

/** What the price rule reads of a price row. */
export interface PriceRow {
  model: string;
  tenantId: string | null;
  effectiveFrom: Date;
}

/**
 * The price rule, once in JavaScript (priceLateral is the same rule in SQL):
 * of `prices`, the tenant's own price of the model first, else the list
 * price, the latest that started at or before the UTC hour holding `at`.
 * `prices` may hold other tenants' and models' rows: they never match.
 */
export function priceInEffect<P extends PriceRow>(prices: readonly P[], tenantId: string, model: string, at: Date): P | null {
  const hour = Math.floor(at.getTime() / HOUR_MS) * HOUR_MS;
  let own: P | null = null;
  let list: P | null = null;
  for (const p of prices) {
    if (p.model !== model || p.effectiveFrom.getTime() > hour) continue;
    if (p.tenantId === tenantId) {
      if (!own || p.effectiveFrom > own.effectiveFrom) own = p;
    } else if (p.tenantId === null && (!list || p.effectiveFrom > list.effectiveFrom)) list = p;
  }
  return own ?? list;
}

/**
 * SQL for the price of `"model"` for `"tenantId"` at the hour `hourExpr`
 * (columns of the row alias `src`): a tenant's own price first, else the
 * list price; the latest that started at or before that hour.
 */
export function priceLateral(src: string, hourExpr: string): string {
  return `LEFT JOIN LATERAL (
      SELECT p."currency" AS p_currency, p."microsPerUnit" AS p_micros FROM "Price" p
      WHERE p."model" = ${src}."model" AND (p."tenantId" = ${src}."tenantId" OR p."tenantId" IS NULL) AND p."effectiveFrom" <= ${hourExpr}
      ORDER BY (p."tenantId" IS NULL), p."effectiveFrom" DESC LIMIT 1) price ON true`;
}

/**
 * SQL for the money of the rows of alias `src` priced by priceLateral, in
 * micro-units: each row's whole units (rounded, as billed) × its hour's price.
 * One rule for invoices, spend, usage summaries and budget thresholds.
 */
export function amountMicrosSql(src: string): string {
  return `coalesce(sum(round(${src}."computeUnits")::numeric * price.p_micros), 0)`;
}

/** How long a replica trusts its cached price history of one (tenant, model); see priceAt. */
export const PRICE_CACHE_MS = 30_000;

interface CachedPrices {
  /** Tenant prices first, then list prices; each newest first. */
  rows: Price[];
  fetchedAt: number;
}

/** Where the money-budget counters are held (the rate-limit service): forgotten when a price reprices the current hour. */
export interface SpendCounters {
  /** Drops this month's money-budget counters of a tenant (null: of every tenant); never throws. */
  resetSpend(tenantId: string | null): Promise<void>;
}

export class PriceBook {
  /** Price histories by tenant and model, for admission (money budgets). */
  private readonly cache = new Map<string, CachedPrices>();

  constructor(
    private readonly db: Database,
    /** Injectable for tests that build a price history. */
    private readonly now: () => number = Date.now,
    private readonly spendCounters: SpendCounters | null = null,
  ) {}

  /**
   * The price of one compute unit of `model` for the tenant at `at`: the
   * tenant's own price first, else the list price, the latest started at or
   * before `at` (the rule priceLateral applies to invoices). The history is
   * cached for PRICE_CACHE_MS per (tenant, model): the answer changes exactly
   * at a price's effective hour from the cache, and a price set on another
   * replica is seen within PRICE_CACHE_MS (prices start on a future whole
   * hour, so one set that far ahead applies exactly on time everywhere).
   */
  async priceAt(tenantId: string, model: string, at: Date): Promise<{ currency: string; microsPerUnit: number } | null> {
    const key = `${tenantId}|${model}`;
    const nowMs = this.now();
    let cached = this.cache.get(key);
    if (!cached || nowMs - cached.fetchedAt >= PRICE_CACHE_MS) {
      const rows = await this.db.prisma.price.findMany({
        where: { model, OR: [{ tenantId }, { tenantId: null }] },
        orderBy: { effectiveFrom: 'desc' },
        take: 200,
      });
      cached = { rows, fetchedAt: nowMs };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, cached);
    }
    const hit = priceInEffect(cached.rows, tenantId, model, at);
    return hit ? { currency: hit.currency, microsPerUnit: Number(hit.microsPerUnit) } : null;
  }

  /**
   * What one metered request cost: its whole units × the price in effect at
   * its hour (the invoice's rule), read fresh from Postgres, once per
   * (tenant, model) for the lifetime of `memo` (one GraphQL request); null
   * when it was not OK, billed nothing, or had no price.
   */
  async recordAmount(
    record: { tenantId: string; model: string; status: string; computeUnits: number; createdAt: Date },
    memo: Map<string, Promise<Price[]>>,
  ): Promise<{ currency: string; amountMicros: bigint } | null> {
    if (record.status !== 'OK' || record.computeUnits <= 0) return null;
    const key = `${record.tenantId}|${record.model}`;
    let history = memo.get(key);
    if (!history) {
      history = this.db.prisma.price.findMany({ where: { model: record.model, OR: [{ tenantId: record.tenantId }, { tenantId: null }] }, orderBy: { effectiveFrom: 'desc' } });
      memo.set(key, history);
    }
    const price = priceInEffect(await history, record.tenantId, record.model, record.createdAt);
    return price ? { currency: price.currency, amountMicros: BigInt(Math.round(record.computeUnits)) * price.microsPerUnit } : null;
  }

  /**
   * Micro-units of `currency` spent by a tenant (or one of its keys) in
   * [from, to): the invoice's own sum (hourly rollups × the price in effect
   * that hour, in Postgres numeric), so a rebuilt money-budget counter equals
   * what the invoice says. Lines priced in another currency, and unpriced
   * units, add nothing.
   */
  async spendMicros(tenantId: string, from: Date, to: Date, currency: string, apiKeyId?: string): Promise<number> {
    const rows = await this.db.prismaEvenIfDown.$queryRawUnsafe<{ amount: string }[]>(
      `SELECT ${amountMicrosSql('h')}::text AS amount
         FROM "UsageHourly" h ${priceLateral('h', 'h."hour"')}
        WHERE h."tenantId" = $1::uuid AND h."hour" >= $2 AND h."hour" < $3 AND h."status" = 'OK' AND h."computeUnits" > 0
          AND price.p_currency = $4${apiKeyId ? ` AND h."apiKeyId" = $5::uuid` : ''}`,
      tenantId,
      from,
      to,
      currency,
      ...(apiKeyId ? [apiKeyId] : []),
    );
    return Number(rows[0]?.amount ?? 0);
  }

  async setPrice(principal: Principal | null, input: SetPriceInput): Promise<Price> {
    requireAdmin(principal);
    const model = input.model.trim();
    if (model.length < 1 || model.length > 200) throw new BadInputError('model must be 1-200 characters', 'model');
    const currency = input.currency.trim().toUpperCase();
    if (!CURRENCY.test(currency)) throw new BadInputError('currency must be an ISO 4217 code such as USD', 'currency');
    if (!/^\d{1,16}$/.test(input.unitPriceMicros)) throw new BadInputError('unitPriceMicros must be a whole number of micro-units, as a string', 'unitPriceMicros');
    const micros = BigInt(input.unitPriceMicros);
    if (micros > MAX_MICROS) throw new BadInputError(`unitPriceMicros must be at most ${MAX_MICROS}`, 'unitPriceMicros');
    const at = input.effectiveFrom.getTime();
    if (Number.isNaN(at) || at % HOUR_MS !== 0) throw new BadInputError('effectiveFrom must be a whole UTC hour (e.g. 2026-12-01T00:00:00Z)', 'effectiveFrom');
    // Earlier hours are invoiced as they were priced; the current hour is still open.
    const currentHour = Math.floor(this.now() / HOUR_MS) * HOUR_MS;
    if (at < currentHour) throw new BadInputError('effectiveFrom must be the current whole UTC hour or a later one: usage of earlier hours keeps the price it had', 'effectiveFrom');
    const price = await this.db.prisma.$transaction(async (tx) => {
      const tenantId = input.tenant ? (await findTenant(tx, input.tenant)).id : null;
      // One price per (model, tenant, start): serialize writers of the same model.
      await tx.$queryRawUnsafe('SELECT pg_advisory_xact_lock(727017, hashtext($1))::text', model);
      const clash = await tx.price.findFirst({ where: { model, tenantId, effectiveFrom: input.effectiveFrom } });
      if (clash) throw new BadInputError('A price for this model and tenant already starts at that hour', 'effectiveFrom');
      const actor = auditActor({ principal });
      const price = await tx.price.create({
        data: { model, tenantId, currency, microsPerUnit: micros, effectiveFrom: input.effectiveFrom, createdBy: actor.actor },
      });
      await tx.auditEvent.create({
        data: {
          ...actor,
          action: 'price.set',
          targetType: 'Price',
          targetId: price.id,
          tenantId,
          after: priceView(price),
        },
      });
      return price;
    }).finally(() => this.cache.clear());
    if (at === currentHour) await this.repriceCurrentHour(price.tenantId);
    return price;
  }

  /**
   * After a price for the current hour: the money-budget counters charged
   * this hour's requests at the old price, so they are dropped and rebuilt
   * from the spend, which prices the whole hour at the new one. Dropped again
   * once PRICE_CACHE_MS has passed: other replicas may have admitted requests
   * at the old price until their cached price history expired.
   */
  private async repriceCurrentHour(tenantId: string | null): Promise<void> {
    if (!this.spendCounters) return;
    const counters = this.spendCounters;
    await counters.resetSpend(tenantId);
    setTimeout(() => void counters.resetSpend(tenantId), PRICE_CACHE_MS + 1000).unref();
  }

  async listPrices(principal: Principal, filter: { model?: string | null; tenant?: string | null }): Promise<Price[]> {
    const tenantId = filter.tenant ? (await findTenant(this.db.prisma, filter.tenant)).id : null;
    // Non-admins see the list prices and their own tenant's.
    if (!isAdminKey(principal) && tenantId && tenantId !== principal.tenantId) throw new ForbiddenError('usage:read reads only its own tenant');
    const own = isAdminKey(principal) ? tenantId : (tenantId ?? principal.tenantId);
    const where: Prisma.PriceWhereInput = {
      ...(filter.model ? { model: filter.model } : {}),
      ...(own ? { OR: [{ tenantId: own }, { tenantId: null }] } : isAdminKey(principal) ? {} : { tenantId: null }),
    };
    return this.db.prisma.price.findMany({ where, orderBy: [{ model: 'asc' }, { effectiveFrom: 'asc' }, { id: 'asc' }], take: 1000 });
  }

  /** node(id) for a price, read as `prices` reads: usage:read sees list prices and its own tenant's, admin every one. */
  async priceById(principal: Principal, id: string): Promise<Price | null> {
    if (!hasScope(principal, 'usage:read') || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return null;
    const price = await this.db.prisma.price.findUnique({ where: { id } });
    if (!price) return null;
    return isAdminKey(principal) || price.tenantId === null || price.tenantId === principal.tenantId ? price : null;
  }

  /** The statement of one tenant for one calendar month (UTC, "YYYY-MM"). */
  async invoice(principal: Principal | null, tenantRef: string, month: string): Promise<Invoice> {
    const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
    if (!m) throw new BadInputError('month must be YYYY-MM', 'month');
    const tenant = await findTenant(this.db.prisma, tenantRef);
    if (principal && !isAdminKey(principal) && principal.tenantId !== tenant.id) throw new ForbiddenError('usage:read reads only its own tenant');
    const from = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
    const to = new Date(Date.UTC(Number(m[1]), Number(m[2]), 1));
    // Hourly rollups hold every stored record (same statement); only OK requests carry units.
    const rows = await this.db.prisma.$queryRawUnsafe<
      { model: string; currency: string | null; micros: string | null; units: string; amount: string; first: Date; last: Date }[]
    >(
      `SELECT h."model", price.p_currency AS currency, price.p_micros::text AS micros,
              sum(round(h."computeUnits")::numeric)::text AS units,
              ${amountMicrosSql('h')}::text AS amount,
              min(h."hour") AS first, max(h."hour") AS last
         FROM "UsageHourly" h ${priceLateral('h', 'h."hour"')}
        WHERE h."tenantId" = $1::uuid AND h."hour" >= $2 AND h."hour" < $3 AND h."status" = 'OK' AND h."computeUnits" > 0
        GROUP BY 1, 2, 3
        ORDER BY 1, min(h."hour")`,
      tenant.id,
      from,
      to,
    );
    const lines: InvoiceLine[] = rows.map((r) => ({
      model: r.model,
      currency: r.currency,
      unitPriceMicros: r.micros === null ? null : BigInt(r.micros),
      units: BigInt(r.units),
      amountMicros: BigInt(r.amount),
      from: r.first,
      to: new Date(r.last.getTime() + HOUR_MS),
    }));
    const totals = new Map<string, bigint>();
    let unpricedUnits = 0n;
    for (const line of lines) {
      if (line.currency === null) unpricedUnits += line.units;
      else totals.set(line.currency, (totals.get(line.currency) ?? 0n) + line.amountMicros);
    }
    return {
      tenantId: tenant.id,
      tenantName: tenant.name,
      month,
      from,
      to,
      lines,
      totals: [...totals].sort(([a], [b]) => (a < b ? -1 : 1)).map(([currency, amountMicros]) => ({ currency, amountMicros })),
      unpricedUnits,
    };
  }
}

/** Micro-units as a decimal amount ("12.345678"), for people; the micro figure stays the exact one. */
export function formatMicros(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / 1_000_000n;
  const frac = (abs % 1_000_000n).toString().padStart(6, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

export function priceView(p: Price): Prisma.InputJsonObject {
  return { id: p.id, model: p.model, tenantId: p.tenantId, currency: p.currency, microsPerUnit: p.microsPerUnit.toString(), effectiveFrom: p.effectiveFrom.toISOString() };
}

function requireAdmin(principal: Principal | null): void {
  if (principal) requireScope(principal, 'admin');
}

/** A tenant by id or name (a name that looks like a UUID is found too); NOT_FOUND otherwise. */
export async function findTenant(db: Pick<Prisma.TransactionClient, 'tenant'>, ref: string): Promise<Tenant> {
  const trimmed = ref.trim();
  const tenant = UUID.test(trimmed)
    ? await db.tenant.findFirst({ where: { OR: [{ id: trimmed }, { name: trimmed }] } })
    : await db.tenant.findUnique({ where: { name: trimmed } });
  if (!tenant) throw new NotFoundError(`Unknown tenant "${trimmed}"`, { tenant: trimmed });
  return tenant;
}
