/** The admin GraphQL API end to end on a real gateway, Postgres and Redis. */
import pg from 'pg';
import { graphql, startGateway, type GraphQLResponse, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
let adminKey: string;
/** Every plaintext this file sees, to prove none is stored or logged. */
const plaintexts: string[] = [];

type Data = Record<string, unknown>;

async function call<T = Data>(key: string | null, query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<GraphQLResponse<T>> {
  return graphql<T>(gw.url, query, variables, { ...(key ? authHeaders(key) : {}), ...headers });
}
function code(res: GraphQLResponse<unknown>): unknown {
  return res.body.errors?.[0]?.extensions?.['code'];
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CREATE_TENANT = 'mutation($input: CreateTenantInput!) { createTenant(input: $input) { id name status requestsPerMinute } }';
const CREATE_KEY = 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { plaintext apiKey { id prefix tenantId scopes allowedModels expiresAt status createdBy } } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id) { id status revokedAt } }';
const ROTATE = 'mutation($id: ID!, $grace: Int!) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { plaintext apiKey { id rotatedFromId status } previous { id status graceUntil } } }';
const ME = '{ me { scopes allowedModels expiresAt tenant { id name } apiKey { id prefix } } }';
const API_KEYS = 'query($tenant: String, $revoked: Boolean, $first: Int, $after: String) { apiKeys(tenant: $tenant, revoked: $revoked, first: $first, after: $after) { edges { cursor node { id tenantId prefix status } } pageInfo { hasNextPage endCursor } } }';

interface CreatedKey {
  createApiKey: { plaintext: string; apiKey: { id: string; prefix: string; tenantId: string; scopes: string[]; allowedModels: string[]; expiresAt: string | null; status: string; createdBy: string } };
}

async function createTenant(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await call<{ createTenant: { id: string } }>(adminKey, CREATE_TENANT, { input: { name, ...extra } });
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.createTenant.id;
}

async function createKey(by: string, input: Record<string, unknown>): Promise<CreatedKey['createApiKey']> {
  const res = await call<CreatedKey>(by, CREATE_KEY, { input });
  expect(res.body.errors).toBeUndefined();
  const created = res.body.data!.createApiKey;
  plaintexts.push(created.plaintext);
  return created;
}

beforeAll(async () => {
  // Debug level: the log check below then covers per-request lines too.
  gw = await startGateway({ LOG_LEVEL: 'debug' });
  adminKey = (await createTestKey({ scopes: ['admin'], name: 'suite admin' })).key;
  plaintexts.push(adminKey);
});
afterAll(async () => {
  await gw.close();
  await closeTestKeys();
});

describe('tenants', () => {
  it('creates, lists with cursor pagination, and refuses a duplicate name without writing an audit row', async () => {
    const run = Date.now().toString(36);
    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push(await createTenant(`page-${run}-${n}`, { requestsPerMinute: 100 * n }));
    // Other test files create tenants in this database at the same time, so ours need not be the
    // newest: walk the pages from the top until all three are seen. Newer tenants land above the
    // walk, never inside it (each cursor pins a position), so the pages must still be full, ordered
    // newest first without repeats, and hold ours in creation order.
    type TenantPage = { tenants: { edges: { node: { id: string; createdAt: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };
    const PAGE = 'query($after: String) { tenants(first: 2, after: $after) { edges { node { id createdAt } } pageInfo { hasNextPage endCursor } } }';
    const seen: { id: string; createdAt: string }[] = [];
    let after: string | null = null;
    for (let pages = 0; !seen.some((t) => t.id === ids[0]); pages += 1) {
      if (pages === 500) throw new Error(`not all of this test's tenants found in ${pages} pages`);
      const page: GraphQLResponse<TenantPage> = await call<TenantPage>(adminKey, PAGE, { after });
      expect(page.body.errors).toBeUndefined();
      const { edges, pageInfo } = page.body.data!.tenants;
      seen.push(...edges.map((e) => e.node));
      // Until the oldest of ours has come, more tenants follow: the page is full and says so.
      if (!seen.some((t) => t.id === ids[0])) expect({ size: edges.length, hasNextPage: pageInfo.hasNextPage }).toEqual({ size: 2, hasNextPage: true });
      after = pageInfo.endCursor;
    }
    expect(new Set(seen.map((t) => t.id)).size).toBe(seen.length);
    for (let i = 1; i < seen.length; i += 1) {
      const [newer, older] = [seen[i - 1]!, seen[i]!];
      const ordered = newer.createdAt > older.createdAt || (newer.createdAt === older.createdAt && newer.id > older.id);
      expect({ newer, older, ordered }).toEqual({ newer, older, ordered: true });
    }
    expect(seen.map((t) => t.id).filter((id) => ids.includes(id))).toEqual([ids[2], ids[1], ids[0]]);

    const dup = await call(adminKey, CREATE_TENANT, { input: { name: `page-${run}-1` } });
    expect(code(dup)).toBe('BAD_USER_INPUT');
    const audits = await call<{ auditEvents: { edges: { node: { action: string; after: { name?: string } } }[] } }>(
      adminKey,
      '{ auditEvents(first: 100) { edges { node { action after } } } }',
    );
    const creates = audits.body.data!.auditEvents.edges.filter((e) => e.node.action === 'tenant.create' && e.node.after.name === `page-${run}-1`);
    expect(creates).toHaveLength(1);
  });

  it('refuses a bad cursor and a bad page size as BAD_USER_INPUT', async () => {
    expect(code(await call(adminKey, '{ tenants(after: "!!nonsense") { edges { cursor } } }'))).toBe('BAD_USER_INPUT');
    // One cursor format and one refusal (ids/cursor.ts) for every connection, the usage records' included.
    for (const query of ['{ apiKeys(after: "bm9wZQ") { edges { cursor } } }', '{ usageRecords(first: 5, after: "bm9wZQ") { edges { cursor } } }']) {
      const refused = await call(adminKey, query);
      expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after', reason: 'INVALID_CURSOR' });
    }
    expect(code(await call(adminKey, '{ tenants(first: 1000) { edges { cursor } } }'))).toBe('BAD_USER_INPUT');
  });

  it('suspends a tenant (its keys get FORBIDDEN at once) and resumes it', async () => {
    const tenantId = await createTenant(`suspend-${Date.now().toString(36)}`);
    const { plaintext } = await createKey(adminKey, { tenant: tenantId, name: 'client', scopes: ['INFERENCE'] });
    expect((await call(plaintext, ME)).status).toBe(200);
    const suspended = await call(adminKey, 'mutation($id: ID!) { updateTenant(id: $id, input: { status: SUSPENDED }) { status } }', { id: tenantId });
    expect(suspended.body.data).toEqual({ updateTenant: { status: 'SUSPENDED' } });
    const refused = await call(plaintext, ME);
    expect(refused.status).toBe(403);
    expect(code(refused)).toBe('FORBIDDEN');
    await call(adminKey, 'mutation($id: ID!) { updateTenant(id: $id, input: { status: ACTIVE, requestsPerMinute: 42 }) { status } }', { id: tenantId });
    expect((await call(plaintext, ME)).status).toBe(200);
  });
});

describe('API keys', () => {
  it('returns the plaintext once, never in listings, and me shows the key without a hash', async () => {
    const tenantId = await createTenant(`keys-${Date.now().toString(36)}`);
    const created = await createKey(adminKey, { tenant: tenantId, name: 'svc', scopes: ['INFERENCE', 'USAGE_READ'], allowedModels: ['fashion-cnn'], ttlSeconds: 3600 });
    expect(created.plaintext).toMatch(/^mg_live_/);
    expect(created.apiKey).toMatchObject({ tenantId, scopes: ['INFERENCE', 'USAGE_READ'], allowedModels: ['fashion-cnn'], status: 'ACTIVE' });
    expect(created.apiKey.createdBy).toMatch(/^key:mg_/);
    const list = await call(adminKey, API_KEYS, { tenant: tenantId });
    expect(JSON.stringify(list.body)).not.toContain(created.plaintext);
    const me = await call<{ me: { scopes: string[]; allowedModels: string[]; expiresAt: string; tenant: { id: string } } }>(created.plaintext, ME);
    expect(me.body.data?.me).toMatchObject({ scopes: ['INFERENCE', 'USAGE_READ'], allowedModels: ['fashion-cnn'], tenant: { id: tenantId } });
    expect(me.body.data?.me.expiresAt).toBe(created.apiKey.expiresAt);
    const introspect = await call<{ __type: { fields: { name: string }[] } }>(adminKey, '{ __type(name: "ApiKey") { fields { name } } }');
    expect(introspect.body.data?.__type.fields.map((f) => f.name)).not.toContain('hash');
  });

  it('rejects bad key input with BAD_USER_INPUT (expiry in the past, both expiry forms, no scopes)', async () => {
    expect(code(await call(adminKey, CREATE_KEY, { input: { name: 'x', scopes: ['INFERENCE'], expiresAt: '2000-01-01T00:00:00.000Z' } }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, CREATE_KEY, { input: { name: 'x', scopes: ['INFERENCE'], ttlSeconds: 60, expiresAt: '2099-01-01T00:00:00.000Z' } }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, CREATE_KEY, { input: { name: 'x', scopes: [] } }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, CREATE_KEY, { input: { tenant: 'no-such-tenant', name: 'x', scopes: ['INFERENCE'] } }))).toBe('NOT_FOUND');
  });

  it('refuses a revoked key at once, and filters listings by revoked', async () => {
    const tenantId = await createTenant(`revoke-${Date.now().toString(36)}`);
    const created = await createKey(adminKey, { tenant: tenantId, name: 'r', scopes: ['INFERENCE'] });
    expect((await call(created.plaintext, ME)).status).toBe(200);
    const revoked = await call<{ revokeApiKey: { status: string } }>(adminKey, REVOKE, { id: created.apiKey.prefix });
    expect(revoked.body.data?.revokeApiKey.status).toBe('REVOKED');
    const res = await call(created.plaintext, ME);
    expect(res.status).toBe(401);
    expect(code(res)).toBe('UNAUTHENTICATED');
    const onlyRevoked = await call<{ apiKeys: { edges: { node: { id: string } }[] } }>(adminKey, API_KEYS, { tenant: tenantId, revoked: true });
    expect(onlyRevoked.body.data?.apiKeys.edges.map((e) => e.node.id)).toEqual([created.apiKey.id]);
    const active = await call<{ apiKeys: { edges: unknown[] } }>(adminKey, API_KEYS, { tenant: tenantId, revoked: false });
    expect(active.body.data?.apiKeys.edges).toEqual([]);
  });

  it('refuses an expired key', async () => {
    const created = await createKey(adminKey, { name: 'short', scopes: ['INFERENCE'], ttlSeconds: 1 });
    expect((await call(created.plaintext, ME)).status).toBe(200);
    await sleep(Date.parse(created.apiKey.expiresAt!) - Date.now() + 50);
    const res = await call(created.plaintext, ME);
    expect(res.status).toBe(401);
    expect(code(res)).toBe('UNAUTHENTICATED');
  });

  it('rotates: the new secret works, the old one works during the grace period and fails after it', async () => {
    const created = await createKey(adminKey, { name: 'rot', scopes: ['INFERENCE'] });
    expect((await call(created.plaintext, ME)).status).toBe(200); // now cached
    const rotated = await call<{ rotateApiKey: { plaintext: string; apiKey: { rotatedFromId: string }; previous: { status: string; graceUntil: string } } }>(adminKey, ROTATE, {
      id: created.apiKey.id,
      grace: 2,
    });
    const r = rotated.body.data!.rotateApiKey;
    plaintexts.push(r.plaintext);
    expect(r.apiKey.rotatedFromId).toBe(created.apiKey.id);
    expect(r.previous.status).toBe('GRACE');
    expect((await call(r.plaintext, ME)).status).toBe(200);
    expect((await call(created.plaintext, ME)).status).toBe(200);
    await sleep(Date.parse(r.previous.graceUntil) - Date.now() + 50);
    expect(code(await call(created.plaintext, ME))).toBe('UNAUTHENTICATED');
    expect((await call(r.plaintext, ME)).status).toBe(200);
    expect(code(await call(adminKey, ROTATE, { id: created.apiKey.id, grace: 0 }))).toBe('BAD_USER_INPUT');
  });

  it('refuses the whole request, public fields included, when the presented key is bad', async () => {
    const res = await call('mg_live_notakey', '{ health { status } }');
    expect(res.status).toBe(401);
    expect(code(res)).toBe('UNAUTHENTICATED');
  });

  it('writes lastUsedAt coarsely: once per granularity window, not per request', async () => {
    const created = await createKey(adminKey, { name: 'lu', scopes: ['INFERENCE'] });
    const read = async () => {
      const res = await call<{ apiKeys: { edges: { node: { id: string; lastUsedAt: string | null } }[] } }>(
        adminKey,
        'query($t: String) { apiKeys(tenant: $t, first: 100) { edges { node { id lastUsedAt } } } }',
        { t: created.apiKey.tenantId },
      );
      return res.body.data!.apiKeys.edges.find((e) => e.node.id === created.apiKey.id)!.node.lastUsedAt;
    };
    expect(await read()).toBeNull();
    await call(created.plaintext, ME);
    const first = await until('lastUsedAt to be written', read);
    expect(first).not.toBeNull();
    for (let i = 0; i < 5; i += 1) await call(created.plaintext, ME);
    await sleep(200);
    expect(await read()).toBe(first);
  });
});

describe('updateApiKey', () => {
  const UPDATE = 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id name scopes allowedModels requestsPerMinute expiresAt metadata status } }';
  const UPDATE_EXP = 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { expiresAt status } }';
  const LIST_ONE = '{ apiKeys(first: 1) { edges { cursor } } }';

  it('narrows scopes and models, takes effect on the next request, and audits before/after in one event', async () => {
    const tenantId = await createTenant(`upd-${Date.now().toString(36)}`);
    const created = await createKey(adminKey, { tenant: tenantId, name: 'svc', scopes: ['INFERENCE', 'KEYS_MANAGE'], requestsPerMinute: 100 });
    expect((await call(created.plaintext, LIST_ONE)).status).toBe(200); // cached now, with keys:manage

    const res = await call<{ updateApiKey: Record<string, unknown> }>(adminKey, UPDATE, {
      id: created.apiKey.prefix,
      input: { name: 'svc-narrow', scopes: ['INFERENCE'], allowedModels: ['fashion-cnn'], requestsPerMinute: null, metadata: { owner: 'ana', team: 'ml' } },
    });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.updateApiKey).toEqual({
      id: created.apiKey.id,
      name: 'svc-narrow',
      scopes: ['INFERENCE'],
      allowedModels: ['fashion-cnn'],
      requestsPerMinute: null,
      expiresAt: null,
      metadata: { owner: 'ana', team: 'ml' },
      status: 'ACTIVE',
    });
    const refused = await call(created.plaintext, LIST_ONE);
    expect(refused.status).toBe(403);
    expect(code(refused)).toBe('FORBIDDEN');
    const me = await call<{ me: { scopes: string[]; allowedModels: string[] } }>(created.plaintext, ME);
    expect(me.body.data?.me).toMatchObject({ scopes: ['INFERENCE'], allowedModels: ['fashion-cnn'] });

    const audits = await call<{ auditEvents: { edges: { node: { action: string; targetId: string; before: Record<string, unknown>; after: Record<string, unknown> } }[] } }>(
      adminKey,
      'query($t: String) { auditEvents(tenant: $t, first: 100) { edges { node { action targetId before after } } } }',
      { t: tenantId },
    );
    const updates = audits.body.data!.auditEvents.edges.map((e) => e.node).filter((n) => n.action === 'apikey.update');
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({
      targetId: created.apiKey.id,
      before: { name: 'svc', scopes: ['inference', 'keys:manage'], requestsPerMinute: 100, metadata: null },
      after: { name: 'svc-narrow', scopes: ['inference'], requestsPerMinute: null, metadata: { owner: 'ana', team: 'ml' } },
    });
  });

  it('sets and clears expiry: the cached key expires at the new time, and works again once cleared', async () => {
    const created = await createKey(adminKey, { name: 'exp', scopes: ['INFERENCE'] });
    expect((await call(created.plaintext, ME)).status).toBe(200);
    const soon = new Date(Date.now() + 1500).toISOString();
    const set = await call<{ updateApiKey: { expiresAt: string } }>(adminKey, UPDATE, { id: created.apiKey.id, input: { expiresAt: soon } });
    expect(set.body.data?.updateApiKey.expiresAt).toBe(soon);
    await sleep(Math.max(0, Date.parse(soon) - Date.now() + 50));
    expect((await call(created.plaintext, ME)).status).toBe(401);
    const cleared = await call<{ updateApiKey: { expiresAt: string | null; status: string } }>(adminKey, UPDATE_EXP, { id: created.apiKey.id, input: { expiresAt: null } });
    expect(cleared.body.data?.updateApiKey).toEqual({ expiresAt: null, status: 'ACTIVE' });
    expect((await call(created.plaintext, ME)).status).toBe(200);
  });

  it('refuses bad updates without writing anything: null name, unknown key, empty input, bad metadata, revoked key', async () => {
    const created = await createKey(adminKey, { name: 'bad', scopes: ['INFERENCE'] });
    expect(code(await call(adminKey, UPDATE, { id: created.apiKey.id, input: { name: null } }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, UPDATE, { id: created.apiKey.id, input: {} }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, UPDATE, { id: created.apiKey.id, input: { metadata: { owner: 7 } } }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, UPDATE, { id: created.apiKey.id, input: { scopes: [] } }))).toBe('BAD_USER_INPUT');
    expect(code(await call(adminKey, UPDATE, { id: '00000000-0000-4000-8000-000000000000', input: { name: 'x' } }))).toBe('NOT_FOUND');
    await call(adminKey, REVOKE, { id: created.apiKey.id });
    expect(code(await call(adminKey, UPDATE, { id: created.apiKey.id, input: { name: 'x' } }))).toBe('BAD_USER_INPUT');
    const db = new pg.Client({ connectionString: testEnv.databaseUrl });
    await db.connect();
    try {
      const rows = await db.query('SELECT count(*)::int AS n FROM "AuditEvent" WHERE "targetId" = $1 AND action = $2', [created.apiKey.id, 'apikey.update']);
      expect(rows.rows[0].n).toBe(0);
      const key = await db.query('SELECT name, metadata FROM "ApiKey" WHERE id = $1', [created.apiKey.id]);
      expect(key.rows[0]).toEqual({ name: 'bad', metadata: null });
    } finally {
      await db.end();
    }
  });

  it("lets a keys:manage key change its own tenant's keys but not grant admin nor touch another tenant's key", async () => {
    const a = await createTenant(`upd-a-${Date.now().toString(36)}`);
    const b = await createTenant(`upd-b-${Date.now().toString(36)}`);
    const manager = await createKey(adminKey, { tenant: a, name: 'mgr', scopes: ['KEYS_MANAGE'] });
    const mine = await createKey(adminKey, { tenant: a, name: 'mine', scopes: ['INFERENCE'] });
    const theirs = await createKey(adminKey, { tenant: b, name: 'theirs', scopes: ['INFERENCE'] });
    const ok = await call<{ updateApiKey: { name: string } }>(manager.plaintext, UPDATE, { id: mine.apiKey.id, input: { name: 'renamed' } });
    expect(ok.body.data?.updateApiKey.name).toBe('renamed');
    expect(code(await call(manager.plaintext, UPDATE, { id: mine.apiKey.id, input: { scopes: ['ADMIN'] } }))).toBe('FORBIDDEN');
    expect(code(await call(manager.plaintext, UPDATE, { id: theirs.apiKey.id, input: { name: 'x' } }))).toBe('NOT_FOUND');
  });
});

describe('tenant isolation', () => {
  it("keeps tenant A's keys:manage key away from tenant B's keys", async () => {
    const stamp = Date.now().toString(36);
    const a = await createTenant(`iso-a-${stamp}`);
    const b = await createTenant(`iso-b-${stamp}`);
    const managerA = await createKey(adminKey, { tenant: a, name: 'manager', scopes: ['KEYS_MANAGE'] });
    const keyA = await createKey(managerA.plaintext, { name: 'a-client', scopes: ['INFERENCE'] });
    expect(keyA.apiKey.tenantId).toBe(a);
    const keyB = await createKey(adminKey, { tenant: b, name: 'b-client', scopes: ['INFERENCE'] });

    const own = await call<{ apiKeys: { edges: { node: { tenantId: string } }[] } }>(managerA.plaintext, API_KEYS, {});
    expect(own.body.data!.apiKeys.edges.length).toBeGreaterThanOrEqual(2);
    expect(new Set(own.body.data!.apiKeys.edges.map((e) => e.node.tenantId))).toEqual(new Set([a]));

    expect(code(await call(managerA.plaintext, API_KEYS, { tenant: b }))).toBe('NOT_FOUND');
    expect(code(await call(managerA.plaintext, REVOKE, { id: keyB.apiKey.id }))).toBe('NOT_FOUND');
    expect(code(await call(managerA.plaintext, REVOKE, { id: keyB.apiKey.prefix }))).toBe('NOT_FOUND');
    expect(code(await call(managerA.plaintext, ROTATE, { id: keyB.apiKey.id, grace: 0 }))).toBe('NOT_FOUND');
    expect(code(await call(managerA.plaintext, CREATE_KEY, { input: { tenant: b, name: 'x', scopes: ['INFERENCE'] } }))).toBe('NOT_FOUND');
    expect(code(await call(managerA.plaintext, CREATE_KEY, { input: { name: 'x', scopes: ['ADMIN'] } }))).toBe('FORBIDDEN');
    expect(code(await call(managerA.plaintext, '{ tenants { edges { cursor } } }'))).toBe('FORBIDDEN');
    // apiKey(id) and ApiKey.tenant: A's own key and tenant, never B's.
    const KEY_BY_ID = 'query($id: ID!) { apiKey(id: $id) { id prefix tenant { id name } } }';
    const ownKey = await call<{ apiKey: { id: string; tenant: { id: string; name: string } } }>(managerA.plaintext, KEY_BY_ID, { id: keyA.apiKey.prefix });
    expect(ownKey.body.data?.apiKey).toEqual({ id: keyA.apiKey.id, prefix: keyA.apiKey.prefix, tenant: { id: a, name: `iso-a-${stamp}` } });
    expect(code(await call(managerA.plaintext, KEY_BY_ID, { id: keyB.apiKey.id }))).toBe('NOT_FOUND');
    expect(code(await call(managerA.plaintext, KEY_BY_ID, { id: keyB.apiKey.prefix }))).toBe('NOT_FOUND');
    expect(code(await call(keyA.plaintext, KEY_BY_ID, { id: keyA.apiKey.id }))).toBe('FORBIDDEN');
    const named = await call<{ apiKeys: { edges: { node: { tenant: { id: string } } }[] } }>(adminKey, 'query($t: String) { apiKeys(tenant: $t) { edges { node { tenant { id name } } } } }', { t: b });
    expect(named.body.data?.apiKeys.edges.map((e) => e.node.tenant)).toEqual([{ id: b, name: `iso-b-${stamp}` }]);
    expect(code(await call(managerA.plaintext, '{ auditEvents { edges { cursor } } }'))).toBe('FORBIDDEN');
    // B's key still works: nothing above touched it.
    expect((await call(keyB.plaintext, ME)).status).toBe(200);
    // An inference-only key cannot manage keys at all.
    expect(code(await call(keyA.plaintext, API_KEYS, {}))).toBe('FORBIDDEN');
    // A's manager can revoke A's key.
    expect((await call(managerA.plaintext, REVOKE, { id: keyA.apiKey.id })).status).toBe(200);
  });
});

describe('audit trail', () => {
  it('records actor key, action, target, before/after, ip, user agent and request id', async () => {
    const created = await createKey(adminKey, { name: 'audited', scopes: ['INFERENCE'] });
    await call(adminKey, REVOKE, { id: created.apiKey.id }, { 'x-request-id': 'audit-req-1', 'user-agent': 'audit-test/1.0' });
    const res = await call<{ auditEvents: { edges: { node: Record<string, unknown> }[] } }>(
      adminKey,
      '{ auditEvents(first: 20) { edges { node { actorKeyId actor action targetType targetId before after ip userAgent requestId } } } }',
    );
    const event = res.body.data!.auditEvents.edges.map((e) => e.node).find((n) => n['requestId'] === 'audit-req-1');
    expect(event).toMatchObject({ action: 'apikey.revoke', targetType: 'ApiKey', targetId: created.apiKey.id, userAgent: 'audit-test/1.0', ip: '127.0.0.1' });
    expect(event?.['actor']).toMatch(/^key:mg_(live|test)_/);
    expect((event?.['before'] as { revokedAt: unknown }).revokedAt).toBeNull();
    expect((event?.['after'] as { revokedAt: unknown }).revokedAt).not.toBeNull();
  });
});

describe('secrets at rest and in logs', () => {
  it('stores no plaintext key in any table and logs none', async () => {
    expect(plaintexts.length).toBeGreaterThan(10);
    const client = new pg.Client({ connectionString: testEnv.databaseUrl });
    await client.connect();
    try {
      const tables = await client.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
      let dump = '';
      for (const { table_name } of tables.rows) {
        const rows = await client.query(`SELECT row_to_json(t)::text AS j FROM "${table_name}" t`);
        dump += rows.rows.map((r: { j: string }) => r.j).join('\n');
      }
      expect(dump.length).toBeGreaterThan(1000);
      for (const p of plaintexts) {
        expect(dump).not.toContain(p);
        expect(dump).not.toContain(p.slice(16)); // not even the secret part
      }
    } finally {
      await client.end();
    }
    expect(gw.logs.text).toContain('api key revoked');
    expect(gw.logs.lines.length).toBeGreaterThan(50);
    for (const p of plaintexts) expect(gw.logs.text).not.toContain(p.slice(16));
  });
});
