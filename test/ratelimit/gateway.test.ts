/**
 * Rate limits through real gateways: exactness across three gateway
 * processes, all-or-nothing between tenant and key, the headers, `me`, and
 * a Redis the test starts itself killed mid-test. Until `infer` exists, `me`
 * is the authenticated operation (it consumes one request from each request
 * limit).
 */
import { baseEnv, graphql, spawnGateway, startGateway, type GatewayProcess, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { TestRedisServer } from './redis-server';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const ME = '{ me { scopes } }';
const ME_LIMITS = '{ me { limits { source limits { name limit remaining resetSeconds windowSeconds } monthlyQuota { limit used remaining resetsAt } } } }';

interface MeLimits {
  me: {
    limits: {
      source: string;
      limits: { name: string; limit: number; remaining: number; resetSeconds: number; windowSeconds: number }[];
      monthlyQuota: { limit: number | null; used: number; remaining: number | null; resetsAt: string };
    };
  };
}

afterAll(async () => {
  await closeTestKeys();
});

describe('three gateway processes sharing one Redis', () => {
  let procs: GatewayProcess[] = [];
  beforeAll(async () => {
    procs = await Promise.all([0, 1, 2].map(() => spawnGateway({ ...baseEnv('postgres'), LOG_LEVEL: 'warn' })));
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGTERM')));
  });

  it('admits exactly 50 of 200 concurrent requests under a 50/min key limit', async () => {
    const { key } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 50 } });
    const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => graphql(procs[i % 3]!.url, ME, {}, authHeaders(key))));
    const admitted = responses.filter((r) => r.status === 200 && !r.body.errors);
    const refused = responses.filter((r) => r.status === 429);
    process.stdout.write(`across 3 gateway processes: ${admitted.length} of 200 concurrent requests admitted (limit 50/min), ${refused.length} refused\n`);
    expect(admitted).toHaveLength(50);
    expect(refused).toHaveLength(150);
    for (const r of refused) {
      expect(r.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: { name: 'key_requests', limit: 50, windowSeconds: 60 } });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('one gateway on the shared Redis', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it('puts RateLimit-Policy and RateLimit on authenticated responses, and none on anonymous ones', async () => {
    const { key } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 5 }, tenantLimits: { requestsPerMinute: 900 } });
    const first = await graphql(gw.url, ME, {}, authHeaders(key));
    expect(first.status).toBe(200);
    // `me` consumes no compute units, so only the request limits apply to it and appear.
    expect(first.headers.get('ratelimit-policy')).toBe('"key_requests";q=5;w=60, "tenant_requests";q=900;w=60');
    expect(first.headers.get('ratelimit')).toBe('"key_requests";r=4;t=60, "tenant_requests";r=899;t=60');
    expect(first.headers.get('retry-after')).toBeNull();
    const anonymous = await graphql(gw.url, '{ health { status } }');
    expect(anonymous.headers.get('ratelimit')).toBeNull();
    expect(anonymous.headers.get('ratelimit-policy')).toBeNull();
  });

  it('refuses with 429 RATE_LIMITED, Retry-After and the limit hit once the key limit is spent', async () => {
    const { key } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 2 } });
    for (let i = 0; i < 2; i += 1) expect((await graphql(gw.url, ME, {}, authHeaders(key))).status).toBe(200);
    const res = await graphql(gw.url, ME, {}, authHeaders(key));
    expect(res.status).toBe(429);
    expect(res.body.data ?? null).toBeNull();
    const ext = res.body.errors?.[0]?.extensions ?? {};
    expect(ext).toMatchObject({ code: 'RATE_LIMITED', limit: { name: 'key_requests', limit: 2, windowSeconds: 60 } });
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBe(ext['retryAfterSeconds']);
    expect(retryAfter).toBeGreaterThanOrEqual(59);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get('ratelimit')).toMatch(/^"key_requests";r=0;t=(59|60),/);
  });

  it('leaves the key counters untouched when the tenant limit refuses', async () => {
    const tenantName = `tenant-rl-${Date.now()}`;
    const a = await createTestKey({ tenantName, scopes: ['inference'], tenantLimits: { requestsPerMinute: 3 }, keyLimits: { requestsPerMinute: 10 } });
    const b = await createTestKey({ tenantName, scopes: ['inference'], keyLimits: { requestsPerMinute: 10 } });
    for (let i = 0; i < 3; i += 1) expect((await graphql(gw.url, ME, {}, authHeaders(a.key))).status).toBe(200);
    const refused = await graphql(gw.url, ME, {}, authHeaders(b.key));
    expect(refused.status).toBe(429);
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: { name: 'tenant_requests', limit: 3 } });
    // b's own counter was not consumed by the refused request.
    expect(refused.headers.get('ratelimit')).toMatch(/^"key_requests";r=10;t=0, "tenant_requests";r=0;t=\d+$/);
    const status = await gw.gateway.services.limits.status({ ...principalOf(b, tenantName), limits: { ...noOverrides(), keyRequestsPerMinute: 10, tenantRequestsPerMinute: 3 } });
    expect(status.limits.find((s) => s.name === 'key_requests')?.remaining).toBe(10);
  });

  it('shows each limit and the month quota used in `me`', async () => {
    const { key } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 7 }, tenantLimits: { monthlyComputeUnitQuota: 500 } });
    const res = await graphql<MeLimits>(gw.url, ME_LIMITS, {}, authHeaders(key));
    expect(res.status).toBe(200);
    const limits = res.body.data?.me.limits;
    expect(limits?.source).toBe('redis');
    expect(limits?.limits.find((l) => l.name === 'key_requests')).toEqual({ name: 'key_requests', limit: 7, remaining: 6, resetSeconds: 60, windowSeconds: 60 });
    expect(limits?.monthlyQuota).toMatchObject({ limit: 500, used: 0, remaining: 500 });
    expect(new Date(limits?.monthlyQuota.resetsAt ?? 0).getUTCDate()).toBe(1);
  });
});

describe('a Redis the test starts itself, killed mid-test', () => {
  let server: TestRedisServer;
  let gw: TestGateway;
  beforeAll(async () => {
    server = await TestRedisServer.start();
    gw = await startGateway({ REDIS_URL: server.url, REDIS_KEY_PREFIX: 'mgkill:' });
  });
  afterAll(async () => {
    await gw.close();
    await server.kill();
  });

  it('keeps serving on the in-process limiter (open), shows it, and is back on Redis by itself after the restart', async () => {
    const { key } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 4 } });
    const before = await graphql<MeLimits>(gw.url, ME_LIMITS, {}, authHeaders(key));
    expect(before.body.data?.me.limits.source).toBe('redis');

    await server.kill();
    const during = [];
    for (let i = 0; i < 6; i += 1) during.push(await graphql<MeLimits>(gw.url, ME_LIMITS, {}, authHeaders(key)));
    // No crash, no 500: the in-process limiter admits up to the key's limit in this process and refuses the rest.
    expect(during.map((r) => r.status)).toEqual([200, 200, 200, 200, 429, 429]);
    expect(during[0]?.body.data?.me.limits.source).toBe('local');
    expect(during[0]?.headers.get('ratelimit')).toMatch(/^"key_requests";r=3;/);
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { ready: boolean; components: Record<string, { ready: boolean; required: boolean; detail: Record<string, unknown> }> };
    expect(ready.components['rateLimits']).toMatchObject({ ready: true, required: false, detail: { backend: 'local', failureMode: 'open' } });
    // Open mode degrades but stays in rotation: Redis is shown down, yet the gateway is ready.
    expect(ready.components['redis']).toMatchObject({ ready: false, required: false });
    expect(ready.ready).toBe(true);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/^modelgate_rate_limit_store_up 0$/m);
    expect(gw.logs.lines.filter((l) => l.includes('rate limits: Redis unreachable'))).toHaveLength(1);

    const restartedAt = Date.now();
    await server.restart();
    const other = await createTestKey({ scopes: ['inference'] });
    await until('`me.limits.source` to say redis again', async () => (await graphql<MeLimits>(gw.url, ME_LIMITS, {}, authHeaders(other.key))).body.data?.me.limits.source, {
      accept: (source) => source === 'redis',
    });
    process.stdout.write(`gateway back on Redis ${Date.now() - restartedAt} ms after redis-server restarted\n`);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/^modelgate_rate_limit_store_up 1$/m);
    expect(gw.logs.lines.filter((l) => l.includes('rate limits: back on Redis'))).toHaveLength(1);
  });
});

describe('RATE_LIMIT_FAILURE_MODE=closed with Redis down', () => {
  it('refuses authenticated operations with 503 OVERLOADED and Retry-After, without crashing', async () => {
    const server = await TestRedisServer.start();
    const gw = await startGateway({ REDIS_URL: server.url, REDIS_KEY_PREFIX: 'mgkill:', RATE_LIMIT_FAILURE_MODE: 'closed' });
    try {
      const { key } = await createTestKey({ scopes: ['inference'] });
      expect((await graphql(gw.url, ME, {}, authHeaders(key))).status).toBe(200);
      await server.kill();
      const res = await graphql(gw.url, ME, {}, authHeaders(key));
      expect(res.status).toBe(503);
      expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'OVERLOADED', retryAfterSeconds: 1 });
      expect(res.headers.get('retry-after')).toBe('1');
      expect((await graphql(gw.url, '{ health { status } }')).status).toBe(200);
    } finally {
      await gw.close();
      await server.kill();
    }
  });
});

function noOverrides() {
  return { keyRequestsPerMinute: null, keyComputeUnitsPerMinute: null, tenantRequestsPerMinute: null, tenantComputeUnitsPerMinute: null, tenantMonthlyComputeUnitQuota: null };
}

function principalOf(k: { apiKeyId: string; tenantId: string }, tenantName: string) {
  return { apiKeyId: k.apiKeyId, tenantId: k.tenantId, tenantName, keyPrefix: 'x', scopes: ['inference' as const], allowedModels: [], expiresAt: null, limits: noOverrides() };
}
