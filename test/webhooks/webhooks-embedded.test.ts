/**
 * Webhooks on the embedded database (PGlite, no DATABASE_URL, no Redis, no
 * WEBHOOK_SECRET_ENCRYPTION_KEY: the gateway keeps its own key in DATA_DIR),
 * through the built gateway: a key's monthly budget fires budget.threshold
 * 80/90/100 once each, and a burst of rate-limited requests fires one
 * ratelimit.breached for its minute.
 */
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProductionGateway, REPO_ROOT, sleep, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { authHeaders } from '../helpers/auth';
import { Receiver } from './receiver';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const INFER = `mutation { infer(input: {model: "fashion-cnn", inputs: [{name: "image", datatype: FP32, shape: [1,1,28,28], data: [${new Array(784).fill(0).join(',')}]}]}) { outputs { name } } }`;

describe('webhooks on the embedded database', () => {
  const receiver = new Receiver();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mg-webhooks-embedded-'));
  let gw: ProductionGateway;
  let admin: string;

  const gql = async <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}, key = admin) => (await gw.graphql<T>(query, variables, authHeaders(key))).body!;

  beforeAll(async () => {
    await receiver.start();
    gw = await ProductionGateway.start({
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      LOG_PRETTY: 'false',
      LOG_LEVEL: 'warn',
      MODEL_REPOSITORY: path.join(REPO_ROOT, 'models'),
      DATA_DIR: dataDir,
      USAGE_FLUSH_INTERVAL_MS: '50',
      WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
      WEBHOOK_POLL_INTERVAL_MS: '100',
      WEBHOOK_RATE_LIMIT_BURST: '3',
    });
    admin = /^ {3}(mg_live_[0-9A-Za-z]{49})$/m.exec(gw.output)?.[1] ?? '';
    expect(admin).not.toBe('');
  });

  afterAll(async () => {
    await gw?.stop();
    await receiver.close();
  });

  async function key(tenant: string, limits: Record<string, number>): Promise<string> {
    const r = await gql<{ createApiKey: { plaintext: string } }>('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { plaintext } }', {
      input: { tenant, name: 'k', scopes: ['INFERENCE'], ...limits },
    });
    expect(r.errors).toBeUndefined();
    return r.data!.createApiKey.plaintext;
  }

  it('fires budget.threshold 80/90/100 once each and one ratelimit.breached per minute, signing with a key kept in DATA_DIR', async () => {
    const t = await gql<{ createTenant: { id: string } }>('mutation { createTenant(input: {name: "wh-embedded", monthlyComputeUnitQuota: 1000}) { id } }');
    expect(t.errors).toBeUndefined();
    const tenantId = t.data!.createTenant.id;
    const hook = await gql<{ createWebhook: { secret: string } }>('mutation($t: String) { createWebhook(input: {tenant: $t, url: "' + receiver.url('/e') + '"}) { secret } }', { t: tenantId });
    expect(hook.errors).toBeUndefined();
    const keyFile = path.join(dataDir, 'webhook-secret.key');
    expect(existsSync(keyFile)).toBe(true);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);

    const budgeted = await key(tenantId, { monthlyComputeUnitBudget: 5 });
    const limited = await key(tenantId, { requestsPerMinute: 2 });
    for (let i = 0; i < 7; i++) await gw.graphql(INFER, {}, authHeaders(budgeted));
    // All of the burst within one UTC minute.
    if (new Date().getUTCSeconds() > 50) await sleep((61 - new Date().getUTCSeconds()) * 1000);
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await gw.graphql(INFER, {}, authHeaders(limited))).status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(6);

    const of = (type: string) => receiver.at('/e').filter((r) => r.body.type === type);
    await receiver.until('budget and burst events', () => of('budget.threshold').length >= 3 && of('ratelimit.breached').length >= 1);
    // More of the same: refused budget requests, more rate-limited ones in the same minute.
    for (let i = 0; i < 3; i++) await gw.graphql(INFER, {}, authHeaders(budgeted));
    for (let i = 0; i < 3; i++) await gw.graphql(INFER, {}, authHeaders(limited));
    await sleep(1000);
    expect(of('budget.threshold').map((r) => Number(r.body.data['threshold'])).sort((a, b) => a - b)).toEqual([80, 90, 100]);
    expect(of('budget.threshold')[0]!.body.data).toMatchObject({ limit: 'key_monthly_compute_units', limitValue: 5 });
    expect(of('ratelimit.breached')).toHaveLength(1);
    expect(of('ratelimit.breached')[0]!.body.data).toMatchObject({ burst: 3 });
    expect(Number(of('ratelimit.breached')[0]!.body.data['rateLimitedRequests'])).toBeGreaterThanOrEqual(3);
    expect(of('quota.threshold')).toHaveLength(0);

    const log = await gql<{ webhookDeliveries: { edges: { node: { status: string; attempts: number } }[] } }>('query($t: String) { webhookDeliveries(tenant: $t, first: 50) { edges { node { status attempts } } } }', { t: tenantId });
    expect(log.errors).toBeUndefined();
    expect(log.data!.webhookDeliveries.edges.map((e) => e.node)).toEqual(Array.from({ length: 4 }, () => ({ status: 'DELIVERED', attempts: 1 })));
  });
});
