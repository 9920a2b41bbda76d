/**
 * A key's monthly budget through two real gateway processes (node
 * dist/main.js) on one Postgres and Redis: the budget is set with
 * updateApiKey on one process while the other has the key cached, and the
 * two together admit exactly the budget of concurrent inference requests.
 */
import { baseEnv, graphql, spawnGateway, type GatewayProcess } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { beforeExpiry, STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const INFER = `mutation { infer(input: {model: "fashion-cnn", inputs: [{name: "image", datatype: FP32, shape: [1,1,28,28], data: [${new Array(784).fill(0).join(',')}]}]}) { outputs { name } } }`;

describe('key budget across two gateway processes', () => {
  let procs: GatewayProcess[] = [];
  beforeAll(async () => {
    procs = await Promise.all([0, 1].map(() => spawnGateway({ ...baseEnv('postgres'), LOG_LEVEL: 'warn', KEY_CACHE_TTL_MS: '10000' })));
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGTERM')));
    await closeTestKeys();
  });

  it('admits exactly 12 of 40 concurrent 1-unit requests under a budget of 12 set by updateApiKey, refusing the rest with QUOTA_EXCEEDED', async () => {
    const admin = await createTestKey({ scopes: ['admin'] });
    const { key, apiKeyId } = await createTestKey({ scopes: ['inference'] });
    // Both processes cache the key without a budget first.
    const cachedAt = Date.now();
    for (const p of procs) expect((await graphql(p.url, '{ me { scopes } }', {}, authHeaders(key))).status).toBe(200);
    const set = await graphql(procs[0]!.url, 'mutation($id: ID!) { updateApiKey(id: $id, input: { monthlyComputeUnitBudget: 12 }) { monthlyComputeUnitBudget } }', { id: apiKeyId }, authHeaders(admin.key));
    expect(set.body.data).toEqual({ updateApiKey: { monthlyComputeUnitBudget: 12 } });
    // The other process applies the update by broadcast, before its cached entry (KEY_CACHE_TTL_MS 10 s) could expire; polled on a read that consumes no units.
    const shown = await until(
      'process B to show the new budget',
      async () => (await graphql<{ me: { limits: { limits: { name: string; limit: number }[] } } }>(procs[1]!.url, '{ me { limits { limits { name limit } } } }', {}, authHeaders(key))).body.data?.me.limits.limits.find((l) => l.name === 'key_monthly_compute_units'),
      { timeoutMs: beforeExpiry(cachedAt, 10_000), onArrived: (ms) => process.stdout.write(`key budget: process B showed the update ${Math.round(ms)} ms after A answered\n`) },
    );
    expect(shown).toEqual({ name: 'key_monthly_compute_units', limit: 12 });

    const responses = await Promise.all(Array.from({ length: 40 }, (_, i) => graphql(procs[i % 2]!.url, INFER, {}, authHeaders(key))));
    const admitted = responses.filter((r) => r.status === 200 && !r.body.errors);
    const refused = responses.filter((r) => r.status === 429);
    process.stdout.write(`key budget across 2 gateway processes: ${admitted.length} of 40 admitted (budget 12 units), ${refused.length} refused\n`);
    expect(admitted).toHaveLength(12);
    expect(refused).toHaveLength(28);
    for (const r of refused) {
      expect(r.body.errors?.[0]?.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', limit: { name: 'key_monthly_compute_units', limit: 12 } });
      expect(r.headers.get('ratelimit-policy')).toContain('"key_monthly_compute_units";q=12');
    }
  });
});
