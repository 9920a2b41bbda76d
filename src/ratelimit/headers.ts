/**
 * HTTP and GraphQL shapes of a limit decision: the IETF httpapi draft
 * `RateLimit-Policy` / `RateLimit` headers (structured-field lists, one item
 * per limit), `Retry-After` on refusals, and the domain error for a refusal.
 */
import { OverloadedError, QuotaExceededError, RateLimitedError, UnavailableError, type DomainError } from '../errors';
import type { LimitDecision, LimitState } from './types';

const COMPUTE_UNIT_LIMITS = new Set(['key_compute_units', 'tenant_compute_units', 'tenant_monthly_compute_units', 'key_monthly_compute_units']);

/**
 * `RateLimit-Policy: "key_requests";q=50;w=60, "key_compute_units";q=6000;w=60;qu="compute-units", …`
 * `RateLimit: "key_requests";r=49;t=60, …` and, when refused, `Retry-After: <seconds>`.
 * Request limits use the draft's default quota unit (requests); compute-unit
 * limits name theirs in `qu`.
 */
export function rateLimitHeaders(decision: LimitDecision): Record<string, string> {
  const headers: Record<string, string> = {};
  if (decision.states.length > 0) {
    headers['RateLimit-Policy'] = decision.states.map(policyItem).join(', ');
    headers['RateLimit'] = decision.states.map((s) => `"${s.name}";r=${s.remaining};t=${s.resetSeconds}`).join(', ');
  }
  if (!decision.allowed) headers['Retry-After'] = String(decision.retryAfterSeconds);
  return headers;
}

function policyItem(s: LimitState): string {
  return `"${s.name}";q=${s.limit};w=${s.windowSeconds}${COMPUTE_UNIT_LIMITS.has(s.name) ? ';qu="compute-units"' : ''}`;
}

/**
 * The error for a refused decision: QUOTA_EXCEEDED for the monthly quota,
 * RATE_LIMITED for the per-minute limits (both HTTP 429), OVERLOADED (503)
 * when Redis is down and RATE_LIMIT_FAILURE_MODE=closed, UNAVAILABLE (503) while
 * a lost quota counter cannot be rebuilt from Postgres.
 */
export function limitError(decision: Exclude<LimitDecision, { allowed: true }>): DomainError {
  if (decision.reason === 'unavailable') {
    return new OverloadedError('Rate limits cannot be checked right now (Redis is unreachable and RATE_LIMIT_FAILURE_MODE=closed); retry shortly', {
      retryAfterSeconds: decision.retryAfterSeconds,
    });
  }
  if (decision.reason === 'quota_unavailable') {
    return new UnavailableError('The monthly quota cannot be checked right now (its counter is being rebuilt from billed usage); retry shortly', {
      retryAfterSeconds: decision.retryAfterSeconds,
    });
  }
  const { hit } = decision;
  const extensions = {
    retryAfterSeconds: decision.retryAfterSeconds,
    limit: { name: hit.name, limit: hit.limit, windowSeconds: hit.windowSeconds },
  };
  if (hit.name === 'tenant_monthly_compute_units') {
    return new QuotaExceededError(
      `Monthly compute-unit quota of ${hit.limit} exhausted for this tenant; it resets in ${decision.retryAfterSeconds} s`,
      extensions,
    );
  }
  if (hit.name === 'key_monthly_compute_units') {
    return new QuotaExceededError(`Monthly compute-unit budget of ${hit.limit} exhausted for this key; it resets in ${decision.retryAfterSeconds} s`, extensions);
  }
  return new RateLimitedError(
    `Rate limit ${hit.name} (${hit.limit} per ${hit.windowSeconds} s) exceeded; retry in ${decision.retryAfterSeconds} s`,
    extensions,
  );
}
