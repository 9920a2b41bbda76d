/**
 * HTTP and GraphQL shapes of a limit decision: the IETF httpapi draft
 * `RateLimit-Policy` / `RateLimit` headers (structured-field lists, one item
 * per limit), `Retry-After` on refusals, and the domain error for a refusal.
 */
import { OverloadedError, QuotaExceededError, RateLimitedError, UnavailableError, type DomainError } from '../errors';
import { QUOTA_LIMITS, type LimitDecision, type LimitState } from './types';

const COMPUTE_UNIT_LIMITS = new Set(['key_compute_units', 'tenant_compute_units', 'tenant_monthly_compute_units', 'key_monthly_compute_units', 'key_credits', 'tenant_credits']);

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

/**
 * Money budgets name their unit as micro-units of the currency
 * (qu="micros-USD"); a credit balance without refill has no window, so no `w`.
 */
function policyItem(s: LimitState): string {
  const unit = s.currency ? `;qu="micros-${s.currency}"` : COMPUTE_UNIT_LIMITS.has(s.name) ? ';qu="compute-units"' : '';
  return `"${s.name}";q=${s.limit}${s.windowSeconds > 0 ? `;w=${s.windowSeconds}` : ''}${unit}`;
}

const DESCRIPTIONS: Partial<Record<string, string>> = {
  tenant_monthly_compute_units: 'Monthly compute-unit quota',
  key_monthly_compute_units: 'Monthly compute-unit budget',
  key_monthly_spend: 'Monthly money budget',
  tenant_monthly_spend: 'Monthly money budget',
  key_credits: 'Credit balance',
  tenant_credits: 'Credit balance',
};

function refusalMessage(hit: LimitState, retryAfterSeconds: number): string {
  const owner = hit.name.startsWith('key_') ? 'this key' : 'this tenant';
  const amount = hit.currency ? `${hit.limit} micro-${hit.currency}` : `${hit.limit}`;
  if (hit.name === 'key_credits' || hit.name === 'tenant_credits') {
    return `Credit balance exhausted for ${owner} (${hit.remaining} compute units left); ${hit.windowSeconds > 0 ? `it refills in ${retryAfterSeconds} s` : 'it has no refill: an admin can grant credits'}`;
  }
  return `${DESCRIPTIONS[hit.name] ?? hit.name} of ${amount} exhausted for ${owner}; it resets in ${retryAfterSeconds} s`;
}

/**
 * The error for a refused decision: QUOTA_EXCEEDED for the monthly quota,
 * budgets (units or money) and credit balances (naming the limit; a budget
 * whose currency differs from the model's price adds reason CURRENCY_MISMATCH),
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
    limit: { name: hit.name, limit: hit.limit, windowSeconds: hit.windowSeconds, ...(hit.currency ? { currency: hit.currency } : {}) },
  };
  if (decision.reason === 'currency_mismatch') {
    return new QuotaExceededError(
      `The money budget ${hit.name} is in ${hit.currency ?? '?'} but this model is priced in ${decision.priceCurrency}: the budget cannot be charged, so the request is refused (an admin fixes the budget's currency or the price)`,
      { ...extensions, reason: 'CURRENCY_MISMATCH', priceCurrency: decision.priceCurrency },
    );
  }
  if (QUOTA_LIMITS.has(hit.name)) return new QuotaExceededError(refusalMessage(hit, decision.retryAfterSeconds), extensions);
  return new RateLimitedError(
    `Rate limit ${hit.name} (${hit.limit} per ${hit.windowSeconds} s) exceeded; retry in ${decision.retryAfterSeconds} s`,
    extensions,
  );
}
