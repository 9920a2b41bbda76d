/**
 * Redis failure: a redis-server this test starts itself is killed mid-test.
 * Open mode falls back to the in-process limiter, closed mode refuses with
 * OVERLOADED; both log once per transition, show it in readiness and the
 * gauge, and return to Redis by themselves once it is back.
 */
import { TestRedisServer } from './redis-server';
import { harness, principal, type Harness } from './limiter-helpers';
import type { LimitDecision } from '../../src/ratelimit/types';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

async function gauge(h: Harness): Promise<number | undefined> {
  const metric = await h.metrics.registry.getSingleMetric('modelgate_rate_limit_store_up')?.get();
  return metric?.values[0]?.value;
}

/** Waits until a check is decided in Redis again; returns the ms it took (printed, not asserted: a busy machine decides it). */
async function msUntilBackOnRedis(h: Harness, since: number): Promise<number> {
  const p = principal();
  await until('a limit check decided in Redis again', async () => (await h.service.check(p, { computeUnits: 0 })).source, { accept: (source) => source === 'redis', everyMs: 25 });
  return Date.now() - since;
}

describe('Redis killed mid-test, RATE_LIMIT_FAILURE_MODE=open', () => {
  let server: TestRedisServer;
  let h: Harness;
  beforeAll(async () => {
    server = await TestRedisServer.start();
    h = await harness(server.url, 'mgfail:');
  });
  afterAll(async () => {
    await h.close();
    await server.kill();
  });

  it('falls back to the in-process limiter, logs once, and returns to Redis by itself after the restart', async () => {
    const tenant = principal({ keyRequestsPerMinute: 5, tenantMonthlyComputeUnitQuota: 100, keyComputeUnitsPerMinute: 1000 });
    expect((await h.service.check(tenant, { computeUnits: 80 })).source).toBe('redis');
    expect(await gauge(h)).toBe(1);

    await server.kill();
    const during: LimitDecision[] = [];
    for (let i = 0; i < 8; i += 1) during.push(await h.service.check(tenant, { computeUnits: 0 }));
    expect(during.every((d) => d.source === 'local')).toBe(true);
    // The in-process limiter still bounds the key at its limit (rolling windows start empty here).
    expect(during.filter((d) => d.allowed)).toHaveLength(5);
    // The month's quota continues from what Redis last said (80 of 100), not from zero.
    const overQuota = await h.service.check(principal({ tenantMonthlyComputeUnitQuota: 100 }, { tenantId: tenant.tenantId }), { computeUnits: 30 });
    expect(overQuota).toMatchObject({ allowed: false, reason: 'limit', hit: { name: 'tenant_monthly_compute_units', remaining: 20 } });

    expect(h.service.backend).toBe('local');
    expect(await gauge(h)).toBe(0);
    const report = h.readiness.report();
    expect(report.components['rateLimits']).toMatchObject({ ready: true, required: false, detail: { backend: 'local', failureMode: 'open' } });
    expect(h.logs.lines.filter((l) => l.includes('rate limits: Redis unreachable'))).toHaveLength(1);

    const restartedAt = Date.now();
    await server.restart();
    const recoveryMs = await msUntilBackOnRedis(h, restartedAt);
    process.stdout.write(`rate limits back on Redis ${recoveryMs} ms after redis-server restarted (open mode)\n`);
    expect(await gauge(h)).toBe(1);
    expect(h.logs.lines.filter((l) => l.includes('rate limits: back on Redis'))).toHaveLength(1);
    expect(h.logs.lines.filter((l) => l.includes('rate limits: Redis unreachable'))).toHaveLength(1);
  });
});

describe('Redis killed mid-test, RATE_LIMIT_FAILURE_MODE=closed', () => {
  let server: TestRedisServer;
  let h: Harness;
  beforeAll(async () => {
    server = await TestRedisServer.start();
    h = await harness(server.url, 'mgfail:', { RATE_LIMIT_FAILURE_MODE: 'closed' });
  });
  afterAll(async () => {
    await h.close();
    await server.kill();
  });

  it('refuses with OVERLOADED while Redis is down, then returns to Redis by itself', async () => {
    const p = principal();
    expect((await h.service.check(p, { computeUnits: 1 })).allowed).toBe(true);
    await server.kill();
    const d = await h.service.check(p, { computeUnits: 1 });
    expect(d).toEqual({ allowed: false, reason: 'unavailable', retryAfterSeconds: 1, states: [], source: 'unavailable' });
    expect(h.service.backend).toBe('unavailable');
    expect(h.readiness.report().components['rateLimits']).toMatchObject({ ready: false, required: true });
    expect(h.logs.lines.filter((l) => l.includes('refusing requests (RATE_LIMIT_FAILURE_MODE=closed)'))).toHaveLength(1);

    const restartedAt = Date.now();
    await server.restart();
    const recoveryMs = await msUntilBackOnRedis(h, restartedAt);
    process.stdout.write(`rate limits back on Redis ${recoveryMs} ms after redis-server restarted (closed mode)\n`);
    expect(h.readiness.report().components['rateLimits']).toMatchObject({ ready: true });
  });
});
