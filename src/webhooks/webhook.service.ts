/**
 * Webhook endpoints (create, update, delete, rotate), the delivery log, and
 * key.expiring (key.revoked is written inside the revocation's transaction,
 * key-events.ts): key.expiring (a
 * periodic scan on every replica; its dedupe key makes the replicas' scans
 * idempotent). Access: admins reach every tenant, a keys:manage key only its
 * own (the tenant lookup enforces it). Every change writes an audit event in
 * its transaction; the secret is in no audit row and no log line.
 */
import type { Database } from '../db/database';
import type { Prisma, Tenant, WebhookDelivery, WebhookEndpoint } from '../db/generated/client';
import { BadInputError, NotFoundError } from '../errors';
import type { Logger } from '../log/logger';
import { hasScope } from '../auth/scopes';
import { auditActor, isAdmin } from '../auth/actor';
import type { Caller } from '../keys/key.service';
import { afterCursor, pageSize, toPage, type Page, type PageArgs } from '../keys/pagination';
import { enqueueWebhookEvents } from './outbox';
import { generateSecret } from './signing';
import { missingKeyError, type SecretBox } from './secret-box';
import { validateWebhookUrl } from './url-guard';
import { DEFAULT_THRESHOLDS, WEBHOOK_EVENT_TYPES, isWebhookEventType, type OutboxEvent } from './webhook-events';
import { UUID } from '../ids/ids';

/** Resolves a tenant reference the caller may reach (KeyService.getTenant). */
export interface TenantLookup {
  getTenant(caller: Caller, ref: string): Promise<Tenant>;
}

export interface WebhookInput {
  url?: string;
  /** Empty or absent on create: every event type. */
  events?: string[];
  thresholds?: number[];
  enabled?: boolean;
}

export interface DeliveryFilter {
  tenant?: string | null;
  endpointId?: string | null;
  eventId?: string | null;
  status?: 'PENDING' | 'DELIVERED' | 'FAILED' | null;
}

export type DeliveryRow = WebhookDelivery & { event: { type: string }; endpoint: { url: string } };

export interface WebhookServiceOptions {
  db: Database;
  tenants: TenantLookup;
  /** null: no encryption key (Postgres mode without WEBHOOK_SECRET_ENCRYPTION_KEY). */
  box: SecretBox | null;
  log: Logger;
  allowPrivateAddresses: boolean;
  keyExpiryDays: number;
  keyExpiryScanIntervalMs: number;
  /** Events (with their deliveries) older than this are deleted by the periodic scan; absent: kept. */
  retentionDays?: number;
  /** Wakes the local dispatcher after a commit that wrote events. */
  onEvents: () => void;
}

const MAX_ENDPOINTS_PER_TENANT = 20;

export class WebhookService {
  private scanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | null = null;

  constructor(private readonly options: WebhookServiceOptions) {}

  private get prisma() {
    return this.options.db.prisma;
  }

  // ---- endpoints ------------------------------------------------------------

  async create(caller: Caller, tenantRef: string, input: WebhookInput): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const box = this.requireBox();
    const tenant = await this.options.tenants.getTenant(caller, tenantRef);
    if (input.url === undefined) throw new BadInputError('Give the url', 'url');
    const secret = generateSecret();
    const data = {
      tenantId: tenant.id,
      url: validateWebhookUrl(input.url, this.options.allowPrivateAddresses),
      events: eventList(input.events ?? []),
      thresholds: thresholdList(input.thresholds ?? [...DEFAULT_THRESHOLDS]),
      enabled: input.enabled ?? true,
      secretCiphertext: box.encrypt(secret),
      secretPrefix: secret.slice(0, 12),
    };
    const endpoint = await this.prisma.$transaction(async (tx) => {
      if ((await tx.webhookEndpoint.count({ where: { tenantId: tenant.id } })) >= MAX_ENDPOINTS_PER_TENANT) {
        throw new BadInputError(`A tenant has at most ${MAX_ENDPOINTS_PER_TENANT} webhooks`, 'tenant');
      }
      const created = await tx.webhookEndpoint.create({ data });
      await audit(tx, caller, 'webhook.create', created, null, view(created));
      return created;
    });
    this.options.log.info({ webhookId: endpoint.id, tenantId: tenant.id, url: endpoint.url }, 'webhook created');
    return { endpoint, secret };
  }

  async update(caller: Caller, id: string, input: WebhookInput): Promise<WebhookEndpoint> {
    const data: Prisma.WebhookEndpointUpdateInput = {};
    if (input.url !== undefined) data.url = validateWebhookUrl(input.url, this.options.allowPrivateAddresses);
    if (input.events !== undefined) data.events = eventList(input.events);
    if (input.thresholds !== undefined) data.thresholds = thresholdList(input.thresholds);
    if (input.enabled !== undefined) data.enabled = input.enabled;
    return this.prisma.$transaction(async (tx) => {
      const before = await this.find(tx, caller, id);
      const after = await tx.webhookEndpoint.update({ where: { id: before.id }, data });
      await audit(tx, caller, 'webhook.update', after, view(before), view(after));
      return after;
    });
  }

  async delete(caller: Caller, id: string): Promise<boolean> {
    await this.prisma.$transaction(async (tx) => {
      const before = await this.find(tx, caller, id);
      await tx.webhookEndpoint.delete({ where: { id: before.id } });
      await audit(tx, caller, 'webhook.delete', before, view(before), null);
    });
    return true;
  }

  async rotateSecret(caller: Caller, id: string): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const box = this.requireBox();
    const secret = generateSecret();
    const endpoint = await this.prisma.$transaction(async (tx) => {
      const before = await this.find(tx, caller, id);
      const after = await tx.webhookEndpoint.update({ where: { id: before.id }, data: { secretCiphertext: box.encrypt(secret), secretPrefix: secret.slice(0, 12) } });
      await audit(tx, caller, 'webhook.rotate_secret', after, view(before), view(after));
      return after;
    });
    return { endpoint, secret };
  }

  async list(caller: Caller, tenantRef: string | null | undefined): Promise<WebhookEndpoint[]> {
    const tenantId = await this.tenantScope(caller, tenantRef);
    return this.prisma.webhookEndpoint.findMany({ where: tenantId ? { tenantId } : {}, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: 1000 });
  }

  // ---- delivery log -----------------------------------------------------------

  async deliveries(caller: Caller, filter: DeliveryFilter, args: PageArgs): Promise<Page<DeliveryRow>> {
    const size = pageSize(args.first);
    const { where: cursorWhere, orderBy } = afterCursor(args.after);
    const tenantId = await this.tenantScope(caller, filter.tenant);
    const rows = await this.prisma.webhookDelivery.findMany({
      where: {
        AND: [
          cursorWhere,
          tenantId ? { tenantId } : {},
          filter.endpointId ? { endpointId: uuid(filter.endpointId, 'endpointId') } : {},
          filter.eventId ? { eventId: uuid(filter.eventId, 'eventId') } : {},
          filter.status ? { status: filter.status } : {},
        ],
      },
      include: { event: { select: { type: true } }, endpoint: { select: { url: true } } },
      orderBy,
      take: size + 1,
    });
    return toPage(rows, size, args.after);
  }

  /** node(id) for this domain: a webhook or a delivery, read by admin or keys:manage in its tenant (as the direct queries); null otherwise. */
  async nodeById(caller: Caller, id: string): Promise<{ kind: 'Webhook'; row: WebhookEndpoint } | { kind: 'WebhookDelivery'; row: DeliveryRow } | null> {
    if (!UUID.test(id)) return null;
    const may = (tenantId: string) => isAdmin(caller) || (caller.principal !== null && hasScope(caller.principal, 'keys:manage') && caller.principal.tenantId === tenantId);
    const [endpoint, delivery] = await Promise.all([
      this.prisma.webhookEndpoint.findUnique({ where: { id } }),
      this.prisma.webhookDelivery.findUnique({ where: { id }, include: { event: { select: { type: true } }, endpoint: { select: { url: true } } } }),
    ]);
    if (endpoint && may(endpoint.tenantId)) return { kind: 'Webhook', row: endpoint };
    if (delivery && may(delivery.tenantId)) return { kind: 'WebhookDelivery', row: delivery };
    return null;
  }

  /** Schedules a delivery again now (after FAILED, or to resend a DELIVERED one), same event id. */
  async redeliver(caller: Caller, deliveryId: string): Promise<DeliveryRow> {
    const id = uuid(deliveryId, 'id');
    const row = await this.prisma.$transaction(async (tx) => {
      const found = await tx.webhookDelivery.findUnique({ where: { id } });
      if (!found || !(await this.mayReach(caller, found.tenantId))) throw new NotFoundError('Unknown webhook delivery', { id });
      const updated = await tx.webhookDelivery.update({
        where: { id },
        data: { status: 'PENDING', nextAttemptAt: new Date(), leaseUntil: null },
        include: { event: { select: { type: true } }, endpoint: { select: { url: true } } },
      });
      await tx.auditEvent.create({ data: { ...auditActor(caller), action: 'webhook.redeliver', targetType: 'WebhookDelivery', targetId: id, tenantId: found.tenantId } });
      return updated;
    });
    this.options.onEvents();
    return row;
  }

  // ---- key events ----------------------------------------------------------

  /** Starts the periodic key.expiring scan. */
  start(): void {
    const tick = () => {
      this.scanning ??= this.scanExpiringKeys()
        .then(() => this.prune())
        .catch((error: unknown) => this.options.log.warn({ err: error }, 'key expiry scan failed; retrying at the next interval'))
        .then(() => undefined)
        .finally(() => {
          this.scanning = null;
        });
    };
    this.scanTimer = setInterval(tick, this.options.keyExpiryScanIntervalMs);
    this.scanTimer.unref();
    tick();
  }

  async close(): Promise<void> {
    if (this.scanTimer) clearInterval(this.scanTimer);
    await this.scanning;
  }

  /**
   * One key.expiring per key and expiry instant (a changed expiresAt warns
   * again), for tenants with a subscribed endpoint. Returns events written.
   */
  async scanExpiringKeys(): Promise<number> {
    const rows = await this.prisma.$queryRawUnsafe<{ id: string; tenantId: string; name: string; prefix: string; expiresAt: Date; dedupeKey: string }[]>(
      `SELECT k."id"::text AS "id", k."tenantId"::text AS "tenantId", k."name", k."prefix", k."expiresAt",
              'key.expiring:' || k."id" || ':' || to_char(k."expiresAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "dedupeKey"
       FROM "ApiKey" k
       WHERE k."revokedAt" IS NULL AND k."expiresAt" > now() AND k."expiresAt" <= now() + $1::int * interval '1 day'
         AND EXISTS (SELECT 1 FROM "WebhookEndpoint" e WHERE e."tenantId" = k."tenantId" AND e."enabled"
                     AND (e."events" IS NULL OR cardinality(e."events") = 0 OR 'key.expiring' = ANY(e."events")))
         AND NOT EXISTS (SELECT 1 FROM "WebhookEvent" ev WHERE ev."dedupeKey" = 'key.expiring:' || k."id" || ':' || to_char(k."expiresAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
       ORDER BY k."expiresAt" LIMIT 1000`,
      this.options.keyExpiryDays,
    );
    if (rows.length === 0) return 0;
    const now = Date.now();
    const events: OutboxEvent[] = rows.map((k) => ({
      tenantId: k.tenantId,
      type: 'key.expiring',
      dedupeKey: k.dedupeKey,
      data: { apiKeyId: k.id, name: k.name, prefix: k.prefix, expiresAt: new Date(k.expiresAt).toISOString(), daysLeft: Math.max(0, Math.ceil((new Date(k.expiresAt).getTime() - now) / 86_400_000)) },
    }));
    const written = await enqueueWebhookEvents(this.prisma, events);
    if (written.events > 0) this.options.onEvents();
    return written.events;
  }

  /**
   * Deletes events older than the retention (their deliveries go with them),
   * at most 1000 per scan so a backlog never makes one long transaction. Safe
   * for deduplication: every dedupe key names a period (a month, a minute),
   * an expiry instant within WEBHOOK_KEY_EXPIRY_DAYS, or a revoked key, all
   * of which are over long before 40 days. A delivery still PENDING keeps its event.
   */
  async prune(): Promise<number> {
    if (!this.options.retentionDays) return 0;
    return this.prisma.$executeRawUnsafe(
      `DELETE FROM "WebhookEvent" WHERE "id" IN (
         SELECT ev."id" FROM "WebhookEvent" ev
         WHERE ev."createdAt" < now() - $1::int * interval '1 day'
           AND NOT EXISTS (SELECT 1 FROM "WebhookDelivery" d WHERE d."eventId" = ev."id" AND d."status" = 'PENDING')
         LIMIT 1000)`,
      this.options.retentionDays,
    );
  }

  // ---- access -------------------------------------------------------------

  private requireBox(): SecretBox {
    if (!this.options.box) throw missingKeyError();
    return this.options.box;
  }

  /** null: every tenant (an admin naming none). */
  private async tenantScope(caller: Caller, ref: string | null | undefined): Promise<string | null> {
    if (ref) return (await this.options.tenants.getTenant(caller, ref)).id;
    if (isAdmin(caller)) return null;
    if (!caller.principal) throw new BadInputError('Name the tenant', 'tenant');
    return caller.principal.tenantId;
  }

  private async mayReach(caller: Caller, tenantId: string): Promise<boolean> {
    return isAdmin(caller) || caller.principal?.tenantId === tenantId;
  }

  /** Another tenant's webhook reads as unknown. */
  private async find(tx: Prisma.TransactionClient, caller: Caller, id: string): Promise<WebhookEndpoint> {
    const endpoint = await tx.webhookEndpoint.findUnique({ where: { id: uuid(id, 'id') } });
    if (!endpoint || !(await this.mayReach(caller, endpoint.tenantId))) throw new NotFoundError('Unknown webhook', { id: id.trim() });
    return endpoint;
  }
}

function uuid(value: string, field: string): string {
  const v = value.trim();
  if (!UUID.test(v)) throw new BadInputError(`${field} must be a UUID`, field);
  return v;
}

function eventList(values: string[]): string[] {
  const events = [...new Set(values.map((v) => v.trim()))];
  for (const e of events) {
    if (!isWebhookEventType(e)) throw new BadInputError(`Unknown event type "${e.slice(0, 64)}"; known: ${WEBHOOK_EVENT_TYPES.join(', ')}`, 'events');
  }
  return events;
}

function thresholdList(values: number[]): number[] {
  const list = [...new Set(values)].sort((a, b) => a - b);
  if (list.length > 10) throw new BadInputError('At most 10 thresholds', 'thresholds');
  for (const t of list) {
    if (!Number.isInteger(t) || t < 1 || t > 100) throw new BadInputError('Thresholds are whole percentages from 1 to 100', 'thresholds');
  }
  return list;
}

/** An endpoint as the audit trail shows it: never the secret (its prefix only). */
function view(e: WebhookEndpoint): Prisma.InputJsonObject {
  return { id: e.id, tenantId: e.tenantId, url: e.url, events: e.events, thresholds: e.thresholds, enabled: e.enabled, secretPrefix: e.secretPrefix };
}

async function audit(tx: Prisma.TransactionClient, caller: Caller, action: string, e: WebhookEndpoint, before: Prisma.InputJsonObject | null, after: Prisma.InputJsonObject | null): Promise<void> {
  await tx.auditEvent.create({
    data: { ...auditActor(caller), action, targetType: 'WebhookEndpoint', targetId: e.id, tenantId: e.tenantId, ...(before ? { before } : {}), ...(after ? { after } : {}) },
  });
}
