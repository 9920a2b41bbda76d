/**
 * The transactional outbox. `enqueueWebhookEvents` runs inside the caller's
 * transaction, so an event exists exactly when the change that caused it
 * committed: a revocation that rolls back leaves no key.revoked, and a crash
 * after commit loses nothing (the dispatcher finds the rows). One statement
 * writes the events (ON CONFLICT on the dedupe key: a repeat is dropped) and
 * one delivery row per subscribed, enabled endpoint. A tenant with no
 * subscribed endpoint gets no event row at all, so the outbox does not grow
 * for tenants without webhooks.
 */
import { randomUUID } from 'node:crypto';
import type { Prisma } from '../db/generated/client';
import type { OutboxEvent } from './webhook-events';

/** What the outbox needs of a transaction (Prisma's interactive transaction client, or the client itself). */
export type SqlTx = Pick<Prisma.TransactionClient, '$queryRawUnsafe'>;

/** Matches an enabled endpoint `e` to an input row `i` (type subscribed; for thresholds, the percentage listed). */
const SUBSCRIBED = `e."tenantId" = i."tenantId" AND e."enabled"
  AND (e."events" IS NULL OR cardinality(e."events") = 0 OR i."type" = ANY(e."events"))
  AND (i."threshold" IS NULL OR i."threshold" = ANY(e."thresholds"))`;

const ENQUEUE_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r("id" uuid, "tenantId" uuid, "type" text, "dedupeKey" text, "data" jsonb, "threshold" int)
), ev AS (
  INSERT INTO "WebhookEvent" ("id", "tenantId", "type", "dedupeKey", "data", "createdAt")
  SELECT i."id", i."tenantId", i."type", i."dedupeKey", i."data", clock_timestamp()
  FROM input i WHERE EXISTS (SELECT 1 FROM "WebhookEndpoint" e WHERE ${SUBSCRIBED})
  ORDER BY i."dedupeKey"
  ON CONFLICT ("dedupeKey") DO NOTHING
  RETURNING "id", "createdAt"
), del AS (
  INSERT INTO "WebhookDelivery" ("id", "eventId", "endpointId", "tenantId", "status", "attempts", "nextAttemptAt", "createdAt")
  SELECT gen_random_uuid(), ev."id", e."id", i."tenantId", 'PENDING'::"WebhookDeliveryStatus", 0, ev."createdAt", ev."createdAt"
  FROM ev JOIN input i ON i."id" = ev."id" JOIN "WebhookEndpoint" e ON ${SUBSCRIBED}
  RETURNING 1
)
SELECT (SELECT count(*) FROM ev)::int AS "events", (SELECT count(*) FROM del)::int AS "deliveries"`;

/**
 * Writes events into the outbox inside the caller's transaction. Returns how
 * many were new (0 for repeats and for tenants without a subscribed endpoint).
 * This is the one entry point for other domains (credits.exhausted is meant
 * to be emitted through it from the credit balance's own transaction).
 */
export async function enqueueWebhookEvents(tx: SqlTx, events: OutboxEvent[]): Promise<{ events: number; deliveries: number }> {
  if (events.length === 0) return { events: 0, deliveries: 0 };
  const rows = events.map((e) => ({ id: randomUUID(), tenantId: e.tenantId, type: e.type, dedupeKey: e.dedupeKey, data: e.data, threshold: e.threshold ?? null }));
  const result = await tx.$queryRawUnsafe<{ events: number; deliveries: number }[]>(ENQUEUE_SQL, JSON.stringify(rows));
  return { events: Number(result[0]?.events ?? 0), deliveries: Number(result[0]?.deliveries ?? 0) };
}
