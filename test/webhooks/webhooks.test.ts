/**
 * Webhooks through the built gateway (node dist/main.js, NODE_ENV=production,
 * real Postgres and Redis) and a receiver this test runs: signatures verify
 * with the README's check, quota thresholds fire exactly once each, key
 * revocation and expiry notify, a receiver that is down gets the same event
 * once it is back, and a gateway SIGKILLed mid-delivery delivers it after
 * its restart.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Pool } from 'pg';
import { ProductionGateway, productionEnv, sleep, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { freePort } from '../helpers/capture';
import { testEnv } from '../helpers/env';
import { Receiver } from './receiver';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const INFER = `mutation { infer(input: {model: "fashion-cnn", inputs: [{name: "image", datatype: FP32, shape: [1,1,28,28], data: [${new Array(784).fill(0).join(',')}]}]}) { outputs { name } } }`;

/** The README's verification snippet, as a receiver would write it. */
function verify(secret: string, rawBody: string, header: string, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe('webhooks (production gateway)', () => {
  const receiver = new Receiver();
  let gw: ProductionGateway;
  let admin: TestKey;
  let pool: Pool;

  const gql = async <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}, key = admin.key) => {
    const r = await gw.graphql<T>(query, variables, authHeaders(key));
    return r.body!;
  };

  async function createWebhook(tenantId: string, url: string, events: string[]): Promise<{ id: string; secret: string }> {
    const r = await gql<{ createWebhook: { secret: string; webhook: { id: string; secretPrefix: string } } }>(
      'mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { id secretPrefix thresholds } } }',
      { input: { tenant: tenantId, url, events } },
    );
    expect(r.errors).toBeUndefined();
    const created = r.data!.createWebhook;
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.secret.startsWith(created.webhook.secretPrefix)).toBe(true);
    return { id: created.webhook.id, secret: created.secret };
  }

  beforeAll(async () => {
    await receiver.start();
    pool = new Pool({ connectionString: testEnv.databaseUrl, max: 2 });
    admin = await createTestKey({ scopes: ['admin'] });
    gw = await ProductionGateway.start({
      ...productionEnv(),
      LOG_LEVEL: 'info',
      USAGE_FLUSH_INTERVAL_MS: '50',
      WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
      WEBHOOK_POLL_INTERVAL_MS: '100',
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_RETRY_BASE_MS: '100',
      WEBHOOK_RETRY_MAX_MS: '300',
      WEBHOOK_KEY_EXPIRY_SCAN_INTERVAL_MS: '200',
    });
  });

  afterAll(async () => {
    await gw?.kill();
    await receiver.close();
    await pool?.end();
    await closeTestKeys();
  });

  it('refuses a non-http URL and an unknown event type with BAD_USER_INPUT', async () => {
    const ftp = await gql('mutation { createWebhook(input: {tenant: "' + admin.tenantId + '", url: "ftp://example.com/x"}) { secret } }');
    expect(ftp.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'url' });
    const ev = await gql('mutation { createWebhook(input: {tenant: "' + admin.tenantId + '", url: "http://127.0.0.1:1/x", events: ["nope"]}) { secret } }');
    expect(ev.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'events' });
  });

  it("lets a keys:manage key reach only its own tenant's webhooks, and refuses an inference key", async () => {
    const mine = await createTestKey({ scopes: ['keys:manage'] });
    const stranger = await createTestKey({ scopes: ['inference'] });
    const theirs = await createWebhook(stranger.tenantId, receiver.url('/theirs'), ['key.revoked']);
    const own = await gql<{ createWebhook: { webhook: { id: string; tenantId: string } } }>('mutation { createWebhook(input: {url: "' + receiver.url('/mine') + '"}) { webhook { id tenantId } } }', {}, mine.key);
    expect(own.data?.createWebhook.webhook.tenantId).toBe(mine.tenantId);
    const listed = await gql<{ webhooks: { id: string }[] }>('{ webhooks { id } }', {}, mine.key);
    expect(listed.data?.webhooks.map((w) => w.id)).toEqual([own.data!.createWebhook.webhook.id]);
    const foreign = await gql('query($t: String) { webhooks(tenant: $t) { id } }', { t: stranger.tenantId }, mine.key);
    expect(foreign.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
    const update = await gql('mutation($id: ID!) { updateWebhook(id: $id, input: {enabled: false}) { id } }', { id: theirs.id }, mine.key);
    expect(update.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
    const log = await gql('query($t: String) { webhookDeliveries(tenant: $t) { edges { cursor } } }', { t: stranger.tenantId }, mine.key);
    expect(log.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
    const refused = await gql('{ webhooks { id } }', {}, stranger.key);
    expect(refused.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    // The secret is shown once and never logged.
    expect(gw.output).toContain('webhook created');
    expect(gw.output).not.toContain(theirs.secret);
  });

  it('fires quota.threshold 80, 90 and 100 exactly once each as inference requests use a quota of 10 units, signed so the README check verifies', async () => {
    const key = await createTestKey({ scopes: ['inference'], tenantLimits: { monthlyComputeUnitQuota: 10 } });
    const hook = await createWebhook(key.tenantId, receiver.url('/quota'), ['quota.threshold']);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await gw.graphql(INFER, {}, authHeaders(key.key))).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
    await receiver.until('three threshold events', () => receiver.at('/quota').length >= 3);

    // More requests (refused, 0 units) after the records of the first 12 are in: no further event.
    for (let i = 0; i < 3; i++) await gw.graphql(INFER, {}, authHeaders(key.key));
    await until('15 usage records', async () => Number((await pool.query('SELECT count(*) FROM "UsageRecord" WHERE "tenantId" = $1', [key.tenantId])).rows[0].count), { accept: (n) => n >= 15 });
    const events = await pool.query('SELECT "type", "data" FROM "WebhookEvent" WHERE "tenantId" = $1 ORDER BY "createdAt"', [key.tenantId]);
    // Crossings in one usage batch share a statement (their order there is the dedupe key's), so compare as a set.
    expect(events.rows.map((r: { data: { threshold: number } }) => r.data.threshold).sort((a: number, b: number) => a - b)).toEqual([80, 90, 100]);
    await sleep(500); // several polls: nothing more arrives
    const got = receiver.at('/quota');
    expect(got).toHaveLength(3);
    expect(got.map((r) => Number(r.body.data['threshold'])).sort((a, b) => a - b)).toEqual([80, 90, 100]);
    for (const r of got) {
      expect(r.body).toMatchObject({ type: 'quota.threshold', tenantId: key.tenantId, data: { limit: 'tenant_monthly_compute_units', limitValue: 10 } });
      expect(r.headers['modelgate-event-id']).toBe(r.body.id);
      expect(verify(hook.secret, r.raw, String(r.headers['modelgate-signature']))).toBe(true);
      // A byte changed or another secret does not verify.
      expect(verify(hook.secret, r.raw.replace('quota', 'quotb'), String(r.headers['modelgate-signature']))).toBe(false);
      expect(verify('whsec_other', r.raw, String(r.headers['modelgate-signature']))).toBe(false);
    }
    expect(new Set(got.map((r) => r.body.id)).size).toBe(3);
  });

  it('fires budget.threshold for a money budget (80, 90, 100 once each) and credits.exhausted once for an emptied balance', async () => {
    const key = await createTestKey({ scopes: ['inference'] });
    const other = await createTestKey({ scopes: ['inference'] });
    // fashion-attention: 2 units a request. The tenant's own price, in effect since the previous
    // hour (written directly: setPrice only takes future hours); no other test prices this model for these tenants.
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    await pool.query(
      `INSERT INTO "Price" ("id", "model", "tenantId", "currency", "microsPerUnit", "effectiveFrom", "createdBy") VALUES (gen_random_uuid(), 'fashion-attention', $1, 'USD', 100, $2, 'test')`,
      [key.tenantId, new Date(hour)],
    );
    try {
      await createWebhook(key.tenantId, receiver.url('/money'), ['budget.threshold', 'credits.exhausted']);
      await createWebhook(other.tenantId, receiver.url('/credits'), ['credits.exhausted']);
      // 1000 micro-USD a month: five requests at 200 each.
      const budget = await gql('mutation($id: ID!) { updateApiKey(id: $id, input: {monthlyBudget: {amountMicros: "1000", currency: "USD"}}) { id } }', { id: key.apiKeyId });
      expect(budget.errors).toBeUndefined();
      // A daily balance of 4 units: two requests.
      const credits = await gql('mutation($id: ID!) { updateApiKey(id: $id, input: {credits: {refillAmount: 4, refillInterval: DAILY}}) { id } }', { id: other.apiKeyId });
      expect(credits.errors).toBeUndefined();
      const attention = INFER.replace('"fashion-cnn"', '"fashion-attention"');
      const spend: number[] = [];
      for (let i = 0; i < 7; i++) spend.push((await gw.graphql(attention, {}, authHeaders(key.key))).status);
      expect(spend.filter((s) => s === 200)).toHaveLength(5);
      const drain: number[] = [];
      for (let i = 0; i < 5; i++) drain.push((await gw.graphql(attention, {}, authHeaders(other.key))).status);
      expect(drain.filter((s) => s === 200)).toHaveLength(2);

      await receiver.until('money thresholds and credits.exhausted', () => receiver.at('/money').length >= 3 && receiver.at('/credits').length >= 1);
      // More refused requests, and the records of all of them flushed: nothing more.
      for (let i = 0; i < 3; i++) await gw.graphql(attention, {}, authHeaders(key.key));
      for (let i = 0; i < 3; i++) await gw.graphql(attention, {}, authHeaders(other.key));
      await until('10 usage records', async () => Number((await pool.query('SELECT count(*) FROM "UsageRecord" WHERE "tenantId" = $1', [key.tenantId])).rows[0].count), { accept: (n) => n >= 10 });
      await sleep(800);
      const money = receiver.at('/money');
      expect(money.map((r) => Number(r.body.data['threshold'])).sort((a, b) => a - b)).toEqual([80, 90, 100]);
      for (const r of money) expect(r.body).toMatchObject({ type: 'budget.threshold', data: { limit: 'key_monthly_spend', apiKeyId: key.apiKeyId, limitValue: 1000 } });
      const exhausted = receiver.at('/credits');
      expect(exhausted).toHaveLength(1);
      expect(exhausted[0]!.body).toMatchObject({ type: 'credits.exhausted', tenantId: other.tenantId, data: { limit: 'key_credits', apiKeyId: other.apiKeyId, refillAmount: 4 } });
    } finally {
      await pool.query(`DELETE FROM "Price" WHERE "tenantId" = $1`, [key.tenantId]);
    }
  });

  it('sends key.revoked when a key is revoked and key.expiring once for a key expiring within 7 days', async () => {
    const tenantName = `wh-keys-${randomBytes(4).toString('hex')}`;
    const victim = await createTestKey({ tenantName, scopes: ['inference'] });
    const hook = await createWebhook(victim.tenantId, receiver.url('/keys'), ['key.revoked', 'key.expiring']);
    const expiring = await createTestKey({ tenantName, scopes: ['inference'], expiresAt: new Date(Date.now() + 2 * 86_400_000) });
    const revoked = await gql('mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: victim.apiKeyId });
    expect(revoked.errors).toBeUndefined();
    await receiver.until('key events', () => receiver.at('/keys').some((r) => r.body.type === 'key.revoked') && receiver.at('/keys').some((r) => r.body.type === 'key.expiring'));
    const revokedEvent = receiver.at('/keys').find((r) => r.body.type === 'key.revoked')!;
    expect(revokedEvent.body.data).toMatchObject({ apiKeyId: victim.apiKeyId });
    expect(verify(hook.secret, revokedEvent.raw, String(revokedEvent.headers['modelgate-signature']))).toBe(true);
    await sleep(1000); // five more scans
    const expiringEvents = receiver.at('/keys').filter((r) => r.body.type === 'key.expiring');
    expect(expiringEvents).toHaveLength(1);
    expect(expiringEvents[0]!.body.data).toMatchObject({ apiKeyId: expiring.apiKeyId, daysLeft: 2 });
  });

  it('delivers the same event after the receiver was down (port closed, then 503), with every attempt in the delivery log', async () => {
    const tenantName = `wh-down-${randomBytes(4).toString('hex')}`;
    const victim = await createTestKey({ tenantName, scopes: ['inference'] });
    const port = await freePort();
    const late = new Receiver(port);
    try {
      await createWebhook(victim.tenantId, `http://127.0.0.1:${port}/down`, ['key.revoked']);
      await gql('mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: victim.apiKeyId });
      const log = () =>
        gql<{ webhookDeliveries: { edges: { node: { eventId: string; status: string; attempts: number; lastError: string | null; lastStatusCode: number | null } }[] } }>(
          'query($t: String) { webhookDeliveries(tenant: $t) { edges { node { eventId status attempts lastError lastStatusCode } } } }',
          { t: victim.tenantId },
        );
      const delivery = async () => (await log()).data?.webhookDeliveries.edges[0]?.node ?? Promise.reject(new Error('no delivery in the log yet'));
      let node = await until('2 failed attempts in the delivery log', delivery, { accept: (n) => n.attempts >= 2, everyMs: 100 });
      expect(node).toMatchObject({ status: 'PENDING', lastStatusCode: null });
      expect(node.lastError).toBe('connection refused');

      late.mode('/down', { kind: 'fail', status: 503 });
      await late.start();
      await late.until('an attempt on the revived port', () => late.at('/down').length >= 1);
      late.mode('/down', { kind: 'ok' });
      await late.until('the retry after 503', () => late.at('/down').length >= 2);
      node = await until('the delivery to be DELIVERED', delivery, { accept: (n) => n.status === 'DELIVERED' });
      const ids = new Set(late.at('/down').map((r) => r.body.id));
      expect([...ids]).toEqual([node.eventId]);
      expect(node.attempts).toBeGreaterThanOrEqual(4);
      expect(node.lastStatusCode).toBe(200);
    } finally {
      await late.close();
    }
  });

  it('delivers an event after the gateway was SIGKILLed while the receiver held its delivery open (same event id)', async () => {
    const tenantName = `wh-kill-${randomBytes(4).toString('hex')}`;
    const victim = await createTestKey({ tenantName, scopes: ['inference'] });
    await createWebhook(victim.tenantId, receiver.url('/kill'), ['key.revoked']);
    receiver.mode('/kill', { kind: 'hold' });
    await gql('mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: victim.apiKeyId });
    await receiver.until('the held delivery', () => receiver.at('/kill').length >= 1);
    const exit = await gw.kill();
    expect(exit.signal).toBe('SIGKILL');
    receiver.mode('/kill', { kind: 'ok' });
    gw = await gw.restart();
    await receiver.until('the delivery after restart', () => receiver.at('/kill').length >= 2);
    const got = receiver.at('/kill');
    expect(got[1]!.body.id).toBe(got[0]!.body.id);
    expect(got[1]!.body.data).toMatchObject({ apiKeyId: victim.apiKeyId });
    const row = await until(
      'the delivery row to be DELIVERED',
      async () => (await pool.query<{ status: string; attempts: number }>('SELECT "status", "attempts" FROM "WebhookDelivery" WHERE "eventId" = $1', [got[0]!.body.id])).rows[0] ?? Promise.reject(new Error('no delivery row yet')),
      { accept: (r) => r.status === 'DELIVERED' },
    );
    expect(row.attempts).toBe(2);
  });
});
