/**
 * Delivers the outbox, at least once, from every replica. Nothing on the
 * request path waits for it: the request path only commits rows; this loop
 * finds them.
 *
 * Claiming is one statement: due PENDING deliveries are picked with
 * `FOR UPDATE SKIP LOCKED` (replicas never claim the same rows) and given a
 * lease (leaseUntil = now + timeout + margin) and attempts + 1. A replica
 * killed mid-delivery leaves its lease, which expires; the next claim by any
 * replica (or the restarted one) retries the same event id. The attempt
 * number is the fencing token: a late answer from an expired lease cannot
 * overwrite a newer attempt's outcome. PGlite (embedded, one connection)
 * runs the same SQL; SKIP LOCKED is then simply never needed.
 *
 * Outcome: a 2xx answer marks it DELIVERED; anything else (status, timeout,
 * refused connection) schedules the next attempt after
 * min(WEBHOOK_RETRY_MAX_MS, WEBHOOK_RETRY_BASE_MS × 2^(attempts−1)) with ±50 %
 * jitter, up to WEBHOOK_MAX_ATTEMPTS, then FAILED. The delivery log, which
 * the tenant reads, records why as a class (failureClass); the operator's log
 * line has the error's own text.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { PrismaClient } from '../db/database';
import type { Logger } from '../log/logger';
import type { Config } from '../config';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signatureHeader } from './signing';
import type { SecretBox } from './secret-box';
import { assertPublicTarget, PrivateTargetError } from './url-guard';
import type { WebhookBody } from './webhook-events';

/** The WEBHOOK_* settings it uses, as the config module parsed them. */
type DispatchSettings = Pick<Config['webhooks'], 'pollIntervalMs' | 'timeoutMs' | 'maxAttempts' | 'retryBaseMs' | 'retryMaxMs' | 'concurrency' | 'allowPrivateAddresses'>;

export interface DispatcherOptions extends DispatchSettings {
  db: { readonly prisma: PrismaClient };
  box: SecretBox;
  log: Logger;
  registry: Registry;
}

interface Claimed {
  id: string;
  attempts: number;
  eventId: string;
  type: string;
  tenantId: string;
  data: unknown;
  eventCreatedAt: Date;
  url: string;
  endpointId: string;
  secretCiphertext: string;
}

const CLAIM_SQL = `
WITH due AS (
  SELECT d."id" FROM "WebhookDelivery" d
  WHERE d."status" = 'PENDING' AND d."nextAttemptAt" <= now() AND (d."leaseUntil" IS NULL OR d."leaseUntil" < now())
    AND EXISTS (SELECT 1 FROM "WebhookEndpoint" e WHERE e."id" = d."endpointId" AND e."enabled" AND e."secretCiphertext" <> ALL($3::text[]))
  ORDER BY d."nextAttemptAt" LIMIT $1
  FOR UPDATE SKIP LOCKED
)
UPDATE "WebhookDelivery" d SET "leaseUntil" = now() + $2::int * interval '1 millisecond', "attempts" = d."attempts" + 1, "lastAttemptAt" = now()
FROM due, "WebhookEvent" ev, "WebhookEndpoint" e
WHERE d."id" = due."id" AND ev."id" = d."eventId" AND e."id" = d."endpointId"
RETURNING d."id"::text AS "id", d."attempts", ev."id"::text AS "eventId", ev."type", ev."tenantId"::text AS "tenantId", ev."data", ev."createdAt" AS "eventCreatedAt", e."url", e."id"::text AS "endpointId", e."secretCiphertext"`;

/** Lease beyond the request timeout: covers the bookkeeping after the answer. */
const LEASE_MARGIN_MS = 2_000;
const MAX_DETAIL_LENGTH = 300;

export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private claiming: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private dbErrorLogged = false;
  private readonly undecryptable = new Set<string>();
  private readonly outcomes: Counter<'outcome'>;
  private readonly latency: Histogram;

  constructor(private readonly options: DispatcherOptions) {
    this.outcomes = new Counter({
      name: 'modelgate_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome (delivered, retry: will be tried again, failed: gave up after WEBHOOK_MAX_ATTEMPTS)',
      labelNames: ['outcome'],
      registers: [options.registry],
    });
    this.latency = new Histogram({
      name: 'modelgate_webhook_delivery_lag_seconds',
      help: 'From the event committed to the outbox to the receiver acknowledging it (includes retries)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [options.registry],
    });
  }

  start(): void {
    this.schedule(0);
  }

  /** Something was just committed to the outbox here: look now instead of at the next poll. */
  kick(): void {
    if (!this.closed) this.schedule(0);
  }

  /** Stops claiming; waits for attempts in flight (each bounded by the timeout). Unfinished ones are retried elsewhere after their lease. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.claiming;
    await Promise.allSettled([...this.inFlight]);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), ms);
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    this.claiming = this.claimAndSend()
      .catch((error: unknown) => {
        if (!this.dbErrorLogged) this.options.log.warn({ err: error }, 'webhook dispatcher cannot reach the database; retrying at the next poll');
        this.dbErrorLogged = true;
      })
      .finally(() => {
        this.claiming = null;
        const more = this.again;
        this.again = false;
        this.schedule(more ? 0 : this.options.pollIntervalMs);
      });
  }

  private async claimAndSend(): Promise<void> {
    const free = this.options.concurrency - this.inFlight.size;
    if (free <= 0) return;
    const claimed = await this.options.db.prisma.$queryRawUnsafe<Claimed[]>(CLAIM_SQL, free, this.options.timeoutMs + LEASE_MARGIN_MS, [...this.undecryptable]);
    this.dbErrorLogged = false;
    for (const c of claimed) {
      const p: Promise<void> = this.deliver(c)
        .catch((error: unknown) => this.options.log.warn({ err: error, deliveryId: c.id }, 'webhook delivery bookkeeping failed; the lease expires and it is retried'))
        .finally(() => {
          this.inFlight.delete(p);
          this.kick();
        });
      this.inFlight.add(p);
    }
    // A full claim: there may be more due right away.
    if (claimed.length === free) this.again = true;
  }

  private async deliver(c: Claimed): Promise<void> {
    const body: WebhookBody = { id: c.eventId, type: c.type, createdAt: new Date(c.eventCreatedAt).toISOString(), tenantId: c.tenantId, data: c.data };
    const json = JSON.stringify(body);
    let secret: string;
    try {
      secret = this.options.box.decrypt(c.secretCiphertext);
    } catch {
      await this.release(c);
      return;
    }
    let status: number | null = null;
    let error: string | null = null;
    let detail: string | null = null;
    try {
      await assertPublicTarget(c.url, this.options.allowPrivateAddresses);
      const response = await fetch(c.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'modelgate-webhooks/1',
          [SIGNATURE_HEADER]: signatureHeader(secret, json, Math.floor(Date.now() / 1000)),
          [EVENT_ID_HEADER]: c.eventId,
        },
        body: json,
        // Redirects are not followed: a 3xx could point the gateway anywhere (SSRF).
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      status = response.status;
      await response.body?.cancel().catch(() => undefined);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (e) {
      error = failureClass(e);
      detail = describe(e);
    }
    const prisma = this.options.db.prisma;
    if (error === null) {
      await prisma.$executeRawUnsafe(
        `UPDATE "WebhookDelivery" SET "status" = 'DELIVERED', "deliveredAt" = now(), "lastStatusCode" = $2, "lastError" = NULL, "leaseUntil" = NULL WHERE "id" = $1::uuid AND "attempts" = $3`,
        c.id,
        status,
        c.attempts,
      );
      this.outcomes.inc({ outcome: 'delivered' });
      this.latency.observe(Math.max(0, Date.now() - new Date(c.eventCreatedAt).getTime()) / 1000);
      return;
    }
    const failed = c.attempts >= this.options.maxAttempts;
    const delay = this.backoffMs(c.attempts);
    await prisma.$executeRawUnsafe(
      `UPDATE "WebhookDelivery" SET "status" = $2::"WebhookDeliveryStatus", "nextAttemptAt" = now() + $3::int * interval '1 millisecond', "lastStatusCode" = $4, "lastError" = $5, "leaseUntil" = NULL
       WHERE "id" = $1::uuid AND "attempts" = $6`,
      c.id,
      failed ? 'FAILED' : 'PENDING',
      delay,
      status,
      error,
      c.attempts,
    );
    this.outcomes.inc({ outcome: failed ? 'failed' : 'retry' });
    this.options.log.info(
      { deliveryId: c.id, eventId: c.eventId, webhookId: c.endpointId, attempts: c.attempts, error, ...(detail ? { detail: detail.slice(0, MAX_DETAIL_LENGTH) } : {}), ...(failed ? {} : { retryInMs: delay }) },
      failed ? 'webhook delivery failed; giving up' : 'webhook delivery failed; retrying',
    );
  }

  /**
   * This replica's key cannot open the endpoint's secret (WEBHOOK_SECRET_ENCRYPTION_KEY
   * differs from the replica that stored it): hand the delivery back
   * uncounted, so a misconfigured replica cannot use up a delivery's attempts.
   */
  private async release(c: Claimed): Promise<void> {
    if (!this.undecryptable.has(c.secretCiphertext)) {
      // Not claimed again by this replica (a secret stored anew, e.g. rotated, is tried again).
      this.undecryptable.add(c.secretCiphertext);
      this.options.log.error({ webhookId: c.endpointId }, 'cannot decrypt this webhook secret: WEBHOOK_SECRET_ENCRYPTION_KEY differs from the key that stored it; leaving its deliveries to other replicas');
    }
    await this.options.db.prisma.$executeRawUnsafe(
      `UPDATE "WebhookDelivery" SET "attempts" = "attempts" - 1, "leaseUntil" = NULL WHERE "id" = $1::uuid AND "attempts" = $2`,
      c.id,
      c.attempts,
    );
  }

  /** Exponential with ±50 % jitter, so receivers coming back are not hit by every retry at once. */
  private backoffMs(attempts: number): number {
    const base = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** Math.min(30, attempts - 1));
    return Math.round(base * (0.5 + Math.random()));
  }
}

const FAILURE_CLASSES: [RegExp, string][] = [
  [/^(ENOTFOUND|EAI_AGAIN|EAI_FAIL|EAI_NONAME|EAI_NODATA|ENODATA|ESERVFAIL|ENONAME)$/, 'DNS lookup failed'],
  [/^ECONNREFUSED$/, 'connection refused'],
  [/^(ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED)$/, 'connection reset'],
  [/^(ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT)$/, 'timed out'],
  [/^(EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ENETDOWN|EADDRNOTAVAIL)$/, 'host unreachable'],
  [/^ERR_(TLS|SSL)_|CERT|^UNABLE_TO_|^DEPTH_ZERO|SELF_SIGNED/, 'TLS handshake failed'],
];

/**
 * Why an attempt failed, as the tenant's delivery log says it: one of a few
 * classes (README, "Webhooks"), never the error's own text, which can carry
 * what the gateway's resolver answered or addresses inside its network.
 */
export function failureClass(error: unknown): string {
  if (error instanceof PrivateTargetError) return 'address not allowed';
  // Read by shape, not instanceof: AbortSignal's TimeoutError is a DOMException.
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth += 1) {
    const { name, code } = e as { name?: unknown; code?: unknown };
    if (name === 'TimeoutError') return 'timed out';
    if (typeof code === 'string') {
      const known = FAILURE_CLASSES.find(([pattern]) => pattern.test(code));
      if (known) return known[1];
    }
  }
  return 'connection failed';
}

/** The error's own text, for the operator's log. */
function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? `: ${(cause as { code?: string }).code ?? cause.message}` : '';
    return error.name === 'TimeoutError' ? 'timed out' : `${error.message}${detail}`;
  }
  return String(error);
}
