/**
 * Revocation across processes: two gateway processes (node dist/main.js)
 * share Postgres and Redis; a key revoked through one is refused by the
 * other before its own cached entry (10 s) expires: the broadcast, not the
 * TTL, ends it. The time it took is printed, not asserted.
 */
import { baseEnv, graphql, spawnGateway, startGateway, type GatewayProcess } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { beforeExpiry, STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const ME = '{ me { apiKey { id } } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }';

async function lookups(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^modelgate_auth_key_lookups_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describe('revocation across gateway processes', () => {
  let a: GatewayProcess;
  let b: GatewayProcess;
  beforeAll(async () => {
    const env = { ...baseEnv('postgres'), KEY_CACHE_TTL_MS: '10000' };
    [a, b] = await Promise.all([spawnGateway(env), spawnGateway(env)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await closeTestKeys();
  });

  it('refuses a key on process B soon after its revocation on process A, before B\'s cached entry expires', async () => {
    const admin = await createTestKey({ scopes: ['admin'] });
    const target = await createTestKey({ scopes: ['inference'] });

    // Warm A's admin path so the revoke below is not the process's first transaction.
    expect((await graphql(a.url, '{ apiKeys(first: 1) { edges { cursor } } }', {}, authHeaders(admin.key))).status).toBe(200);
    // B verifies the key once from the database, then serves it from its cache.
    const cachedAt = Date.now();
    expect((await graphql(b.url, ME, {}, authHeaders(target.key))).status).toBe(200);
    const before = await lookups(b.url);
    for (let i = 0; i < 5; i += 1) expect((await graphql(b.url, ME, {}, authHeaders(target.key))).status).toBe(200);
    expect(await lookups(b.url)).toBe(before);

    const revokedAt = performance.now();
    const revoke = await graphql(a.url, REVOKE, { id: target.apiKeyId }, authHeaders(admin.key));
    expect(revoke.body.data).toEqual({ revokeApiKey: { status: 'REVOKED' } });
    const answered = performance.now();

    let refusedAt = answered;
    let polls = 0;
    // The revocation is committed when A answers; B must refuse before its cached entry would expire.
    const refused = await until(
      'process B to refuse the revoked key',
      async () => {
        const res = await graphql(b.url, ME, {}, authHeaders(target.key));
        polls += 1;
        refusedAt = performance.now();
        return res;
      },
      { accept: (res) => res.status !== 200, everyMs: 0, timeoutMs: beforeExpiry(cachedAt, 10_000) },
    );
    const status = refused.status;
    expect(refused.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    const sinceRequest = refusedAt - revokedAt;
    const sinceAnswer = refusedAt - answered;
    process.stdout.write(
      `revocation: process B refused the key on poll ${polls}, which completed ${sinceAnswer.toFixed(1)} ms after A answered the revoke (${sinceRequest.toFixed(1)} ms after it was sent)\n`,
    );
    expect(status).toBe(401);

    for (const p of [a, b]) {
      expect(p.output()).not.toContain(target.key.slice(16));
      expect(p.output()).not.toContain(admin.key.slice(16));
    }
  });

  it('applies an updateApiKey that narrows scopes on process B before its cached entry expires', async () => {
    const admin = await createTestKey({ scopes: ['admin'] });
    const target = await createTestKey({ scopes: ['inference', 'keys:manage'] });
    const LIST = '{ apiKeys(first: 1) { edges { cursor } } }';
    const cachedAt = Date.now();
    expect((await graphql(b.url, LIST, {}, authHeaders(target.key))).status).toBe(200);
    const before = await lookups(b.url);
    expect((await graphql(b.url, LIST, {}, authHeaders(target.key))).status).toBe(200);
    expect(await lookups(b.url)).toBe(before); // served from B's cache

    const update = await graphql(a.url, 'mutation($id: ID!) { updateApiKey(id: $id, input: { scopes: [INFERENCE] }) { scopes } }', { id: target.apiKeyId }, authHeaders(admin.key));
    expect(update.body.data).toEqual({ updateApiKey: { scopes: ['INFERENCE'] } });
    const answered = performance.now();
    let polls = 0;
    const status = await until(
      'process B to refuse the narrowed scope',
      async () => {
        polls += 1;
        return (await graphql(b.url, LIST, {}, authHeaders(target.key))).status;
      },
      { accept: (s) => s !== 200, everyMs: 0, timeoutMs: beforeExpiry(cachedAt, 10_000) },
    );
    process.stdout.write(`updateApiKey: process B refused the narrowed scope on poll ${polls}, ${(performance.now() - answered).toFixed(1)} ms after A answered\n`);
    expect(status).toBe(403);
    // The key itself still works for what it kept.
    expect((await graphql(b.url, ME, {}, authHeaders(target.key))).status).toBe(200);
  });
});

describe('with Redis unavailable', () => {
  it('bounds staleness by the cache TTL: another process refuses the revoked key once its entry expires', async () => {
    const ttlMs = 1000;
    const noRedis = await startGateway({ REDIS_URL: undefined, KEY_CACHE_TTL_MS: String(ttlMs) });
    const other = await startGateway();
    try {
      const admin = await createTestKey({ scopes: ['admin'] });
      const target = await createTestKey({ scopes: ['inference'] });
      expect((await graphql(noRedis.url, ME, {}, authHeaders(target.key))).status).toBe(200);
      const cachedAt = Date.now();
      await graphql(other.url, REVOKE, { id: target.apiKeyId }, authHeaders(admin.key));
      // No broadcast reaches this process, but it cached the key at most ttlMs ago.
      await new Promise((r) => setTimeout(r, Math.max(0, cachedAt + ttlMs + 50 - Date.now())));
      expect((await graphql(noRedis.url, ME, {}, authHeaders(target.key))).status).toBe(401);
    } finally {
      await Promise.all([noRedis.close(), other.close()]);
    }
  });
});
