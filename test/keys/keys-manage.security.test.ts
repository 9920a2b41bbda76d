/**
 * What a keys:manage key may not do, through the GraphQL admin API of a real
 * gateway (Postgres, Redis): loosen a limit an admin set on a key (per-minute
 * rates, unit and money budgets, credits), set a rate above the gateway
 * default, change its tenant, grant credits, or revoke, rotate or change its
 * tenant's admin keys. Each refusal is FORBIDDEN naming the field, and leaves
 * the key's row and the audit trail as they were.
 */
import pg from 'pg';
import { graphql, startGateway, type GraphQLResponse, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

/** The gateway defaults this file starts with: the ceiling of a rate no admin set. */
const DEFAULT_RPM = 700;
const DEFAULT_CUPM = 7000;

let gw: TestGateway;
let adminKey: string;
let db: pg.Client;

type Data = Record<string, unknown>;

const KEY_FIELDS = 'id prefix requestsPerMinute computeUnitsPerMinute monthlyComputeUnitBudget monthlyBudget { amountMicros currency } credits { refillAmount refillInterval }';
const CREATE_KEY = `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { plaintext apiKey { ${KEY_FIELDS} } } }`;
const UPDATE_KEY = `mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY_FIELDS} } }`;
const ME_CREDITS = '{ me { limits { limits { name limit remaining } } } }';

interface KeyShape {
  id: string;
  prefix: string;
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  monthlyComputeUnitBudget: number | null;
  monthlyBudget: { amountMicros: string; currency: string } | null;
  credits: { refillAmount: number | null; refillInterval: string | null } | null;
}

async function call<T = Data>(key: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponse<T>> {
  return graphql<T>(gw.url, query, variables, authHeaders(key));
}

async function createTenant(name: string): Promise<string> {
  const res = await call<{ createTenant: { id: string } }>(adminKey, 'mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }', { input: { name } });
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.createTenant.id;
}

async function createKey(by: string, input: Record<string, unknown>): Promise<{ plaintext: string; apiKey: KeyShape }> {
  const res = await call<{ createApiKey: { plaintext: string; apiKey: KeyShape } }>(by, CREATE_KEY, { input });
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.createApiKey;
}

async function update(by: string, id: string, input: Record<string, unknown>): Promise<GraphQLResponse<{ updateApiKey: KeyShape }>> {
  return call<{ updateApiKey: KeyShape }>(by, UPDATE_KEY, { id, input });
}

async function keyRow(id: string): Promise<Record<string, unknown>> {
  const r = await db.query(
    'SELECT "requestsPerMinute", "computeUnitsPerMinute", "monthlyComputeUnitBudget", "monthlyBudgetMicros"::text AS "monthlyBudgetMicros", "budgetCurrency", "creditRefillAmount", "creditRefillInterval"::text AS "creditRefillInterval", "revokedAt", "updatedAt" FROM "ApiKey" WHERE id = $1',
    [id],
  );
  return r.rows[0] as Record<string, unknown>;
}

async function auditCount(targetId: string): Promise<number> {
  return (await db.query('SELECT count(*)::int AS n FROM "AuditEvent" WHERE "targetId" = $1', [targetId])).rows[0].n as number;
}

/** A refusal: FORBIDDEN (HTTP 403) naming the field, with nothing written. */
async function expectRefused(by: string, target: string, input: Record<string, unknown>, field: string): Promise<void> {
  const [row, audits] = [await keyRow(target), await auditCount(target)];
  const res = await update(by, target, input);
  expect({ status: res.status, code: res.body.errors?.[0]?.extensions?.['code'], field: res.body.errors?.[0]?.extensions?.['field'] }).toEqual({ status: 403, code: 'FORBIDDEN', field });
  expect(res.body.errors?.[0]?.message).toContain(`Only an admin may`);
  expect(await keyRow(target)).toEqual(row);
  expect(await auditCount(target)).toBe(audits);
}

async function expectChanged(by: string, target: string, input: Record<string, unknown>): Promise<KeyShape> {
  const res = await update(by, target, input);
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.updateApiKey;
}

/** An admin-made key with every limit set, and a keys:manage key of the same tenant. */
async function fixture(): Promise<{ tenantId: string; manager: string; target: KeyShape & { plaintext: string } }> {
  const tenantId = await createTenant(`priv-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`);
  const manager = (await createKey(adminKey, { tenant: tenantId, name: 'manager', scopes: ['KEYS_MANAGE'] })).plaintext;
  const created = await createKey(adminKey, {
    tenant: tenantId,
    name: 'limited',
    scopes: ['INFERENCE'],
    requestsPerMinute: 100,
    computeUnitsPerMinute: 1000,
    monthlyComputeUnitBudget: 5000,
    monthlyBudget: { amountMicros: '5000000', currency: 'USD' },
    credits: { refillAmount: 100, refillInterval: 'DAILY' },
  });
  return { tenantId, manager, target: { ...created.apiKey, plaintext: created.plaintext } };
}

beforeAll(async () => {
  gw = await startGateway({ DEFAULT_REQUESTS_PER_MINUTE: String(DEFAULT_RPM), DEFAULT_COMPUTE_UNITS_PER_MINUTE: String(DEFAULT_CUPM) });
  adminKey = (await createTestKey({ scopes: ['admin'], name: 'privileges admin' })).key;
  db = new pg.Client({ connectionString: testEnv.databaseUrl });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await gw?.close();
  await closeTestKeys();
});

describe('a keys:manage key and the limits an admin set on a key', () => {
  it('cannot raise requestsPerMinute; may lower it, raise it back up to the admin value, and null restores that value', async () => {
    const { manager, target } = await fixture();
    await expectRefused(manager, target.id, { requestsPerMinute: 101 }, 'requestsPerMinute');
    await expectRefused(manager, target.id, { requestsPerMinute: 1_000_000_000 }, 'requestsPerMinute');
    expect((await expectChanged(manager, target.id, { requestsPerMinute: 10 })).requestsPerMinute).toBe(10);
    expect((await expectChanged(manager, target.id, { requestsPerMinute: 100 })).requestsPerMinute).toBe(100);
    await expectChanged(manager, target.id, { requestsPerMinute: 10 });
    expect((await expectChanged(manager, target.id, { requestsPerMinute: null })).requestsPerMinute).toBe(100);
  });

  it('cannot raise computeUnitsPerMinute', async () => {
    const { manager, target } = await fixture();
    await expectRefused(manager, target.id, { computeUnitsPerMinute: 1001 }, 'computeUnitsPerMinute');
    expect((await expectChanged(manager, target.id, { computeUnitsPerMinute: 500 })).computeUnitsPerMinute).toBe(500);
    expect((await expectChanged(manager, target.id, { computeUnitsPerMinute: null })).computeUnitsPerMinute).toBe(1000);
  });

  it('cannot raise or clear monthlyComputeUnitBudget', async () => {
    const { manager, target } = await fixture();
    await expectRefused(manager, target.id, { monthlyComputeUnitBudget: 5001 }, 'monthlyComputeUnitBudget');
    expect((await expectChanged(manager, target.id, { monthlyComputeUnitBudget: 0 })).monthlyComputeUnitBudget).toBe(0);
    // null ("no budget") restores the admin's budget instead of removing it.
    expect((await expectChanged(manager, target.id, { monthlyComputeUnitBudget: null })).monthlyComputeUnitBudget).toBe(5000);
  });

  it('cannot raise, clear or move monthlyBudget to another currency', async () => {
    const { manager, target } = await fixture();
    await expectRefused(manager, target.id, { monthlyBudget: { amountMicros: '5000001', currency: 'USD' } }, 'monthlyBudget');
    await expectRefused(manager, target.id, { monthlyBudget: { amountMicros: '1000', currency: 'EUR' } }, 'monthlyBudget');
    expect((await expectChanged(manager, target.id, { monthlyBudget: { amountMicros: '1000000', currency: 'usd' } })).monthlyBudget).toEqual({ amountMicros: '1000000', currency: 'USD' });
    expect((await expectChanged(manager, target.id, { monthlyBudget: null })).monthlyBudget).toEqual({ amountMicros: '5000000', currency: 'USD' });
  });

  it('cannot mint credits: a higher refill, another interval or top-ups only are refused, and the balance stays the admin refill', async () => {
    const { manager, target } = await fixture();
    await expectRefused(manager, target.id, { credits: { refillAmount: 1_000_000_000, refillInterval: 'DAILY' } }, 'credits');
    await expectRefused(manager, target.id, { credits: { refillAmount: 100, refillInterval: 'MONTHLY' } }, 'credits');
    await expectRefused(manager, target.id, { credits: {} }, 'credits');
    const balance = async () => (await call<{ me: { limits: { limits: { name: string; limit: number; remaining: number }[] } } }>(target.plaintext, ME_CREDITS)).body.data!.me.limits.limits.find((l) => l.name === 'key_credits');
    expect(await balance()).toMatchObject({ limit: 100, remaining: 100 });
    expect((await expectChanged(manager, target.id, { credits: { refillAmount: 40, refillInterval: 'DAILY' } })).credits).toEqual({ refillAmount: 40, refillInterval: 'DAILY' });
    expect(await balance()).toMatchObject({ limit: 40, remaining: 40 });
    expect((await expectChanged(manager, target.id, { credits: null })).credits).toEqual({ refillAmount: 100, refillInterval: 'DAILY' });
  });

  it('keeps the admin values across a rotation, and follows an admin who raises them', async () => {
    const { manager, target } = await fixture();
    const rotated = await call<{ rotateApiKey: { apiKey: { id: string } } }>(manager, 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 0) { apiKey { id } } }', { id: target.id });
    expect(rotated.body.errors).toBeUndefined();
    const successor = rotated.body.data!.rotateApiKey.apiKey.id;
    await expectRefused(manager, successor, { requestsPerMinute: 101 }, 'requestsPerMinute');
    await expectRefused(manager, successor, { credits: { refillAmount: 101, refillInterval: 'DAILY' } }, 'credits');

    expect((await expectChanged(adminKey, successor, { requestsPerMinute: 1000 })).requestsPerMinute).toBe(1000);
    expect((await expectChanged(manager, successor, { requestsPerMinute: 900 })).requestsPerMinute).toBe(900);
    await expectRefused(manager, successor, { requestsPerMinute: 1001 }, 'requestsPerMinute');
    // The admin's later change of one field left the others' admin values alone.
    await expectRefused(manager, successor, { monthlyComputeUnitBudget: 5001 }, 'monthlyComputeUnitBudget');
  });
});

describe('a keys:manage key and limits no admin set', () => {
  it('may set a per-minute rate up to the gateway default only', async () => {
    const { tenantId, manager } = await fixture();
    const plain = await createKey(adminKey, { tenant: tenantId, name: 'plain', scopes: ['INFERENCE'] });
    await expectRefused(manager, plain.apiKey.id, { requestsPerMinute: DEFAULT_RPM + 1 }, 'requestsPerMinute');
    await expectRefused(manager, plain.apiKey.id, { computeUnitsPerMinute: DEFAULT_CUPM + 1 }, 'computeUnitsPerMinute');
    expect((await expectChanged(manager, plain.apiKey.id, { requestsPerMinute: DEFAULT_RPM })).requestsPerMinute).toBe(DEFAULT_RPM);
  });

  it('may set, raise and clear budgets and credits of its own (they only ever refuse more of that key)', async () => {
    const { tenantId, manager } = await fixture();
    const plain = await createKey(adminKey, { tenant: tenantId, name: 'plain', scopes: ['INFERENCE'] });
    await expectChanged(manager, plain.apiKey.id, { monthlyComputeUnitBudget: 10, credits: { refillAmount: 10, refillInterval: 'DAILY' }, monthlyBudget: { amountMicros: '10', currency: 'USD' } });
    const raised = await expectChanged(manager, plain.apiKey.id, { monthlyComputeUnitBudget: 20, credits: { refillAmount: 20, refillInterval: 'MONTHLY' }, monthlyBudget: { amountMicros: '20', currency: 'USD' } });
    expect(raised).toMatchObject({ monthlyComputeUnitBudget: 20, credits: { refillAmount: 20, refillInterval: 'MONTHLY' }, monthlyBudget: { amountMicros: '20', currency: 'USD' } });
    const cleared = await expectChanged(manager, plain.apiKey.id, { monthlyComputeUnitBudget: null, credits: null, monthlyBudget: null });
    expect(cleared).toMatchObject({ monthlyComputeUnitBudget: null, credits: null, monthlyBudget: null });
  });

  it('creates keys with rates up to the gateway default, and its own budgets and credits', async () => {
    const { manager } = await fixture();
    const over = await call(manager, CREATE_KEY, { input: { name: 'fast', scopes: ['INFERENCE'], requestsPerMinute: DEFAULT_RPM + 1 } });
    expect({ status: over.status, code: over.body.errors?.[0]?.extensions?.['code'], field: over.body.errors?.[0]?.extensions?.['field'] }).toEqual({ status: 403, code: 'FORBIDDEN', field: 'requestsPerMinute' });
    const overCu = await call(manager, CREATE_KEY, { input: { name: 'fast', scopes: ['INFERENCE'], computeUnitsPerMinute: DEFAULT_CUPM + 1 } });
    expect(overCu.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', field: 'computeUnitsPerMinute' });
    const made = await createKey(manager, { name: 'prepaid', scopes: ['INFERENCE'], requestsPerMinute: 5, credits: { refillAmount: 1000, refillInterval: 'DAILY' }, monthlyComputeUnitBudget: 100 });
    expect(made.apiKey).toMatchObject({ requestsPerMinute: 5, credits: { refillAmount: 1000, refillInterval: 'DAILY' }, monthlyComputeUnitBudget: 100 });
    // Its own values are no admin's: it may raise them again (within the default for rates).
    expect(await expectChanged(manager, made.apiKey.id, { requestsPerMinute: 50, credits: { refillAmount: 2000, refillInterval: 'DAILY' } })).toMatchObject({ requestsPerMinute: 50, credits: { refillAmount: 2000 } });
  });
});

describe("a keys:manage key and its tenant's settings", () => {
  it('cannot create or change tenants, grant credits or set prices', async () => {
    const { tenantId, manager, target } = await fixture();
    const attempts: [string, Record<string, unknown>][] = [
      ['mutation($id: ID!) { updateTenant(id: $id, input: { requestsPerMinute: 100000 }) { id } }', { id: tenantId }],
      ['mutation($id: ID!) { updateTenant(id: $id, input: { credits: { refillAmount: 1000000000, refillInterval: DAILY } }) { id } }', { id: tenantId }],
      ['mutation($id: ID!) { updateTenant(id: $id, input: { monthlyBudget: null, monthlyComputeUnitQuota: null }) { id } }', { id: tenantId }],
      ['mutation($id: ID!) { updateTenant(id: $id, input: { status: ACTIVE }) { id } }', { id: tenantId }],
      ['mutation { createTenant(input: { name: "sneaky" }) { id } }', {}],
      ['mutation($t: String!, $k: ID) { grantCredits(input: { tenant: $t, apiKey: $k, amount: 1000000 }) { balance } }', { t: tenantId, k: target.id }],
      ['mutation($t: String!, $from: DateTimeISO!) { setPrice(input: { tenant: $t, model: "fashion-cnn", currency: "USD", unitPriceMicros: "0", effectiveFrom: $from }) { id } }', { t: tenantId, from: new Date(Math.ceil(Date.now() / 3_600_000 + 1) * 3_600_000).toISOString() }],
    ];
    for (const [query, variables] of attempts) {
      const res = await call(manager, query, variables);
      expect({ query, code: res.body.errors?.[0]?.extensions?.['code'] }).toEqual({ query, code: 'FORBIDDEN' });
    }
    const tenant = await db.query('SELECT "requestsPerMinute", "creditsSince" FROM "Tenant" WHERE id = $1', [tenantId]);
    expect(tenant.rows[0]).toEqual({ requestsPerMinute: null, creditsSince: null });
    expect((await db.query('SELECT count(*)::int AS n FROM "CreditGrant" WHERE "tenantId" = $1', [tenantId])).rows[0].n).toBe(0);
    expect((await db.query('SELECT count(*)::int AS n FROM "Price" WHERE "tenantId" = $1', [tenantId])).rows[0].n).toBe(0);
  });
});

describe("a keys:manage key and its tenant's admin keys", () => {
  it('cannot revoke, rotate or change an admin key of its own tenant; the admin key keeps working', async () => {
    const { tenantId, manager } = await fixture();
    const tenantAdmin = await createKey(adminKey, { tenant: tenantId, name: 'tenant admin', scopes: ['ADMIN'] });
    const attempts: [string, string][] = [
      ['revokeApiKey', 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }'],
      ['rotateApiKey', 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 0) { plaintext } }'],
      ['updateApiKey', 'mutation($id: ID!) { updateApiKey(id: $id, input: { name: "mine now" }) { id } }'],
    ];
    for (const [name, query] of attempts) {
      for (const id of [tenantAdmin.apiKey.id, tenantAdmin.apiKey.prefix]) {
        const res = await call(manager, query, { id });
        expect({ name, status: res.status, code: res.body.errors?.[0]?.extensions?.['code'] }).toEqual({ name, status: 403, code: 'FORBIDDEN' });
      }
    }
    expect(await keyRow(tenantAdmin.apiKey.id)).toMatchObject({ revokedAt: null });
    expect(await auditCount(tenantAdmin.apiKey.id)).toBe(1); // its creation only
    expect((await call(tenantAdmin.plaintext, '{ me { scopes } }')).status).toBe(200);
    // The same key revokes a non-admin key of its tenant as before.
    const plain = await createKey(adminKey, { tenant: tenantId, name: 'plain', scopes: ['INFERENCE'] });
    const revoked = await call<{ revokeApiKey: { status: string } }>(manager, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: plain.apiKey.id });
    expect(revoked.body.data?.revokeApiKey.status).toBe('REVOKED');
    // And an admin revokes the admin key.
    const byAdmin = await call<{ revokeApiKey: { status: string } }>(adminKey, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: tenantAdmin.apiKey.id });
    expect(byAdmin.body.data?.revokeApiKey.status).toBe('REVOKED');
  });
});
