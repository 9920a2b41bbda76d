/**
 * credits.exhausted, from the limiter's decisions. A credit balance lives in
 * Redis (the limiter's atomic check consumes it), so no Postgres transaction
 * changes when it runs out; the event is written to the outbox on its own,
 * off the request path (the decision observer returns at once). Delivery is
 * still at least once: the dedupe key (balance and period) makes every
 * replica's insert of the same exhaustion one event, and a lost insert
 * (process killed in between) is written again by the next request the empty
 * balance refuses.
 */
import type { Principal } from '../auth/principal';
import type { LimitDecision } from '../ratelimit/types';
import { creditPeriod } from '../ratelimit/limits';
import type { Logger } from '../log/logger';
import { enqueueWebhookEvents, type SqlTx } from './outbox';
import type { OutboxEvent } from './webhook-events';

export interface CreditAlertsOptions {
  db: { readonly prisma: SqlTx };
  log: Logger;
  /** Wakes the local dispatcher after an event was written. */
  onEvents: () => void;
  now?: () => Date;
}

/** Dedupe keys this process already wrote (or is writing): an empty balance refuses many requests, the outbox needs one insert. */
const REMEMBERED = 10_000;

export function creditAlerts(options: CreditAlertsOptions): (principal: Principal, decision: LimitDecision) => void {
  const written = new Set<string>();
  const now = options.now ?? (() => new Date());
  return (principal, decision) => {
    for (const state of decision.states) {
      if ((state.name !== 'key_credits' && state.name !== 'tenant_credits') || state.remaining > 0) continue;
      const key = state.name === 'key_credits';
      const credits = key ? principal.limits.keyCredits : principal.limits.tenantCredits;
      if (!credits) continue;
      const at = now();
      // The limiter's own refill period (d:YYYY-MM-DD, m:YYYY-MM); a balance without refill
      // (top-ups only) has one endless period, so it fires at most once per UTC day instead.
      const period = credits.refill ? creditPeriod(credits, at).id : `n:${at.toISOString().slice(0, 10)}`;
      const dedupeKey = `credits.exhausted:${key ? principal.apiKeyId : principal.tenantId}:${state.name}:${period}`;
      if (written.has(dedupeKey)) continue;
      if (written.size >= REMEMBERED) written.clear();
      written.add(dedupeKey);
      const event: OutboxEvent = {
        tenantId: principal.tenantId,
        type: 'credits.exhausted',
        dedupeKey,
        data: { limit: state.name, apiKeyId: key ? principal.apiKeyId : null, period, refillAmount: credits.refill?.amount ?? null, refillInSeconds: credits.refill ? state.resetSeconds : null },
      };
      enqueueWebhookEvents(options.db.prisma, [event]).then(
        (r) => {
          if (r.events > 0) options.onEvents();
        },
        (error: unknown) => {
          // Forget it, so the next refusal tries again.
          written.delete(dedupeKey);
          options.log.warn({ reason: error instanceof Error ? error.message : String(error), limit: state.name }, 'credits.exhausted not written to the outbox; the next refused request retries');
        },
      );
    }
  };
}
