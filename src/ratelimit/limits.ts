/**
 * Which limits apply to one request, and the store keys that hold them.
 * Pure functions shared by the Redis script and the in-process limiter, so
 * both enforce exactly the same limits.
 */
import type { Config } from '../config';
import type { CreditsConfig, MoneyBudget, Principal } from '../auth/principal';
import type { LimitName, LimitSpec } from './types';
import type { StoreLimit } from './store';

/** A limit resolved for one request, with the store key(s) it lives in. */
export interface ResolvedLimit extends LimitSpec, StoreLimit {
  /** Counted but never refusing (the month's usage of a tenant without a quota); left out of headers. */
  unbounded: boolean;
  /** Where a lost counter is rebuilt from (seeded month counters and credit balances). */
  seed?: SeedSource;
  /** Money budgets: the currency of limit and cost. */
  currency?: string;
}

/**
 * What Postgres rebuilds a lost counter from. apiKeyId set: that key's own
 * figure; absent: the whole tenant's.
 */
export type SeedSource =
  | { kind: 'units'; apiKeyId?: string }
  | { kind: 'spend'; apiKeyId?: string; currency: string }
  /** refill + grants since `from` − units billed since `from` (from: the period's start, or when credits were configured if later). */
  | { kind: 'credits'; apiKeyId?: string; from: Date; refill: number | null };

/** What a request costs: requests, compute units, and money at the price in effect for its model (null: no price). */
export interface RequestCost {
  requests: number;
  computeUnits: number;
  price?: { currency: string; microsPerUnit: number } | null;
}

/** Retry-After hint for a balance without refill: it comes back only with a grant. */
export const NO_REFILL_RETRY_MS = 3_600_000;

/** The limit given to the store for an unbounded counter. */
export const UNBOUNDED = Number.MAX_SAFE_INTEGER;

export const MINUTE_MS = 60_000;

/** `YYYY-MM` of the calendar month (UTC) holding `at`. */
export function monthId(at: Date): string {
  return `${at.getUTCFullYear()}-${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** Start of the month after `at` (UTC). */
export function nextMonthStart(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
}

export function monthLengthSeconds(at: Date): number {
  const start = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
  return Math.round((nextMonthStart(at).getTime() - start) / 1000);
}

/**
 * Every key of one tenant carries the hash tag `{t:<tenantId>}`, so the
 * multi-key script of one request maps to one Redis Cluster slot.
 */
export function tenantTag(tenantId: string): string {
  return `{t:${tenantId}}`;
}

export function limitKey(principal: Pick<Principal, 'tenantId' | 'apiKeyId'> & { currency?: string }, name: LimitName, at: Date): string {
  const tag = tenantTag(principal.tenantId);
  switch (name) {
    case 'key_requests':
      return `${tag}:rl:k:${principal.apiKeyId}:req`;
    case 'key_compute_units':
      return `${tag}:rl:k:${principal.apiKeyId}:cu`;
    case 'tenant_requests':
      return `${tag}:rl:t:req`;
    case 'tenant_compute_units':
      return `${tag}:rl:t:cu`;
    case 'tenant_monthly_compute_units':
      return `${tag}:rl:t:quota:${monthId(at)}`;
    case 'key_monthly_compute_units':
      return `${tag}:rl:k:${principal.apiKeyId}:budget:${monthId(at)}`;
    // The currency is part of a spend counter's key: a budget moved to another currency starts a fresh (rebuilt) counter.
    case 'key_monthly_spend':
      return `${tag}:rl:k:${principal.apiKeyId}:spend:${principal.currency ?? ''}:${monthId(at)}`;
    case 'tenant_monthly_spend':
      return `${tag}:rl:t:spend:${principal.currency ?? ''}:${monthId(at)}`;
    // One balance per key or tenant; its refill period is stored beside it (see redis-limiter.ts).
    case 'key_credits':
      return `${tag}:cr:k:${principal.apiKeyId}`;
    case 'tenant_credits':
      return `${tag}:cr:t`;
  }
}

/** The credit period holding `at`: its id, start, and ms until the next boundary. */
export function creditPeriod(credits: CreditsConfig, at: Date): { id: string; start: Date; spanMs: number; windowSeconds: number } {
  const refill = credits.refill;
  if (!refill) return { id: 'n', start: credits.since, spanMs: NO_REFILL_RETRY_MS, windowSeconds: 0 };
  if (refill.interval === 'DAILY') {
    const start = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
    return { id: `d:${start.toISOString().slice(0, 10)}`, start, spanMs: start.getTime() + 86_400_000 - at.getTime(), windowSeconds: 86_400 };
  }
  const start = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
  return { id: `m:${monthId(at)}`, start, spanMs: nextMonthStart(at).getTime() - at.getTime(), windowSeconds: monthLengthSeconds(at) };
}

/** The credit-balance limit of a key (apiKeyId set) or tenant. */
export function creditLimit(principal: Pick<Principal, 'tenantId' | 'apiKeyId'>, credits: CreditsConfig, owner: 'key' | 'tenant', cost: number, at: Date): ResolvedLimit {
  const period = creditPeriod(credits, at);
  const name: LimitName = owner === 'key' ? 'key_credits' : 'tenant_credits';
  const from = period.start.getTime() > credits.since.getTime() ? period.start : credits.since;
  return {
    name,
    // The balance a refill restores (0 without refill: then the state shows the balance as its own limit).
    limit: credits.refill?.amount ?? 0,
    windowSeconds: period.windowSeconds,
    cost,
    kind: 'credits',
    weighted: true,
    spanMs: period.spanMs,
    period: period.id,
    key: limitKey(principal, name, at),
    unbounded: false,
    seed: { kind: 'credits', ...(owner === 'key' ? { apiKeyId: principal.apiKeyId } : {}), from, refill: credits.refill?.amount ?? null },
  };
}

/**
 * The limits one request is checked against: per-key and per-tenant requests
 * and compute units per minute, plus the tenant's monthly quota (counted
 * without refusing when the tenant has none). A null override on the principal means the gateway default.
 */
export function resolveLimits(
  principal: Principal,
  defaults: Config['limits'],
  cost: RequestCost,
  at: Date,
): ResolvedLimit[] {
  const { requests, computeUnits } = cost;
  const l = principal.limits;
  const rolling = (name: LimitName, limit: number, cost: number, weighted: boolean): ResolvedLimit => ({
    name,
    limit,
    windowSeconds: MINUTE_MS / 1000,
    cost,
    kind: 'rolling',
    weighted,
    spanMs: MINUTE_MS,
    key: limitKey(principal, name, at),
    unbounded: false,
  });
  const limits: ResolvedLimit[] = [
    rolling('key_requests', l.keyRequestsPerMinute ?? defaults.defaultRequestsPerMinute, requests, false),
    rolling('tenant_requests', l.tenantRequestsPerMinute ?? defaults.defaultRequestsPerMinute, requests, false),
    rolling('key_compute_units', l.keyComputeUnitsPerMinute ?? defaults.defaultComputeUnitsPerMinute, computeUnits, true),
    rolling('tenant_compute_units', l.tenantComputeUnitsPerMinute ?? defaults.defaultComputeUnitsPerMinute, computeUnits, true),
  ];
  // The month is counted even without a quota, so `me` can show what was used.
  const quota = l.tenantMonthlyComputeUnitQuota ?? defaults.defaultMonthlyComputeUnitQuota;
  limits.push({
    name: 'tenant_monthly_compute_units',
    limit: quota ?? UNBOUNDED,
    windowSeconds: monthLengthSeconds(at),
    cost: computeUnits,
    kind: 'month',
    weighted: true,
    spanMs: nextMonthStart(at).getTime() - at.getTime(),
    key: limitKey(principal, 'tenant_monthly_compute_units', at),
    unbounded: quota === null,
    // Billing depends on this counter: never trust its absence (see redis-limiter.ts).
    seeded: quota !== null,
    seed: { kind: 'units' },
  });
  // A key's own budget: the same month counter, in the same script, rebuilt from the key's billed usage when Redis loses it.
  const budget = l.keyMonthlyComputeUnitBudget ?? null;
  if (budget !== null) {
    limits.push({
      name: 'key_monthly_compute_units',
      limit: budget,
      windowSeconds: monthLengthSeconds(at),
      cost: computeUnits,
      kind: 'month',
      weighted: true,
      spanMs: nextMonthStart(at).getTime() - at.getTime(),
      key: limitKey(principal, 'key_monthly_compute_units', at),
      unbounded: false,
      seeded: true,
      seed: { kind: 'units', apiKeyId: principal.apiKeyId },
    });
  }
  const spend = (name: 'key_monthly_spend' | 'tenant_monthly_spend', budget: MoneyBudget): ResolvedLimit => ({
    name,
    limit: budget.micros,
    windowSeconds: monthLengthSeconds(at),
    // Units x the price in effect; a model without a price (or, refused before this, one priced in another currency) costs no money.
    cost: cost.price && cost.price.currency === budget.currency ? computeUnits * cost.price.microsPerUnit : 0,
    kind: 'month',
    weighted: true,
    spanMs: nextMonthStart(at).getTime() - at.getTime(),
    key: limitKey({ ...principal, currency: budget.currency }, name, at),
    unbounded: false,
    seeded: true,
    currency: budget.currency,
    seed: { kind: 'spend', ...(name === 'key_monthly_spend' ? { apiKeyId: principal.apiKeyId } : {}), currency: budget.currency },
  });
  if (l.keyMonthlyBudget) limits.push(spend('key_monthly_spend', l.keyMonthlyBudget));
  if (l.tenantMonthlyBudget) limits.push(spend('tenant_monthly_spend', l.tenantMonthlyBudget));
  if (l.keyCredits) limits.push(creditLimit(principal, l.keyCredits, 'key', computeUnits, at));
  if (l.tenantCredits) limits.push(creditLimit(principal, l.tenantCredits, 'tenant', computeUnits, at));
  return limits;
}

/** Where a limit's value comes from: the key's or tenant's own override, the gateway default, or nowhere (limits off). */
export type LimitSource = 'KEY' | 'TENANT' | 'GATEWAY_DEFAULT' | 'DISABLED';

/** A limit as it applies: its value (null: none) and where it comes from. */
export interface EffectiveLimit {
  value: number | null;
  source: LimitSource;
}

function effective(own: number | null, fallback: number | null, ownSource: LimitSource, defaults: Config['limits']): EffectiveLimit {
  if (!defaults.enabled) return { value: null, source: 'DISABLED' };
  return own !== null ? { value: own, source: ownSource } : { value: fallback, source: 'GATEWAY_DEFAULT' };
}

/** A tenant's limits as resolveLimits applies them: its overrides, else the gateway defaults (the same rule, readable). */
export function effectiveTenantLimits(
  tenant: { requestsPerMinute: number | null; computeUnitsPerMinute: number | null; monthlyComputeUnitQuota: number | null },
  defaults: Config['limits'],
): { requestsPerMinute: EffectiveLimit; computeUnitsPerMinute: EffectiveLimit; monthlyComputeUnitQuota: EffectiveLimit } {
  return {
    requestsPerMinute: effective(tenant.requestsPerMinute, defaults.defaultRequestsPerMinute, 'TENANT', defaults),
    computeUnitsPerMinute: effective(tenant.computeUnitsPerMinute, defaults.defaultComputeUnitsPerMinute, 'TENANT', defaults),
    monthlyComputeUnitQuota: effective(tenant.monthlyComputeUnitQuota, defaults.defaultMonthlyComputeUnitQuota, 'TENANT', defaults),
  };
}

/** A key's own per-minute limits as they apply: its overrides, else the gateway defaults (its tenant's limits apply besides). */
export function effectiveKeyLimits(
  key: { requestsPerMinute: number | null; computeUnitsPerMinute: number | null },
  defaults: Config['limits'],
): { requestsPerMinute: EffectiveLimit; computeUnitsPerMinute: EffectiveLimit } {
  return {
    requestsPerMinute: effective(key.requestsPerMinute, defaults.defaultRequestsPerMinute, 'KEY', defaults),
    computeUnitsPerMinute: effective(key.computeUnitsPerMinute, defaults.defaultComputeUnitsPerMinute, 'KEY', defaults),
  };
}
