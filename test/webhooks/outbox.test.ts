/**
 * The outbox and the dispatcher on the run's Postgres, in process: an event
 * exists exactly when its transaction committed, repeats and unsubscribed
 * tenants add nothing, threshold events reach only endpoints listing the
 * percentage, and two dispatchers (two replicas) deliver 40 events exactly
 * once each between them (FOR UPDATE SKIP LOCKED) while a misconfigured
 * third cannot use up their attempts.
 */
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/log/logger';
import { enqueueWebhookEvents } from '../../src/webhooks/outbox';
import { SecretBox } from '../../src/webhooks/secret-box';
import { WebhookDispatcher } from '../../src/webhooks/dispatcher';
import { WebhookService } from '../../src/webhooks/webhook.service';
import { closeTestKeys, createTestKey, testKeyService } from '../helpers/auth';
import { Receiver } from './receiver';
import { until } from '../harness/until';

const log = createLogger({ level: 'silent', pretty: false });
const CLI = { principal: null, actor: 'test' };

describe('webhook outbox and dispatcher', () => {
  const receiver = new Receiver();
  const box = new SecretBox(randomBytes(32));
  let service: WebhookService;
  const dispatchers: WebhookDispatcher[] = [];

  beforeAll(async () => {
    await receiver.start();
    const { db, keys } = await testKeyService();
    service = new WebhookService({ db, tenants: keys, box, log, allowPrivateAddresses: true, keyExpiryDays: 7, keyExpiryScanIntervalMs: 60_000, retentionDays: 90, onEvents: () => undefined });
  });
  afterAll(async () => {
    await Promise.all(dispatchers.map((d) => d.close()));
    await receiver.close();
    await closeTestKeys();
  });

  const count = async (tenantId: string) => {
    const { db } = await testKeyService();
    return { events: await db.prisma.webhookEvent.count({ where: { tenantId } }), deliveries: await db.prisma.webhookDelivery.count({ where: { tenantId } }) };
  };

  it('writes an event only when its transaction commits, once per dedupe key, and only for tenants with a subscribed endpoint', async () => {
    const { db } = await testKeyService();
    const { tenantId } = await createTestKey({ scopes: ['inference'] });
    const other = await createTestKey({ scopes: ['inference'] });
    await service.create(CLI, tenantId, { url: receiver.url('/unused'), events: ['key.revoked'] });
    const event = { tenantId, type: 'key.revoked' as const, dedupeKey: `key.revoked:${randomBytes(4).toString('hex')}`, data: {} };
    await expect(
      db.prisma.$transaction(async (tx) => {
        expect(await enqueueWebhookEvents(tx, [event])).toEqual({ events: 1, deliveries: 1 });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await count(tenantId)).toEqual({ events: 0, deliveries: 0 });
    expect(await db.prisma.$transaction((tx) => enqueueWebhookEvents(tx, [event]))).toEqual({ events: 1, deliveries: 1 });
    expect(await db.prisma.$transaction((tx) => enqueueWebhookEvents(tx, [event]))).toEqual({ events: 0, deliveries: 0 });
    // Not subscribed: another type, or a tenant without endpoints.
    expect(await enqueueWebhookEvents(db.prisma, [{ ...event, type: 'key.expiring', dedupeKey: `${event.dedupeKey}:x` }])).toEqual({ events: 0, deliveries: 0 });
    expect(await enqueueWebhookEvents(db.prisma, [{ ...event, tenantId: other.tenantId, dedupeKey: `${event.dedupeKey}:y` }])).toEqual({ events: 0, deliveries: 0 });
    expect(await count(tenantId)).toEqual({ events: 1, deliveries: 1 });
  });

  it('refuses to create a webhook with UNAVAILABLE naming WEBHOOK_SECRET_ENCRYPTION_KEY when the gateway has no encryption key', async () => {
    const { db, keys } = await testKeyService();
    const { tenantId } = await createTestKey({ scopes: ['inference'] });
    const keyless = new WebhookService({ db, tenants: keys, box: null, log, allowPrivateAddresses: true, keyExpiryDays: 7, keyExpiryScanIntervalMs: 60_000, onEvents: () => undefined });
    await expect(keyless.create(CLI, tenantId, { url: receiver.url('/x') })).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('WEBHOOK_SECRET_ENCRYPTION_KEY') });
    expect(await db.prisma.webhookEndpoint.count({ where: { tenantId } })).toBe(0);
  });

  it('prunes events past the retention with their delivery log, but keeps one whose delivery is still pending', async () => {
    const { db } = await testKeyService();
    const { tenantId } = await createTestKey({ scopes: ['inference'] });
    await service.create(CLI, tenantId, { url: receiver.url('/old'), events: ['key.revoked'] });
    const mk = (i: number) => ({ tenantId, type: 'key.revoked' as const, dedupeKey: `old:${tenantId}:${i}`, data: {} });
    expect(await enqueueWebhookEvents(db.prisma, [mk(1), mk(2), mk(3)])).toEqual({ events: 3, deliveries: 3 });
    const [done, pending] = await db.prisma.webhookEvent.findMany({ where: { tenantId, dedupeKey: { in: [`old:${tenantId}:1`, `old:${tenantId}:2`] } }, orderBy: { dedupeKey: 'asc' } });
    await db.prisma.webhookDelivery.updateMany({ where: { eventId: { in: [done!.id, pending!.id] } }, data: { status: 'DELIVERED' } });
    await db.prisma.webhookDelivery.updateMany({ where: { eventId: pending!.id }, data: { status: 'PENDING', nextAttemptAt: new Date(Date.now() + 86_400_000) } });
    await db.prisma.webhookEvent.updateMany({ where: { id: { in: [done!.id, pending!.id] } }, data: { createdAt: new Date(Date.now() - 91 * 86_400_000) } });
    // Any gateway of the run may prune it first (each scan prunes); what is left is what counts.
    await service.prune();
    const left = await db.prisma.webhookEvent.findMany({ where: { tenantId }, select: { dedupeKey: true }, orderBy: { dedupeKey: 'asc' } });
    expect(left.map((e) => e.dedupeKey)).toEqual([`old:${tenantId}:2`, `old:${tenantId}:3`]);
    expect(await db.prisma.webhookDelivery.count({ where: { tenantId } })).toBe(2);
    await db.prisma.webhookEndpoint.updateMany({ where: { tenantId }, data: { enabled: false } });
  });

  it('sends a threshold event only to the endpoints that list its percentage', async () => {
    const { db } = await testKeyService();
    const { tenantId } = await createTestKey({ scopes: ['inference'] });
    const fifty = await service.create(CLI, tenantId, { url: receiver.url('/fifty'), thresholds: [50] });
    await service.create(CLI, tenantId, { url: receiver.url('/default') });
    const r = await enqueueWebhookEvents(db.prisma, [{ tenantId, type: 'quota.threshold', dedupeKey: `q:${tenantId}:50`, threshold: 50, data: {} }]);
    expect(r).toEqual({ events: 1, deliveries: 1 });
    expect((await db.prisma.webhookDelivery.findFirst({ where: { tenantId } }))?.endpointId).toBe(fifty.endpoint.id);
    await db.prisma.webhookEndpoint.updateMany({ where: { tenantId }, data: { enabled: false } });
  });

  it('delivers 40 events exactly once each with two dispatchers claiming at the same time, while a third with the wrong encryption key uses up no attempt', async () => {
    const { db } = await testKeyService();
    const { tenantId } = await createTestKey({ scopes: ['inference'] });
    await service.create(CLI, tenantId, { url: receiver.url('/two'), events: ['key.revoked'] });
    const events = Array.from({ length: 40 }, (_, i) => ({ tenantId, type: 'key.revoked' as const, dedupeKey: `two:${tenantId}:${i}`, data: { i } }));
    expect(await enqueueWebhookEvents(db.prisma, events)).toEqual({ events: 40, deliveries: 40 });
    for (const b of [box, box, new SecretBox(randomBytes(32))]) {
      dispatchers.push(new WebhookDispatcher({ db, box: b, log, registry: new Registry(), pollIntervalMs: 50, timeoutMs: 2000, maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 200, concurrency: 8, allowPrivateAddresses: true }));
    }
    for (const d of dispatchers) d.start();
    await receiver.until('40 deliveries', () => receiver.at('/two').length >= 40);
    const rows = () => db.prisma.webhookDelivery.findMany({ where: { tenantId } });
    await until('every delivery row DELIVERED', () => rows().then((r) => r.map((d) => d.status)), { accept: (statuses) => statuses.every((s) => s === 'DELIVERED') });
    await new Promise((resolve) => setTimeout(resolve, 300)); // a few more polls by both
    const got = receiver.at('/two');
    expect(got).toHaveLength(40);
    expect(new Set(got.map((g) => g.body.id)).size).toBe(40);
    expect((await rows()).map((d) => d.attempts)).toEqual(Array.from({ length: 40 }, () => 1));
  });
});
