/**
 * The alert events a tenant can subscribe a webhook to, and the body every
 * delivery carries. Kept free of I/O so the usage and key domains' hooks, the
 * dispatcher and the GraphQL types share one list.
 */

/**
 * - quota.threshold: the tenant's monthly compute-unit quota passed one of the endpoint's percentages.
 * - budget.threshold: a key's monthly compute-unit budget passed one of them.
 * - credits.exhausted: a prepaid credit balance reached zero (declared for the credits branch; nothing emits it yet).
 * - key.expiring: a key expires within WEBHOOK_KEY_EXPIRY_DAYS.
 * - key.revoked: a key was revoked.
 * - ratelimit.breached: one key had WEBHOOK_RATE_LIMIT_BURST or more RATE_LIMITED requests within one UTC minute.
 */
export const WEBHOOK_EVENT_TYPES = ['quota.threshold', 'budget.threshold', 'credits.exhausted', 'key.expiring', 'key.revoked', 'ratelimit.breached'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export function isWebhookEventType(value: string): value is WebhookEventType {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(value);
}

export const DEFAULT_THRESHOLDS = [80, 90, 100] as const;

/** One event to write to the outbox inside the caller's transaction. */
export interface OutboxEvent {
  tenantId: string;
  type: WebhookEventType;
  /**
   * Unique per occurrence: a second event with the same key is dropped by the
   * database, which is what makes "fires once per period" hold across
   * replicas, retries and replays (e.g. quota.threshold:<tenant>:tenant_monthly_compute_units:2026-12:<limit>:80).
   */
  dedupeKey: string;
  data: Record<string, unknown>;
  /** Threshold events go only to endpoints that list this percentage. */
  threshold?: number | null;
}

/** The JSON body POSTed to the receiver (and signed). */
export interface WebhookBody {
  /** The event id: the same on every attempt, for the receiver's idempotency. */
  id: string;
  type: string;
  createdAt: string;
  tenantId: string;
  data: unknown;
}

/**
 * One limit to check for threshold crossings after a change, generic so any
 * counter (compute-unit quota and budgets here; money budgets and credits
 * elsewhere) plugs in: the event fires for each threshold t with
 * usedBefore < limit × t / 100 ≤ usedAfter.
 */
export interface ThresholdLimit {
  type: Extract<WebhookEventType, 'quota.threshold' | 'budget.threshold'>;
  tenantId: string;
  /** The key the limit belongs to; null for a tenant-wide limit. */
  apiKeyId: string | null;
  /** The limit's name as the limiter reports it (tenant_monthly_compute_units, key_monthly_compute_units, …). */
  name: string;
  limit: number;
  usedBefore: number;
  usedAfter: number;
  /** The period the limit counts (YYYY-MM for monthly ones): one event per threshold per period. */
  period: string;
}

/** The threshold events a change causes: each crossed percentage once, deduplicated per period by the outbox. */
export function thresholdEvents(limits: ThresholdLimit[], thresholdsFor: (tenantId: string) => readonly number[]): OutboxEvent[] {
  const events: OutboxEvent[] = [];
  for (const l of limits) {
    if (!(l.limit > 0)) continue;
    for (const t of thresholdsFor(l.tenantId)) {
      const boundary = (l.limit * t) / 100;
      if (l.usedBefore < boundary && l.usedAfter >= boundary) {
        events.push({
          tenantId: l.tenantId,
          type: l.type,
          // The limit value is part of the key: a quota changed mid-period re-arms its thresholds.
          dedupeKey: `${l.type}:${l.apiKeyId ?? l.tenantId}:${l.name}:${l.period}:${l.limit}:${t}`,
          threshold: t,
          data: { limit: l.name, apiKeyId: l.apiKeyId, threshold: t, limitValue: l.limit, used: l.usedAfter, period: l.period },
        });
      }
    }
  }
  return events;
}
