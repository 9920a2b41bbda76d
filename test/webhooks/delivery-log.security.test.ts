/**
 * What the webhook delivery log tells a tenant about a failed attempt, on a
 * gateway with the SSRF guard on (WEBHOOK_ALLOW_PRIVATE_ADDRESSES=false):
 * a class ("address not allowed", "DNS lookup failed"), never what the
 * gateway's resolver answered; the operator's log has that detail. An
 * endpoint aimed at a NAT64 form of a private address (stored before the
 * guard knew the form) is refused at delivery without a connection.
 */
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import os from 'node:os';
import pg from 'pg';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';
import { SecretBox } from '../../src/webhooks/secret-box';
import { isPrivateAddress } from '../../src/webhooks/url-guard';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const secretKey = randomBytes(32);
let gw: TestGateway;
let db: pg.Client;

beforeAll(async () => {
  gw = await startGateway({
    LOG_LEVEL: 'info',
    WEBHOOK_SECRET_ENCRYPTION_KEY: secretKey.toString('hex'),
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'false',
    WEBHOOK_POLL_INTERVAL_MS: '100',
    WEBHOOK_RETRY_BASE_MS: '100',
    WEBHOOK_RETRY_MAX_MS: '200',
    WEBHOOK_MAX_ATTEMPTS: '2',
  });
  db = new pg.Client({ connectionString: testEnv.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await gw?.close();
  await closeTestKeys();
});

interface Delivery { url: string; status: string; attempts: number; lastError: string | null; lastStatusCode: number | null }

async function gql<T>(key: TestKey, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await graphql<T>(gw.url, query, variables, authHeaders(key.key));
  expect(res.body.errors).toBeUndefined();
  return res.body.data!;
}

it("shows the tenant a failure class, not its gateway's DNS answers, and logs the detail for the operator", async () => {
  // A name this machine resolves to a non-public address (its own host name, from /etc/hosts): what a
  // tenant could use to read the gateway's internal DNS through the delivery log.
  const internal = os.hostname();
  const resolved = await lookup(internal, { all: true });
  expect({ internal, private: resolved.some((a) => isPrivateAddress(a.address)) }).toEqual({ internal, private: true });
  const missing = `no-such-host-${randomBytes(4).toString('hex')}.invalid`;

  const manager = await createTestKey({ scopes: ['keys:manage'] });
  const doomed = await createTestKey({ tenantName: (await db.query('SELECT name FROM "Tenant" WHERE id = $1', [manager.tenantId])).rows[0].name, scopes: ['inference'] });
  const urls = [`http://${internal}:9/hook`, `http://${missing}/hook`];
  for (const url of urls) await gql(manager, 'mutation($url: String!) { createWebhook(input: { url: $url, events: ["key.revoked"] }) { webhook { id } } }', { url });
  // Created before the guard knew NAT64: 64:ff9b::7f00:1 is 127.0.0.1 behind a NAT64 gateway.
  const nat64 = 'http://[64:ff9b::7f00:1]:9/hook';
  const box = new SecretBox(secretKey);
  await db.query(
    `INSERT INTO "WebhookEndpoint" ("id", "tenantId", "url", "events", "secretCiphertext", "secretPrefix", "updatedAt") VALUES (gen_random_uuid(), $1, $2, '{key.revoked}', $3, 'whsec_test', now())`,
    [manager.tenantId, nat64, box.encrypt(`whsec_${randomBytes(16).toString('hex')}`)],
  );

  await gql(manager, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: doomed.apiKeyId });
  const LOG = '{ webhookDeliveries(first: 10) { edges { node { url status attempts lastError lastStatusCode } } } }';
  const deliveries = await until(
    '3 FAILED deliveries in the log',
    async () => (await gql<{ webhookDeliveries: { edges: { node: Delivery }[] } }>(manager, LOG)).webhookDeliveries.edges.map((e) => e.node),
    { accept: (d) => d.length === 3 && d.every((x) => x.status === 'FAILED'), everyMs: 100 },
  );
  const byUrl = Object.fromEntries(deliveries.map((d) => [d.url, { status: d.status, attempts: d.attempts, lastError: d.lastError, lastStatusCode: d.lastStatusCode }]));
  expect(byUrl).toEqual({
    [`http://${internal}:9/hook`]: { status: 'FAILED', attempts: 2, lastError: 'address not allowed', lastStatusCode: null },
    [`http://${missing}/hook`]: { status: 'FAILED', attempts: 2, lastError: 'DNS lookup failed', lastStatusCode: null },
    [nat64]: { status: 'FAILED', attempts: 2, lastError: 'address not allowed', lastStatusCode: null },
  });
  // Nothing the resolver said reaches the tenant: not the address, not the resolver's error.
  const shown = JSON.stringify(deliveries);
  for (const secret of [...resolved.map((a) => a.address), 'getaddrinfo', 'ENOTFOUND', 'resolves to']) expect({ secret, shown: shown.includes(secret) }).toEqual({ secret, shown: false });

  // The operator's log has the detail of each.
  const failures = gw.logs.lines.map((l) => JSON.parse(l) as { msg?: string; error?: string; detail?: string }).filter((l) => l.msg?.startsWith('webhook delivery failed'));
  expect(failures.map((l) => l.detail).join('\n')).toEqual(expect.stringContaining(`${internal} resolves to a non-public address (${resolved.find((a) => isPrivateAddress(a.address))!.address})`));
  expect(failures.some((l) => l.error === 'DNS lookup failed' && l.detail?.includes(`ENOTFOUND ${missing}`))).toBe(true);
  expect(failures.some((l) => l.error === 'address not allowed' && l.detail?.includes('64:ff9b::7f00:1 resolves to a non-public address'))).toBe(true);
});
