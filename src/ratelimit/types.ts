/**
 * The contract between the request path and the rate-limit domain (issue #6).
 * One check consumes every applicable limit atomically, or none.
 */
export type LimitName =
  | 'key_requests'
  | 'key_compute_units'
  | 'tenant_requests'
  | 'tenant_compute_units'
  | 'tenant_monthly_compute_units'
  | 'key_monthly_compute_units'
  /** Money budgets per calendar month, in micro-units of the budget's currency. */
  | 'key_monthly_spend'
  | 'tenant_monthly_spend'
  /** Credit balances in compute units. */
  | 'key_credits'
  | 'tenant_credits';

/** Limits whose refusal is QUOTA_EXCEEDED (they do not come back within a minute). */
export const QUOTA_LIMITS: ReadonlySet<LimitName> = new Set<LimitName>([
  'tenant_monthly_compute_units',
  'key_monthly_compute_units',
  'key_monthly_spend',
  'tenant_monthly_spend',
  'key_credits',
  'tenant_credits',
]);

export interface LimitSpec {
  name: LimitName;
  /** Allowed amount per window. */
  limit: number;
  /** Window length in seconds (60 for per-minute; for the monthly quota, the length of the current calendar month). */
  windowSeconds: number;
  /** How much this request consumes (1 for request limits, items x cost for compute units, 0 to only read). */
  cost: number;
}

export interface LimitState {
  name: LimitName;
  limit: number;
  remaining: number;
  /**
   * Seconds until capacity comes back: for a rolling window, until the oldest
   * counted request leaves it (0 when nothing is counted); for the monthly
   * quota, until the month ends (UTC).
   */
  resetSeconds: number;
  windowSeconds: number;
  /** Money budgets only: the ISO 4217 currency of limit and remaining (micro-units). */
  currency?: string;
}

/** Where a decision was made. */
export type LimitSource = 'redis' | 'local';

export type LimitDecision =
  | { allowed: true; states: LimitState[]; source: LimitSource | 'disabled' }
  | {
      allowed: false;
      reason: 'limit';
      /** The first limit that refused (a quota refusal maps to QUOTA_EXCEEDED, others to RATE_LIMITED). */
      hit: LimitState;
      retryAfterSeconds: number;
      states: LimitState[];
      source: LimitSource;
    }
  | {
      /** Redis is unreachable and RATE_LIMIT_FAILURE_MODE=closed: refused without counting anything. */
      allowed: false;
      reason: 'unavailable';
      retryAfterSeconds: number;
      states: [];
      source: 'unavailable';
    }
  | {
      /** A money budget in one currency met a price in another: refused before anything was counted. */
      allowed: false;
      reason: 'currency_mismatch';
      /** The money budget that cannot be charged. */
      hit: LimitState;
      priceCurrency: string;
      retryAfterSeconds: number;
      states: [];
      source: LimitSource;
    }
  | {
      /** The monthly quota counter was missing in Redis and Postgres could not say what was billed: refused, nothing counted. */
      allowed: false;
      reason: 'quota_unavailable';
      retryAfterSeconds: number;
      states: [];
      source: 'redis';
    };

/** What `me` shows: every limit's remaining and reset, and the monthly quota used. */
export interface LimitStatus {
  limits: LimitState[];
  monthlyQuota: {
    /** null: the tenant has no monthly quota. */
    limit: number | null;
    used: number;
    /** Start of the next calendar month (UTC), when `used` returns to 0. */
    resetsAt: Date;
  };
  source: LimitSource | 'disabled' | 'unavailable';
}
