/**
 * Relay Global Object Identification on a real gateway: node(id) and
 * nodes(ids) fetch every Node type by the ids the API returns, and read each
 * with its direct query's rules, so a tenant-scoped key cannot reach another
 * tenant's objects (nor admin-only ones) through them.
 */
import { randomUUID } from 'node:crypto';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { imageTensor, INFER } from '../inference/fixtures';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
let admin: TestKey;
/** Tenant A: a keys:manage + usage:read key, an inference-only key; tenant B: one key. */
let manager: TestKey;
let inferOnly: TestKey;
let stranger: TestKey;
const ids: Record<string, string> = {};
const run = Date.now().toString(36);

const NODE = `query($id: ID!) { node(id: $id) { __typename id
  ... on Tenant { name } ... on ApiKey { tenantId prefix } ... on AuditEvent { action } ... on Price { model priceTenant: tenantId } ... on UsageRecord { tenantId model } } }`;
const NODES = 'query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }';

type NodeValue = { __typename: string; id: string; [field: string]: unknown } | null;

async function node(key: TestKey | null, id: string): Promise<NodeValue> {
  const res = await graphql<{ node: NodeValue }>(gw.url, NODE, { id }, key ? authHeaders(key.key) : {});
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.node;
}

async function adminCall<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await graphql<T>(gw.url, query, variables, authHeaders(admin.key));
  expect(res.body.errors).toBeUndefined();
  return res.body.data!;
}

async function usageRecordOf(key: TestKey, requestId: string): Promise<string> {
  expect((await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } }, { ...authHeaders(key.key), 'x-request-id': requestId })).body.errors).toBeUndefined();
  await gw.gateway.services.usage.flush();
  const page = await adminCall<{ usageRecords: { edges: { node: { id: string } }[] } }>(
    'query($t: ID!) { usageRecords(first: 10, filter: { tenantId: $t }) { edges { node { id } } } }',
    { t: key.tenantId },
  );
  // A client-chosen request id gets a random suffix in the record id.
  const found = page.usageRecords.edges.find((e) => e.node.id.startsWith(`${requestId}~`));
  expect(found).toBeDefined();
  return found!.node.id;
}

beforeAll(async () => {
  gw = await startGateway();
  admin = await createTestKey({ scopes: ['admin'], name: 'node admin' });
  manager = await createTestKey({ tenantName: `node-a-${run}`, scopes: ['keys:manage', 'usage:read', 'inference'], name: 'manager' });
  inferOnly = await createTestKey({ tenantName: `node-a-${run}`, scopes: ['inference'], name: 'infer only' });
  stranger = await createTestKey({ tenantName: `node-b-${run}`, scopes: ['keys:manage', 'usage:read', 'inference'], name: 'stranger' });
  const hour = new Date(Math.ceil((Date.now() + 3_600_000) / 3_600_000) * 3_600_000).toISOString();
  const setPrice = 'mutation($input: SetPriceInput!) { setPrice(input: $input) { id } }';
  ids['listPrice'] = (await adminCall<{ setPrice: { id: string } }>(setPrice, { input: { model: `node-model-${run}`, currency: 'USD', unitPriceMicros: '10', effectiveFrom: hour } })).setPrice.id;
  ids['priceB'] = (
    await adminCall<{ setPrice: { id: string } }>(setPrice, { input: { model: `node-model-${run}`, tenant: stranger.tenantId, currency: 'USD', unitPriceMicros: '5', effectiveFrom: hour } })
  ).setPrice.id;
  // Tenant B's newest audit event is the setPrice above (other suites write to the same database).
  const audit = await adminCall<{ auditEvents: { edges: { node: { id: string; action: string } }[] } }>('query($t: String) { auditEvents(first: 1, tenant: $t) { edges { node { id action } } } }', { t: stranger.tenantId });
  ids['audit'] = audit.auditEvents.edges[0]!.node.id;
  ids['recordA'] = await usageRecordOf(manager, `node-${run}-a`);
  ids['recordB'] = await usageRecordOf(stranger, `node-${run}-b`);
});
afterAll(async () => {
  await gw?.close();
  await closeTestKeys();
});

describe('node(id)', () => {
  it('fetches every Node type by the id the API returned, as the right type', async () => {
    await expect(node(admin, manager.tenantId)).resolves.toEqual({ __typename: 'Tenant', id: manager.tenantId, name: `node-a-${run}` });
    await expect(node(admin, stranger.apiKeyId)).resolves.toMatchObject({ __typename: 'ApiKey', id: stranger.apiKeyId, tenantId: stranger.tenantId, prefix: expect.stringMatching(/^mg_(live|test)_/) });
    await expect(node(admin, ids['audit']!)).resolves.toMatchObject({ __typename: 'AuditEvent', id: ids['audit'], action: 'price.set' });
    await expect(node(admin, ids['priceB']!)).resolves.toEqual({ __typename: 'Price', id: ids['priceB'], model: `node-model-${run}`, priceTenant: stranger.tenantId });
    await expect(node(admin, ids['recordB']!)).resolves.toEqual({ __typename: 'UsageRecord', id: ids['recordB'], tenantId: stranger.tenantId, model: 'fashion-cnn' });
  });

  it('answers null for an unknown or malformed id', async () => {
    await expect(node(admin, randomUUID())).resolves.toBeNull();
    await expect(node(admin, 'not-an-id')).resolves.toBeNull();
  });

  it('gives a tenant-scoped key its own tenant, keys, usage and the list prices, and nothing of another tenant', async () => {
    await expect(node(manager, manager.tenantId)).resolves.toMatchObject({ __typename: 'Tenant' });
    await expect(node(manager, inferOnly.apiKeyId)).resolves.toMatchObject({ __typename: 'ApiKey', tenantId: manager.tenantId });
    await expect(node(manager, ids['recordA']!)).resolves.toMatchObject({ __typename: 'UsageRecord', tenantId: manager.tenantId });
    await expect(node(manager, ids['listPrice']!)).resolves.toMatchObject({ __typename: 'Price', priceTenant: null });
    // Another tenant's objects read exactly as unknown ids.
    for (const other of [stranger.tenantId, stranger.apiKeyId, ids['recordB']!, ids['priceB']!]) await expect(node(manager, other)).resolves.toBeNull();
    // Audit events are admin-only, as auditEvents is.
    await expect(node(manager, ids['audit']!)).resolves.toBeNull();
  });

  it('needs the direct query\'s scope: an inference-only key reads its own key and tenant (as me does), not its tenant\'s other keys or usage', async () => {
    await expect(node(inferOnly, inferOnly.apiKeyId)).resolves.toMatchObject({ __typename: 'ApiKey' });
    await expect(node(inferOnly, inferOnly.tenantId)).resolves.toMatchObject({ __typename: 'Tenant' });
    await expect(node(inferOnly, manager.apiKeyId)).resolves.toBeNull();
    await expect(node(inferOnly, ids['recordA']!)).resolves.toBeNull();
    await expect(node(inferOnly, ids['listPrice']!)).resolves.toBeNull();
  });

  it('refuses a request without a key', async () => {
    const res = await graphql(gw.url, NODE, { id: manager.tenantId });
    expect(res.status).toBe(401);
    expect(res.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  });
});

describe('nodes(ids)', () => {
  it('answers in order, null in place of each id node(id) would not give', async () => {
    const res = await graphql<{ nodes: NodeValue[] }>(gw.url, NODES, { ids: [manager.apiKeyId, stranger.apiKeyId, randomUUID(), manager.tenantId] }, authHeaders(manager.key));
    expect(res.body.data?.nodes).toEqual([{ __typename: 'ApiKey', id: manager.apiKeyId }, null, null, { __typename: 'Tenant', id: manager.tenantId }]);
  });

  it('refuses more than 100 ids', async () => {
    const res = await graphql(gw.url, NODES, { ids: Array.from({ length: 101 }, () => randomUUID()) }, authHeaders(admin.key));
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'ids' });
  });
});
