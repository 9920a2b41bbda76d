/**
 * Budgets and credits across three production gateways (node dist/main.js,
 * NODE_ENV=production) on one Postgres and Redis: 40 concurrent one-unit
 * inference requests spread over the three admit exactly the budget — in
 * compute units, in money (price x units), and in credits granted with
 * grantCredits — refusing the rest with QUOTA_EXCEEDED naming the limit;
 * Postgres holds exactly as many served usage records.
 */
import { randomBytes } from 'node:crypto';
import { ProductionGateway, productionEnv, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { authHeaders, closeTestKeys, createTestKey, testKeyService } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { errorCode, INFER, infer, until, usageOf } from '../resilience/helpers';
import { imageTensor } from '../inference/fixtures';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const N = 12;
const REQUESTS = 40;

type Gql<T> = { data?: T | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };

describe('budgets and credits across three production gateways', () => {
  let gateways: ProductionGateway[] = [];
  let admin: string;

  beforeAll(async () => {
    const env = { ...productionEnv(), USAGE_FLUSH_INTERVAL_MS: '50', LOG_LEVEL: 'warn' };
    gateways = await Promise.all(['A', 'B', 'C'].map((name) => ProductionGateway.start(env, { name })));
    admin = (await createTestKey({ scopes: ['admin'] })).key;
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await closeTestKeys();
  });

  async function gql<T>(query: string, variables: Record<string, unknown>, key = admin): Promise<T> {
    const res = await gateways[0]!.graphql<T>(query, variables, authHeaders(key));
    const body = res.body as Gql<T> | null;
    if (!body?.data) throw new Error(`GraphQL failed: ${res.text}`);
    return body.data;
  }

  async function tenantWithKey(tenantInput: Record<string, unknown>, keyInput: Record<string, unknown>): Promise<{ tenantId: string; tenantName: string; key: string; apiKeyId: string }> {
    const name = `budget-${randomBytes(4).toString('hex')}`;
    const t = await gql<{ createTenant: { id: string } }>('mutation($in: CreateTenantInput!) { createTenant(input: $in) { id } }', { in: { name, ...tenantInput } });
    const k = await gql<{ createApiKey: { plaintext: string; apiKey: { id: string } } }>(
      'mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { plaintext apiKey { id } } }',
      { in: { tenant: name, name: 'budgeted', scopes: ['INFERENCE'], ...keyInput } },
    );
    return { tenantId: t.createTenant.id, tenantName: name, key: k.createApiKey.plaintext, apiKeyId: k.createApiKey.apiKey.id };
  }

  /**
   * Fires REQUESTS concurrent one-item requests round-robin over the gateways
   * (fashion-cnn: 1 unit each; fashion-attention: cost 1.39, 2 units); checks
   * the counts and the refusals' limit.
   */
  async function fire(key: string, tenantId: string, limitName: string, model = 'fashion-cnn', unitsEach = 1): Promise<void> {
    const tensor = imageTensor([0]);
    const responses = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => gateways[i % 3]!.graphql<{ infer: { modelName: string } }>(INFER, { in: { model, inputs: [tensor] } }, authHeaders(key))),
    );
    const admitted = responses.filter((r) => r.status === 200 && !r.body?.errors);
    const refused = responses.filter((r) => r.status === 429);
    process.stdout.write(`${limitName} across 3 gateways: ${admitted.length} of ${REQUESTS} admitted (budget ${N}), ${refused.length} refused\n`);
    expect(admitted).toHaveLength(N);
    expect(refused).toHaveLength(REQUESTS - N);
    for (const r of refused) {
      expect(errorCode(r.body)).toBe('QUOTA_EXCEEDED');
      expect(r.body?.errors?.[0]?.extensions?.['limit']).toMatchObject({ name: limitName });
      expect(r.headers.get('ratelimit-policy')).toContain(`"${limitName}";`);
    }
    // Every request left one usage record; exactly N were served (billed).
    const usage = await until('all usage records in Postgres', async () => {
      const u = await usageOf(testEnv.databaseUrl, tenantId);
      return u.rows === REQUESTS ? u : undefined;
    });
    expect(usage).toMatchObject({ rows: REQUESTS, ok: N, units: N * unitsEach });
  }

  it(`admits exactly ${N} of ${REQUESTS} under a key budget of ${N} compute units`, async () => {
    const t = await tenantWithKey({}, { monthlyComputeUnitBudget: N });
    await fire(t.key, t.tenantId, 'key_monthly_compute_units');
  });

  it(`admits exactly ${N} of ${REQUESTS} under a money budget of ${N} x the request's price, and me.limits shows it spent`, async () => {
    // fashion-attention (2 units a request) at 250 micro-USD a unit: 500 a request.
    const t = await tenantWithKey({}, { monthlyBudget: { amountMicros: String(N * 500), currency: 'USD' } });
    // The tenant's own price, in effect since the start of the previous hour (written directly:
    // setPrice only accepts future hours, so usage keeps the price it had). A model no other
    // test prices, so the shared database's price lists elsewhere are unchanged.
    const { db } = await testKeyService();
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    const price = await db.prisma.price.create({ data: { model: 'fashion-attention', tenantId: t.tenantId, currency: 'USD', microsPerUnit: 250n, effectiveFrom: new Date(hour), createdBy: 'test' } });
    try {
      await fire(t.key, t.tenantId, 'key_monthly_spend', 'fashion-attention', 2);
    } finally {
      await db.prisma.price.delete({ where: { id: price.id } });
    }
    const me = await gql<{ me: { limits: { limits: { name: string; limit: number; remaining: number; currency: string | null }[] } } }>('{ me { limits { limits { name limit remaining currency } } } }', {}, t.key);
    expect(me.me.limits.limits.find((l) => l.name === 'key_monthly_spend')).toEqual({ name: 'key_monthly_spend', limit: N * 500, remaining: 0, currency: 'USD' });
    // A budget in another currency than the tenant's existing ones is refused with a coded error.
    const clash = await gateways[1]!.graphql(
      'mutation($t: ID!, $in: UpdateTenantInput!) { updateTenant(id: $t, input: $in) { id } }',
      { t: t.tenantName, in: { monthlyBudget: { amountMicros: '1000', currency: 'EUR' } } },
      authHeaders(admin),
    );
    expect((clash.body as Gql<unknown>).errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'CURRENCY_MISMATCH' });
  });

  it(`admits exactly ${N} of ${REQUESTS} against a tenant credit balance of ${N} granted with grantCredits`, async () => {
    const t = await tenantWithKey({ credits: {} }, {});
    const granted = await gql<{ grantCredits: { balance: number; amount: number } }>(
      'mutation($in: GrantCreditsInput!) { grantCredits(input: $in) { amount balance } }',
      { in: { tenant: t.tenantName, amount: N, reason: 'replica test' } },
    );
    expect(granted.grantCredits).toEqual({ amount: N, balance: N });
    await fire(t.key, t.tenantId, 'tenant_credits');
    const me = await gql<{ me: { limits: { limits: { name: string; remaining: number }[] } } }>('{ me { limits { limits { name remaining } } } }', {}, t.key);
    expect(me.me.limits.limits.find((l) => l.name === 'tenant_credits')).toEqual({ name: 'tenant_credits', remaining: 0 });
    // The grant is in the ledger and the audit trail; a top-up lets exactly that much more through.
    const { db } = await testKeyService();
    expect(await db.prisma.creditGrant.count({ where: { tenantId: t.tenantId } })).toBe(1);
    expect(await db.prisma.auditEvent.count({ where: { tenantId: t.tenantId, action: 'credits.grant' } })).toBe(1);
    const again = await gql<{ grantCredits: { balance: number } }>('mutation($in: GrantCreditsInput!) { grantCredits(input: $in) { balance } }', { in: { tenant: t.tenantName, amount: 2 } });
    expect(again.grantCredits.balance).toBe(2);
    const more = await Promise.all([0, 1, 2].map((i) => infer(gateways[i]!, t.key)));
    expect(more.filter((r) => r.status === 200).length).toBe(2);

    // A key balance configured on one gateway applies on another from its next request (invalidation), and is audited.
    const set = await gateways[1]!.graphql<{ updateApiKey: { credits: { refillAmount: number; refillInterval: string } } }>(
      'mutation($id: ID!) { updateApiKey(id: $id, input: { credits: { refillAmount: 3, refillInterval: DAILY } }) { credits { refillAmount refillInterval } } }',
      { id: t.apiKeyId },
      authHeaders(admin),
    );
    expect(set.body?.data?.updateApiKey.credits).toEqual({ refillAmount: 3, refillInterval: 'DAILY' });
    const shown = await until('the key balance on gateway C', async () => {
      const r = await gateways[2]!.graphql<{ me: { limits: { limits: { name: string; limit: number; remaining: number }[] } } }>('{ me { limits { limits { name limit remaining } } } }', {}, authHeaders(t.key));
      return r.body?.data?.me.limits.limits.find((l) => l.name === 'key_credits');
      // Kept below KEY_CACHE_TTL_MS (10 s): past it, expiry alone would show the balance.
    }, { timeoutMs: 5_000 });
    expect(shown).toEqual({ name: 'key_credits', limit: 3, remaining: 3 });
    const audit = await db.prisma.auditEvent.findFirst({ where: { tenantId: t.tenantId, action: 'apikey.update' }, orderBy: { createdAt: 'desc' } });
    expect(audit?.after).toMatchObject({ creditRefillAmount: 3, creditRefillInterval: 'DAILY' });
  });
});
