/**
 * Which limits apply to one request, and the store keys that hold them.
 * Pure functions shared by the Redis script and the in-process limiter, so
 * both enforce exactly the same limits.
 */
import type { Config } from '../config';
import type { Principal } from '../auth/principal';
import type { LimitName, LimitSpec } from './types';
import type { StoreLimit } from './store';

/** A limit resolved for one request, with the store key(s) it lives in. */
export interface ResolvedLimit extends LimitSpec, StoreLimit {
  /** Counted but never refusing (the month's usage of a tenant without a quota); left out of headers. */
  unbounded: boolean;
}

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

export function limitKey(principal: Pick<Principal, 'tenantId' | 'apiKeyId'>, name: LimitName, at: Date): string {
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
  }
}

/**
 * The limits one request is checked against: per-key and per-tenant requests
 * and compute units per minute, plus the tenant's monthly quota (counted
 * without refusing when the tenant has none). A null override on the principal means the gateway default.
 */
export function resolveLimits(
  principal: Principal,
  defaults: Config['limits'],
  cost: { requests: number; computeUnits: number },
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
    });
  }
  return limits;
}
