/**
 * Tenants and API keys: create, list, update, revoke, rotate, bootstrap.
 * Every change writes its AuditEvent in the same transaction, and changes
 * that must stop a key from working are broadcast to every gateway's cache
 * twice: a Postgres NOTIFY queued in the same transaction (delivered at
 * commit, needs no Redis) and a Redis publish after commit. Access rules
 * live here, not in resolvers: a caller without `admin` reaches only its own
 * tenant, never changes, rotates or revokes an admin key, never grants
 * `admin`, and only tightens a key's limits (operator-limits.ts).
 */
import type { Database } from '../db/database';
import { Prisma, type ApiKey, type AuditEvent, type Tenant } from '../db/generated/client';
import { BadInputError, ForbiddenError, NotFoundError } from '../errors';
import type { Logger } from '../log/logger';
import { SCOPES, type Scope } from '../auth/principal';
import { hasScope, isScope, missingScope } from '../auth/scopes';
import { actorLabel, auditActor, isAdmin, type Actor } from '../auth/actor';
import type { InvalidationTarget, KeyInvalidator } from '../auth/invalidation';
import { notifyInvalidation } from '../auth/pg-invalidation';
import { acceptedKeyWhere } from '../auth/key-status';
import { displayPrefix, generateKey, hashKey, isKeyStart, isWellFormedKey, type GeneratedKey, type KeyEnvironment } from '../ids/key-format';
import { afterCursor, pageSize, toPage, type Page, type PageArgs } from './pagination';
import { UUID } from '../ids/ids';
import { NO_LIMITS, operatorLimitsJson, readOperatorLimits, tightenOnly, type KeyLimitValues, type PerMinuteDefaults } from './operator-limits';

type Tx = Prisma.TransactionClient;

/** Who acts, for access checks and the audit trail. principal null: the CLI (operator at the database). */
/** Who is asking: a key through the API, or the CLI on the database (principal null). */
export type Caller = Actor;

export interface LimitOverrides {
  requestsPerMinute?: number | null;
  computeUnitsPerMinute?: number | null;
  /** A key's monthly compute-unit budget (keys only). */
  monthlyComputeUnitBudget?: number | null;
  /** A monthly money budget; null clears it. */
  monthlyBudget?: { amountMicros: string; currency: string } | null;
  /** A credit balance (refill both or neither); null removes it. */
  credits?: { refillAmount?: number | null; refillInterval?: 'DAILY' | 'MONTHLY' | null } | null;
}

/** Where live credit balances are held (the rate-limit service): a changed configuration drops the held balance so it is rebuilt. */
export interface CreditBalanceReset {
  resetCredits(target: { tenantId: string; apiKeyId?: string }): Promise<void>;
}

export interface CreateTenantInput extends LimitOverrides {
  name: string;
  monthlyComputeUnitQuota?: number | null;
}

export interface UpdateTenantInput extends LimitOverrides {
  status?: 'ACTIVE' | 'SUSPENDED';
  monthlyComputeUnitQuota?: number | null;
}

export interface CreateApiKeyInput extends LimitOverrides {
  /** Tenant id or name; defaults to the caller's own tenant. */
  tenant?: string | null;
  name: string;
  scopes: string[];
  allowedModels?: string[] | null;
  expiresAt?: Date | null;
  ttlSeconds?: number | null;
  environment?: KeyEnvironment;
}

/** Absent fields stay as they are; null clears (limits back to the default, expiry to never, metadata to none). */
export interface UpdateApiKeyInput extends LimitOverrides {
  name?: string;
  scopes?: string[];
  /** Empty: every model. */
  allowedModels?: string[];
  expiresAt?: Date | null;
  metadata?: Record<string, string> | null;
}

export interface CreatedKey {
  /** Shown once; never stored. */
  plaintext: string;
  apiKey: ApiKey;
}

export interface ListApiKeysFilter {
  tenant?: string | null;
  /** true: only revoked; false: only not revoked; absent: all. */
  revoked?: boolean | null;
}

/**
 * Where key events go inside the change's own transaction (the webhooks
 * outbox: a key.revoked event exists exactly when the revocation committed),
 * and a nudge once it committed.
 */
export interface KeyEventSink {
  keyRevoked(tx: Tx, key: ApiKey): Promise<void>;
  committed(): void;
}

const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MAX_GRACE_SECONDS = 30 * 24 * 3600;
/** The Postgres advisory lock both admin bootstraps take, so many processes at once create one key. */
const BOOTSTRAP_LOCK = 727001;

export class KeyService {
  constructor(
    private readonly db: Database,
    private readonly invalidator: KeyInvalidator,
    private readonly log: Logger,
    private readonly environment: KeyEnvironment = 'live',
    private readonly balances: CreditBalanceReset | null = null,
    private readonly events: KeyEventSink | null = null,
    /** The gateway's per-minute defaults: the ceiling of a keys:manage key's rate where no admin set one (null: only admins set rates). */
    private readonly perMinuteDefaults: PerMinuteDefaults | null = null,
  ) {}

  private get prisma() {
    return this.db.prisma;
  }

  // ---- tenants ------------------------------------------------------------

  async createTenant(caller: Caller, input: CreateTenantInput): Promise<Tenant> {
    this.requireAdmin(caller);
    const name = input.name.trim();
    if (!TENANT_NAME.test(name)) {
      throw new BadInputError('Tenant name must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit', 'name');
    }
    const data = {
      name,
      requestsPerMinute: limit(input.requestsPerMinute, 'requestsPerMinute'),
      computeUnitsPerMinute: limit(input.computeUnitsPerMinute, 'computeUnitsPerMinute'),
      monthlyComputeUnitQuota: limit(input.monthlyComputeUnitQuota, 'monthlyComputeUnitQuota', 0),
      ...moneyBudget(input.monthlyBudget),
      ...creditsData(input.credits, null),
    };
    try {
      return await this.prisma.$transaction(async (tx) => {
        const tenant = await tx.tenant.create({ data });
        await audit(tx, caller, 'tenant.create', 'Tenant', tenant.id, tenant.id, null, tenantView(tenant));
        return tenant;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new BadInputError(`Tenant "${name}" already exists`, 'name');
      throw error;
    }
  }

  async updateTenant(caller: Caller, ref: string, input: UpdateTenantInput): Promise<Tenant> {
    this.requireAdmin(caller);
    const data: Prisma.TenantUpdateInput = {};
    if (input.status !== undefined) data.status = input.status;
    if (input.requestsPerMinute !== undefined) data.requestsPerMinute = limit(input.requestsPerMinute, 'requestsPerMinute');
    if (input.computeUnitsPerMinute !== undefined) data.computeUnitsPerMinute = limit(input.computeUnitsPerMinute, 'computeUnitsPerMinute');
    if (input.monthlyComputeUnitQuota !== undefined) {
      data.monthlyComputeUnitQuota = limit(input.monthlyComputeUnitQuota, 'monthlyComputeUnitQuota', 0);
    }
    if (input.monthlyBudget !== undefined) Object.assign(data, moneyBudget(input.monthlyBudget));
    const updated = await this.prisma.$transaction(async (tx) => {
      const before = await findTenant(tx, ref);
      if (input.credits !== undefined) Object.assign(data, creditsData(input.credits, before.creditsSince));
      const currency = data.budgetCurrency as string | null | undefined;
      if (currency) {
        const other = await tx.apiKey.findFirst({ where: { tenantId: before.id, revokedAt: null, monthlyBudgetMicros: { not: null }, budgetCurrency: { not: currency } } });
        if (other?.budgetCurrency) throw currencyClash(currency, other.budgetCurrency, 'monthlyBudget');
      }
      const after = await tx.tenant.update({ where: { id: before.id }, data });
      await this.notify(tx, { tenantIds: [after.id] });
      await audit(tx, caller, input.status && input.status !== before.status ? `tenant.${input.status === 'SUSPENDED' ? 'suspend' : 'resume'}` : 'tenant.update', 'Tenant', after.id, after.id, tenantView(before), tenantView(after));
      return after;
    });
    if (input.credits !== undefined) await this.resetBalance({ tenantId: updated.id });
    // Status and limits are part of every cached principal of this tenant.
    await this.invalidator.invalidate({ tenantIds: [updated.id] });
    this.log.info({ tenantId: updated.id, status: updated.status, actor: actorLabel(caller) }, 'tenant updated');
    return updated;
  }

  async listTenants(caller: Caller, args: PageArgs): Promise<Page<Tenant>> {
    this.requireAdmin(caller);
    const size = pageSize(args.first);
    const { where, orderBy } = afterCursor(args.after);
    const rows = await this.prisma.tenant.findMany({ where, orderBy, take: size + 1 });
    return toPage(rows, size, args.after);
  }

  async getTenant(caller: Caller, ref: string): Promise<Tenant> {
    const tenant = await findTenant(this.prisma, ref);
    this.requireTenantAccess(caller, tenant.id, ref);
    return tenant;
  }

  async tenantById(id: string): Promise<Tenant | null> {
    return this.prisma.tenant.findUnique({ where: { id } });
  }

  // ---- keys ---------------------------------------------------------------

  async createApiKey(caller: Caller, input: CreateApiKeyInput): Promise<CreatedKey> {
    const scopes = parseScopes(input.scopes);
    if (scopes.includes('admin') && !isAdmin(caller)) throw new ForbiddenError('Only an admin key may create admin keys');
    const name = keyName(input.name);
    const allowedModels = modelList(input.allowedModels ?? []);
    const expiresAt = expiryFrom(input.expiresAt, input.ttlSeconds);
    const key = generateKey(input.environment ?? this.environment);
    const given = keyLimitValues(input);
    // A keys:manage key's new key: limits no looser than the gateway defaults, and no admin values to record.
    const applied: KeyLimitValues = { ...NO_LIMITS, ...given, ...(isAdmin(caller) ? {} : tightenOnly(given, NO_LIMITS, this.perMinuteDefaults)) };
    const columns = keyLimitColumns(applied, null);
    return this.prisma.$transaction(async (tx) => {
      const tenantId = await this.targetTenantId(tx, caller, input.tenant);
      await assertSameCurrency(tx, tenantId, columns.budgetCurrency);
      const apiKey = await tx.apiKey.create({
        data: {
          tenantId,
          name,
          prefix: key.prefix,
          hash: key.hash,
          scopes,
          allowedModels,
          ...columns,
          operatorLimits: isAdmin(caller) ? operatorLimitsJson(applied) : Prisma.DbNull,
          expiresAt,
          createdBy: actorLabel(caller),
        },
      });
      await audit(tx, caller, 'apikey.create', 'ApiKey', apiKey.id, tenantId, null, keyView(apiKey));
      return { plaintext: key.plaintext, apiKey };
    });
  }

  async listApiKeys(caller: Caller, filter: ListApiKeysFilter, args: PageArgs): Promise<Page<ApiKey>> {
    const size = pageSize(args.first);
    const { where: cursorWhere, orderBy } = afterCursor(args.after);
    let tenantId: string | undefined;
    if (filter.tenant) {
      tenantId = (await findTenant(this.prisma, filter.tenant)).id;
      this.requireTenantAccess(caller, tenantId, filter.tenant);
    } else if (!isAdmin(caller)) {
      tenantId = caller.principal?.tenantId;
    }
    const where: Prisma.ApiKeyWhereInput = {
      AND: [
        cursorWhere,
        tenantId ? { tenantId } : {},
        filter.revoked === true ? { revokedAt: { not: null } } : filter.revoked === false ? { revokedAt: null } : {},
      ],
    };
    const rows = await this.prisma.apiKey.findMany({ where, orderBy, take: size + 1 });
    return toPage(rows, size, args.after);
  }

  /** A key by id or by display prefix, visible to the caller; NOT_FOUND otherwise (also for other tenants' keys). */
  async getApiKey(caller: Caller, ref: string): Promise<ApiKey> {
    return findKey(this.prisma, caller, ref);
  }

  async revokeApiKey(caller: Caller, ref: string): Promise<ApiKey> {
    const revoked = await this.prisma.$transaction(async (tx) => {
      const before = await findKey(tx, caller, ref);
      if (before.scopes.includes('admin') && !isAdmin(caller)) throw new ForbiddenError('Only an admin key may revoke admin keys');
      if (before.revokedAt) return before;
      const after = await tx.apiKey.update({ where: { id: before.id }, data: { revokedAt: new Date() } });
      await this.notify(tx, { keyIds: [after.id] });
      await audit(tx, caller, 'apikey.revoke', 'ApiKey', after.id, after.tenantId, keyView(before), keyView(after));
      await this.events?.keyRevoked(tx, after);
      return after;
    });
    this.events?.committed();
    await this.invalidator.invalidate({ keyIds: [revoked.id] });
    this.log.info({ apiKeyId: revoked.id, prefix: revoked.prefix, actor: actorLabel(caller) }, 'api key revoked');
    return revoked;
  }

  /**
   * Changes a key in place. Narrowing takes effect like a revocation: the
   * cached principal is dropped on every gateway (NOTIFY in the transaction,
   * Redis after commit), so the next request anywhere sees the new settings.
   */
  async updateApiKey(caller: Caller, ref: string, input: UpdateApiKeyInput): Promise<ApiKey> {
    const data: Prisma.ApiKeyUpdateInput = {};
    if (input.name !== undefined) data.name = keyName(input.name);
    if (input.scopes !== undefined) data.scopes = parseScopes(input.scopes);
    if (input.allowedModels !== undefined) data.allowedModels = modelList(input.allowedModels);
    if (input.expiresAt !== undefined) data.expiresAt = input.expiresAt === null ? null : expiryFrom(input.expiresAt, null);
    if (input.metadata !== undefined) data.metadata = input.metadata === null ? Prisma.DbNull : metadataOf(input.metadata);
    const given = keyLimitValues(input);
    if (Object.keys(data).length === 0 && Object.keys(given).length === 0) throw new BadInputError('Nothing to change', 'input');
    const updated = await this.prisma.$transaction(async (tx) => {
      const before = await findKey(tx, caller, ref);
      if (before.revokedAt) throw new BadInputError('A revoked key cannot be changed', 'id');
      if (!isAdmin(caller) && (before.scopes.includes('admin') || (data.scopes as string[] | undefined)?.includes('admin'))) {
        throw new ForbiddenError('Only an admin key may change admin keys or grant admin');
      }
      if (Object.keys(given).length > 0) {
        const operator = readOperatorLimits(before.operatorLimits, keyLimitsOf(before));
        if (isAdmin(caller)) {
          // What an admin writes becomes the ceiling of those fields; the others keep theirs.
          Object.assign(data, keyLimitColumns(given, before.creditsSince));
          data.operatorLimits = operatorLimitsJson({ ...operator, ...given });
        } else {
          Object.assign(data, keyLimitColumns(tightenOnly(given, operator, this.perMinuteDefaults), before.creditsSince));
        }
      }
      await assertSameCurrency(tx, before.tenantId, data.budgetCurrency as string | null | undefined);
      const after = await tx.apiKey.update({ where: { id: before.id }, data });
      await this.notify(tx, { keyIds: [after.id] });
      await audit(tx, caller, 'apikey.update', 'ApiKey', after.id, after.tenantId, keyView(before), keyView(after));
      return after;
    });
    if (given.credits !== undefined) await this.resetBalance({ tenantId: updated.tenantId, apiKeyId: updated.id });
    await this.invalidator.invalidate({ keyIds: [updated.id] });
    this.log.info({ apiKeyId: updated.id, prefix: updated.prefix, fields: Object.keys(data), actor: actorLabel(caller) }, 'api key updated');
    return updated;
  }

  /**
   * Issues a new secret with the same tenant, scopes, models, limits and
   * expiry; the old one keeps working for `graceSeconds` (0: stops now).
   */
  async rotateApiKey(caller: Caller, ref: string, graceSeconds: number): Promise<CreatedKey & { previous: ApiKey }> {
    if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
      throw new BadInputError(`gracePeriodSeconds must be a whole number from 0 to ${MAX_GRACE_SECONDS}`, 'gracePeriodSeconds');
    }
    const result = await this.prisma.$transaction(async (tx) => {
      const old = await findKey(tx, caller, ref);
      const now = Date.now();
      if (old.revokedAt) throw new BadInputError('A revoked key cannot be rotated', 'id');
      if (old.graceUntil) throw new BadInputError('This key was already rotated; rotate its successor', 'id');
      if (old.expiresAt && old.expiresAt.getTime() <= now) throw new BadInputError('An expired key cannot be rotated', 'id');
      if (old.scopes.includes('admin') && !isAdmin(caller)) throw new ForbiddenError('Only an admin key may rotate admin keys');
      const environment: KeyEnvironment = old.prefix.startsWith('mg_test_') ? 'test' : 'live';
      const key = generateKey(environment);
      const apiKey = await tx.apiKey.create({
        data: {
          tenantId: old.tenantId,
          name: old.name,
          prefix: key.prefix,
          hash: key.hash,
          scopes: old.scopes,
          allowedModels: old.allowedModels,
          requestsPerMinute: old.requestsPerMinute,
          computeUnitsPerMinute: old.computeUnitsPerMinute,
          monthlyComputeUnitBudget: old.monthlyComputeUnitBudget,
          monthlyBudgetMicros: old.monthlyBudgetMicros,
          budgetCurrency: old.budgetCurrency,
          // Budgets and balances are counted per key id: the successor starts its own from now.
          creditsSince: old.creditsSince ? new Date(now) : null,
          creditRefillAmount: old.creditRefillAmount,
          creditRefillInterval: old.creditRefillInterval,
          operatorLimits: old.operatorLimits ?? Prisma.DbNull,
          expiresAt: old.expiresAt,
          createdBy: actorLabel(caller),
          rotatedFromId: old.id,
        },
      });
      const previous = await tx.apiKey.update({ where: { id: old.id }, data: { graceUntil: new Date(now + graceSeconds * 1000) } });
      await this.notify(tx, { keyIds: [previous.id] });
      await audit(tx, caller, 'apikey.rotate', 'ApiKey', old.id, old.tenantId, keyView(old), { ...keyView(previous), successor: keyView(apiKey) });
      return { plaintext: key.plaintext, apiKey, previous };
    });
    await this.invalidator.invalidate({ keyIds: [result.previous.id] });
    this.log.info({ apiKeyId: result.previous.id, successorId: result.apiKey.id, graceUntil: result.previous.graceUntil, actor: actorLabel(caller) }, 'api key rotated');
    return result;
  }

  /**
   * Creates the first admin key when no usable one exists (tenant created if
   * needed). Returns null when an admin key already exists.
   */
  async bootstrapAdmin(caller: Caller, tenantName = 'admin'): Promise<CreatedKey | null> {
    // Any accepted admin key (auth/key-status.ts) counts, a rotated one in its grace period too.
    return this.createBootstrapAdmin(caller, tenantName, generateKey(this.environment), (tx) =>
      tx.apiKey.findFirst({ where: { scopes: { has: 'admin' }, ...acceptedKeyWhere(new Date()) }, select: { id: true } }),
    );
  }

  /**
   * The gateway's first-start bootstrap: creates an admin key only when the
   * database has never had one (a revoked or expired admin key counts as
   * having had one, so revoking every admin key never makes a restart mint a
   * fresh one into the logs; `modelgate admin bootstrap` covers that case).
   * `plaintext` (MODELGATE_BOOTSTRAP_KEY) is stored instead of a random key.
   * The advisory lock makes it safe for many processes to call at once
   * (GATEWAY_PROCESSES, replicas): exactly one creates the key.
   */
  async bootstrapFirstAdmin(caller: Caller, options: { plaintext?: string; tenantName?: string } = {}): Promise<CreatedKey | null> {
    const tenantName = options.tenantName ?? 'admin';
    let key: GeneratedKey;
    if (options.plaintext !== undefined) {
      if (!isWellFormedKey(options.plaintext)) throw new BadInputError('MODELGATE_BOOTSTRAP_KEY is not a modelgate key (mg_live_… or mg_test_… with a valid checksum)');
      key = { plaintext: options.plaintext, hash: hashKey(options.plaintext), prefix: displayPrefix(options.plaintext) };
    } else {
      key = generateKey(this.environment);
    }
    return this.createBootstrapAdmin(caller, tenantName, key, (tx) => tx.apiKey.findFirst({ where: { scopes: { has: 'admin' } }, select: { id: true } }));
  }

  /**
   * Both bootstraps: under one advisory lock (two at once must not both
   * create a key), unless `existingAdmin` finds one, an admin key "bootstrap
   * admin" in the tenant (created if needed), each step audited.
   */
  private createBootstrapAdmin(caller: Caller, tenantName: string, key: GeneratedKey, existingAdmin: (tx: Tx) => Promise<{ id: string } | null>): Promise<CreatedKey | null> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$queryRawUnsafe(`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})::text`);
      if (await existingAdmin(tx)) return null;
      let tenant = await tx.tenant.findUnique({ where: { name: tenantName } });
      if (!tenant) {
        tenant = await tx.tenant.create({ data: { name: tenantName } });
        await audit(tx, caller, 'tenant.create', 'Tenant', tenant.id, tenant.id, null, tenantView(tenant));
      }
      const apiKey = await tx.apiKey.create({
        data: { tenantId: tenant.id, name: 'bootstrap admin', prefix: key.prefix, hash: key.hash, scopes: ['admin'], allowedModels: [], createdBy: actorLabel(caller) },
      });
      await audit(tx, caller, 'admin.bootstrap', 'ApiKey', apiKey.id, tenant.id, null, keyView(apiKey));
      return { plaintext: key.plaintext, apiKey };
    });
  }

  // ---- audit --------------------------------------------------------------

  async listAuditEvents(caller: Caller, filter: { tenant?: string | null }, args: PageArgs): Promise<Page<AuditEvent>> {
    this.requireAdmin(caller);
    const size = pageSize(args.first);
    const { where: cursorWhere, orderBy } = afterCursor(args.after);
    const tenantId = filter.tenant ? (await findTenant(this.prisma, filter.tenant)).id : undefined;
    const rows = await this.prisma.auditEvent.findMany({
      where: { AND: [cursorWhere, tenantId ? { tenantId } : {}] },
      orderBy,
      take: size + 1,
    });
    return toPage(rows, size, args.after);
  }

  /**
   * node(id) for this domain's objects, read as the direct queries read them:
   * a tenant by admin or its own keys (me.tenant), a key by keys:manage in its
   * tenant, admin, or the key itself (me.apiKey), an audit event by admin only.
   * null when absent or not readable: node() does not say which.
   */
  async nodeById(caller: Caller, id: string): Promise<{ kind: 'Tenant'; row: Tenant } | { kind: 'ApiKey'; row: ApiKey } | { kind: 'AuditEvent'; row: AuditEvent } | null> {
    if (!UUID.test(id)) return null;
    const [tenant, key, event] = await Promise.all([
      this.prisma.tenant.findUnique({ where: { id } }),
      this.prisma.apiKey.findUnique({ where: { id } }),
      this.prisma.auditEvent.findUnique({ where: { id } }),
    ]);
    const own = caller.principal;
    if (tenant && (isAdmin(caller) || own?.tenantId === tenant.id)) return { kind: 'Tenant', row: tenant };
    if (key) {
      const manages = own !== null && hasScope(own, 'keys:manage') && own.tenantId === key.tenantId;
      if (isAdmin(caller) || manages || own?.apiKeyId === key.id) return { kind: 'ApiKey', row: key };
    }
    if (event && isAdmin(caller)) return { kind: 'AuditEvent', row: event };
    return null;
  }

  /**
   * A changed credit configuration drops the held balance (after commit), so
   * the next check rebuilds it from Postgres under the new settings. Redis
   * unreachable: logged; the limiter then holds its own (fallback) figures.
   */
  private async resetBalance(target: { tenantId: string; apiKeyId?: string }): Promise<void> {
    try {
      await this.balances?.resetCredits(target);
    } catch (error) {
      this.log.warn({ ...target, reason: error instanceof Error ? error.message : String(error) }, 'credit balance not reset in Redis; it keeps its old figure until it expires or is rebuilt');
    }
  }

  /** The in-transaction broadcast (Postgres only: embedded PGlite is one process, nobody else caches its keys). */
  private async notify(tx: Tx, target: InvalidationTarget): Promise<void> {
    if (this.db.mode === 'postgres') await notifyInvalidation(tx, target);
  }

  // ---- access -------------------------------------------------------------

  private requireAdmin(caller: Caller): void {
    if (!isAdmin(caller)) throw missingScope(['admin']);
  }

  /**
   * Another tenant reads exactly as an unknown one (same code, message and
   * extensions as findTenant's), so a key cannot probe which tenant names exist.
   */
  private requireTenantAccess(caller: Caller, tenantId: string, ref: string): void {
    if (isAdmin(caller)) return;
    if (caller.principal?.tenantId !== tenantId) throw unknownTenant(ref);
  }

  private async targetTenantId(tx: Tx, caller: Caller, ref: string | null | undefined): Promise<string> {
    if (!ref) {
      if (!caller.principal) throw new BadInputError('Name the tenant', 'tenant');
      return caller.principal.tenantId;
    }
    const tenant = await findTenant(tx, ref);
    this.requireTenantAccess(caller, tenant.id, ref);
    return tenant.id;
  }
}

// ---- helpers --------------------------------------------------------------

export function parseScopes(values: string[]): Scope[] {
  const scopes = [...new Set(values.map((s) => s.trim()).filter(Boolean))];
  if (scopes.length === 0) throw new BadInputError(`Name at least one scope (${SCOPES.join(', ')})`, 'scopes');
  for (const s of scopes) {
    if (!isScope(s)) throw new BadInputError(`Unknown scope "${s}"; valid scopes: ${SCOPES.join(', ')}`, 'scopes');
  }
  return scopes as Scope[];
}

function keyName(value: string): string {
  const name = value.trim();
  if (name.length < 1 || name.length > 100) throw new BadInputError('Key name must be 1-100 characters', 'name');
  return name;
}

function modelList(values: string[]): string[] {
  const models = [...new Set(values.map((m) => m.trim()))];
  if (models.some((m) => m.length === 0)) throw new BadInputError('Model names must not be empty', 'allowedModels');
  return models;
}

const METADATA_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/** Labels only: at most 32 string entries, so metadata cannot grow into a document store. */
function metadataOf(value: Record<string, string>): Prisma.InputJsonObject {
  const entries = Object.entries(value);
  if (entries.length > 32) throw new BadInputError('metadata holds at most 32 entries', 'metadata');
  for (const [k, v] of entries) {
    if (!METADATA_KEY.test(k)) throw new BadInputError(`metadata key "${k.slice(0, 64)}" must be 1-64 letters, digits, "_", "-" or "."`, 'metadata');
    if (typeof v !== 'string' || v.length > 256) throw new BadInputError(`metadata.${k} must be a string of at most 256 characters`, 'metadata');
  }
  return Object.fromEntries(entries);
}

function limit(value: number | null | undefined, field: string, min = 1): number | null {
  if (value === null || value === undefined) return null;
  if (!Number.isInteger(value) || value < min || value > 2_000_000_000) {
    throw new BadInputError(`${field} must be a whole number from ${min} to 2000000000, or null for the default`, field);
  }
  return value;
}

/** 10^15 micro-units: far above any real monthly budget, below 2^53 (the limiter's counters are doubles). */
const MAX_BUDGET_MICROS = 10n ** 15n;

function moneyBudget(value: LimitOverrides['monthlyBudget']): { monthlyBudgetMicros: bigint | null; budgetCurrency: string | null } {
  if (value === undefined || value === null) return { monthlyBudgetMicros: null, budgetCurrency: null };
  if (!/^\d{1,16}$/.test(value.amountMicros)) throw new BadInputError('monthlyBudget.amountMicros must be a whole number of micro-units, as a string', 'monthlyBudget.amountMicros');
  const micros = BigInt(value.amountMicros);
  if (micros > MAX_BUDGET_MICROS) throw new BadInputError(`monthlyBudget.amountMicros must be at most ${MAX_BUDGET_MICROS}`, 'monthlyBudget.amountMicros');
  const currency = value.currency.trim().toUpperCase();
  if (!/^[A-Z]{3}$/.test(currency)) throw new BadInputError('monthlyBudget.currency must be an ISO 4217 code such as USD', 'monthlyBudget.currency');
  return { monthlyBudgetMicros: micros, budgetCurrency: currency };
}

function creditsValue(value: LimitOverrides['credits']): KeyLimitValues['credits'] {
  if (value === undefined || value === null) return null;
  const amount = value.refillAmount ?? null;
  const interval = value.refillInterval ?? null;
  if ((amount === null) !== (interval === null)) throw new BadInputError('Give credits.refillAmount and credits.refillInterval together, or neither', 'credits');
  if (amount !== null && (!Number.isInteger(amount) || amount < 0 || amount > 1_000_000_000)) {
    throw new BadInputError('credits.refillAmount must be a whole number of compute units from 0 to 1000000000', 'credits.refillAmount');
  }
  return { refill: amount !== null && interval !== null ? { amount, interval } : null };
}

type CreditColumns = { creditsSince: Date | null; creditRefillAmount: number | null; creditRefillInterval: 'DAILY' | 'MONTHLY' | null };

function creditColumns(value: KeyLimitValues['credits'], since: Date | null): CreditColumns {
  if (value === null) return { creditsSince: null, creditRefillAmount: null, creditRefillInterval: null };
  // Configured once: a later change keeps the start (what was used since still counts).
  return { creditsSince: since ?? new Date(), creditRefillAmount: value.refill?.amount ?? null, creditRefillInterval: value.refill?.interval ?? null };
}

function creditsData(value: LimitOverrides['credits'], since: Date | null): CreditColumns {
  return creditColumns(creditsValue(value), since);
}

/** The limit fields given (absent ones left out), checked and normalised as they are stored. */
function keyLimitValues(input: LimitOverrides): Partial<KeyLimitValues> {
  const out: Partial<KeyLimitValues> = {};
  if (input.requestsPerMinute !== undefined) out.requestsPerMinute = limit(input.requestsPerMinute, 'requestsPerMinute');
  if (input.computeUnitsPerMinute !== undefined) out.computeUnitsPerMinute = limit(input.computeUnitsPerMinute, 'computeUnitsPerMinute');
  if (input.monthlyComputeUnitBudget !== undefined) out.monthlyComputeUnitBudget = limit(input.monthlyComputeUnitBudget, 'monthlyComputeUnitBudget', 0);
  if (input.monthlyBudget !== undefined) {
    const { monthlyBudgetMicros: micros, budgetCurrency: currency } = moneyBudget(input.monthlyBudget);
    out.monthlyBudget = micros !== null && currency !== null ? { amountMicros: micros.toString(), currency } : null;
  }
  if (input.credits !== undefined) out.credits = creditsValue(input.credits);
  return out;
}

interface KeyLimitColumns extends Partial<CreditColumns> {
  requestsPerMinute?: number | null;
  computeUnitsPerMinute?: number | null;
  monthlyComputeUnitBudget?: number | null;
  monthlyBudgetMicros?: bigint | null;
  budgetCurrency?: string | null;
}

/** The columns of the given limit fields. */
function keyLimitColumns(values: Partial<KeyLimitValues>, creditsSince: Date | null): KeyLimitColumns {
  const { requestsPerMinute, computeUnitsPerMinute, monthlyComputeUnitBudget, monthlyBudget, credits } = values;
  return {
    ...(requestsPerMinute !== undefined ? { requestsPerMinute } : {}),
    ...(computeUnitsPerMinute !== undefined ? { computeUnitsPerMinute } : {}),
    ...(monthlyComputeUnitBudget !== undefined ? { monthlyComputeUnitBudget } : {}),
    ...(monthlyBudget !== undefined ? { monthlyBudgetMicros: monthlyBudget ? BigInt(monthlyBudget.amountMicros) : null, budgetCurrency: monthlyBudget?.currency ?? null } : {}),
    ...(credits !== undefined ? creditColumns(credits, creditsSince) : {}),
  };
}

/** A key's limits as they are now. */
function keyLimitsOf(k: ApiKey): KeyLimitValues {
  return {
    requestsPerMinute: k.requestsPerMinute,
    computeUnitsPerMinute: k.computeUnitsPerMinute,
    monthlyComputeUnitBudget: k.monthlyComputeUnitBudget,
    monthlyBudget: k.monthlyBudgetMicros !== null && k.budgetCurrency !== null ? { amountMicros: k.monthlyBudgetMicros.toString(), currency: k.budgetCurrency } : null,
    credits: k.creditsSince
      ? { refill: k.creditRefillAmount !== null && k.creditRefillInterval !== null ? { amount: k.creditRefillAmount, interval: k.creditRefillInterval } : null }
      : null,
  };
}

function currencyClash(wanted: string, existing: string, field: string): BadInputError {
  return new BadInputError(`Budgets of one tenant and its keys must share one currency: this is ${wanted}, an existing budget is in ${existing}`, field, { reason: 'CURRENCY_MISMATCH' });
}

/** A key's money budget must be in the currency of its tenant's (one tenant, one currency). */
async function assertSameCurrency(tx: Tx, tenantId: string, currency: string | null | undefined): Promise<void> {
  if (!currency) return;
  const tenant = await tx.tenant.findUnique({ where: { id: tenantId } });
  if (tenant?.budgetCurrency && tenant.monthlyBudgetMicros !== null && tenant.budgetCurrency !== currency) throw currencyClash(currency, tenant.budgetCurrency, 'monthlyBudget');
}

function expiryFrom(expiresAt: Date | null | undefined, ttlSeconds: number | null | undefined): Date | null {
  if (expiresAt && ttlSeconds !== null && ttlSeconds !== undefined) throw new BadInputError('Give expiresAt or ttlSeconds, not both', 'ttlSeconds');
  if (ttlSeconds !== null && ttlSeconds !== undefined) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new BadInputError('ttlSeconds must be a positive whole number', 'ttlSeconds');
    return new Date(Date.now() + ttlSeconds * 1000);
  }
  if (expiresAt) {
    if (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= Date.now()) throw new BadInputError('expiresAt must be in the future', 'expiresAt');
    return expiresAt;
  }
  return null;
}

type Reader = Pick<Tx, 'tenant' | 'apiKey'>;

async function findTenant(db: Reader, ref: string): Promise<Tenant> {
  const trimmed = ref.trim();
  const tenant = UUID.test(trimmed)
    ? await db.tenant.findFirst({ where: { OR: [{ id: trimmed }, { name: trimmed }] } })
    : await db.tenant.findUnique({ where: { name: trimmed } });
  if (!tenant) throw unknownTenant(ref);
  return tenant;
}

function unknownTenant(ref: string): NotFoundError {
  const trimmed = ref.trim();
  return new NotFoundError(`Unknown tenant "${trimmed}"`, { tenant: trimmed });
}

async function findKey(db: Reader, caller: Caller, ref: string): Promise<ApiKey> {
  const trimmed = ref.trim();
  const scope: Prisma.ApiKeyWhereInput = isAdmin(caller) ? {} : { tenantId: caller.principal?.tenantId ?? '' };
  let rows: ApiKey[];
  if (UUID.test(trimmed)) {
    rows = await db.apiKey.findMany({ where: { ...scope, id: trimmed }, take: 1 });
  } else if (isKeyStart(trimmed)) {
    // A display prefix (or a longer part of the key): match on the stored prefix.
    rows = await db.apiKey.findMany({ where: { ...scope, prefix: trimmed.slice(0, 16) }, take: 2 });
  } else {
    throw new BadInputError('Name a key by its id or its display prefix (mg_live_…)', 'id');
  }
  if (rows.length > 1) throw new BadInputError(`Prefix "${trimmed}" matches more than one key; use the id`, 'id');
  const row = rows[0];
  // Another tenant's key reads as unknown: a caller cannot learn it exists.
  if (!row) throw new NotFoundError('Unknown API key', { id: trimmed });
  return row;
}

/** A tenant as the audit trail stores it (clients read keys/projection.ts). */
export function tenantView(t: Tenant): Prisma.InputJsonObject {
  return {
    id: t.id,
    name: t.name,
    status: t.status,
    requestsPerMinute: t.requestsPerMinute,
    computeUnitsPerMinute: t.computeUnitsPerMinute,
    monthlyComputeUnitQuota: t.monthlyComputeUnitQuota,
    ...budgetView(t),
  };
}

/** A key as the audit trail stores it: never its hash (clients read keys/projection.ts). */
export function keyView(k: ApiKey): Prisma.InputJsonObject {
  return {
    id: k.id,
    tenantId: k.tenantId,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    allowedModels: k.allowedModels,
    requestsPerMinute: k.requestsPerMinute,
    computeUnitsPerMinute: k.computeUnitsPerMinute,
    monthlyComputeUnitBudget: k.monthlyComputeUnitBudget,
    ...budgetView(k),
    expiresAt: k.expiresAt?.toISOString() ?? null,
    revokedAt: k.revokedAt?.toISOString() ?? null,
    graceUntil: k.graceUntil?.toISOString() ?? null,
    rotatedFromId: k.rotatedFromId,
    metadata: (k.metadata ?? null) as Prisma.InputJsonValue | null,
    operatorLimits: (k.operatorLimits ?? null) as Prisma.InputJsonValue | null,
  };
}

function budgetView(r: ApiKey | Tenant): Prisma.InputJsonObject {
  return {
    monthlyBudgetMicros: r.monthlyBudgetMicros?.toString() ?? null,
    budgetCurrency: r.budgetCurrency,
    creditsSince: r.creditsSince?.toISOString() ?? null,
    creditRefillAmount: r.creditRefillAmount,
    creditRefillInterval: r.creditRefillInterval,
  };
}

async function audit(
  tx: Tx,
  caller: Caller,
  action: string,
  targetType: string,
  targetId: string,
  tenantId: string | null,
  before: Prisma.InputJsonObject | null,
  after: Prisma.InputJsonObject | null,
): Promise<void> {
  await tx.auditEvent.create({
    data: {
      ...auditActor(caller),
      action,
      targetType,
      targetId,
      tenantId,
      ...(before ? { before } : {}),
      ...(after ? { after } : {}),
    },
  });
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'P2002';
}
