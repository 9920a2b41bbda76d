/**
 * The contract between the request path and the rate-limit domain (issue #6).
 * One check consumes every applicable limit atomically, or none.
 */
export type LimitName = 'key_requests' | 'key_compute_units' | 'tenant_requests' | 'tenant_compute_units' | 'tenant_monthly_compute_units';

export interface LimitSpec {
  name: LimitName;
  /** Allowed amount per window. */
  limit: number;
  /** Window length in seconds (60 for per-minute; the calendar month for the quota is computed by the limiter). */
  windowSeconds: number;
  /** How much this request consumes (1 for request limits, items x cost for compute units). */
  cost: number;
}

export interface LimitState {
  name: LimitName;
  limit: number;
  remaining: number;
  /** Seconds until the window resets (or, for a bucket, until it is full again). */
  resetSeconds: number;
  windowSeconds: number;
}

export type LimitDecision =
  | { allowed: true; states: LimitState[]; source: 'redis' | 'local' | 'disabled' }
  | {
      allowed: false;
      /** The first limit that refused (a quota refusal maps to QUOTA_EXCEEDED, others to RATE_LIMITED). */
      hit: LimitState;
      retryAfterSeconds: number;
      states: LimitState[];
      source: 'redis' | 'local';
    };
