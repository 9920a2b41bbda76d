/**
 * The limiter core, run against the real Redis (the Lua script) and against
 * the in-process limiter, which must behave identically.
 */
import { testEnv } from '../helpers/env';
import { RedisLimiter } from '../../src/ratelimit/redis-limiter';
import { resolveLimits } from '../../src/ratelimit/limits';
import { limitError, rateLimitHeaders } from '../../src/ratelimit/headers';
import type { LimitDecision } from '../../src/ratelimit/types';
import { harness, limitsConfig, principal, type Harness } from './limiter-helpers';

const T0 = new Date('2026-03-10T12:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

function refused(d: LimitDecision): Extract<LimitDecision, { reason: 'limit' }> {
  if (d.allowed || d.reason !== 'limit') throw new Error(`expected a limit refusal, got ${JSON.stringify(d)}`);
  return d;
}

describe.each([['redis'], ['local']] as const)('limiter on %s', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(backend === 'redis' ? testEnv.redisUrl : null, testEnv.redisPrefix);
  });
  afterAll(async () => {
    await h.close();
  });

  it('admits exactly the limit out of many concurrent checks', async () => {
    const p = principal({ keyRequestsPerMinute: 50 });
    const decisions = await Promise.all(Array.from({ length: 120 }, () => h.service.check(p, { computeUnits: 0 })));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(50);
    expect(decisions.every((d) => d.source === backend)).toBe(true);
    const denied = refused(decisions.find((d) => !d.allowed)!);
    expect(denied.hit).toMatchObject({ name: 'key_requests', limit: 50, remaining: 0, windowSeconds: 60 });
    expect(denied.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(denied.retryAfterSeconds).toBeLessThanOrEqual(60);
  });

  it('slides the window: capacity comes back as each request turns 60 s old', async () => {
    const p = principal({ keyRequestsPerMinute: 3 });
    for (const ms of [0, 10_000, 20_000]) expect((await h.service.check(p, { computeUnits: 0 }, at(ms))).allowed).toBe(true);
    const d = refused(await h.service.check(p, { computeUnits: 0 }, at(30_000)));
    expect(d.retryAfterSeconds).toBe(30);
    expect(d.hit.resetSeconds).toBe(30);
    // Still refused one millisecond before the first request leaves the window.
    expect((await h.service.check(p, { computeUnits: 0 }, at(59_999))).allowed).toBe(false);
    const ok = await h.service.check(p, { computeUnits: 0 }, at(60_000));
    expect(ok.allowed).toBe(true);
    expect(ok.states.find((s) => s.name === 'key_requests')).toMatchObject({ remaining: 0, resetSeconds: 10 });
    expect((await h.service.check(p, { computeUnits: 0 }, at(60_001))).allowed).toBe(false);
  });

  it('consumes nothing from the key when the tenant limit refuses (all or nothing)', async () => {
    const tenantId = `t-${backend}-${Date.now()}`;
    const a = principal({ tenantRequestsPerMinute: 3, keyRequestsPerMinute: 100 }, { tenantId });
    const b = principal({ tenantRequestsPerMinute: 3, keyRequestsPerMinute: 100 }, { tenantId });
    for (let i = 0; i < 3; i += 1) expect((await h.service.check(a, { computeUnits: 5 }, at(i))).allowed).toBe(true);
    const before = await h.service.status(b, at(10));
    const d = refused(await h.service.check(b, { computeUnits: 7 }, at(10)));
    expect(d.hit.name).toBe('tenant_requests');
    const after = await h.service.status(b, at(10));
    expect(after.limits).toEqual(before.limits);
    const keyRequests = after.limits.find((s) => s.name === 'key_requests');
    const keyUnits = after.limits.find((s) => s.name === 'key_compute_units');
    expect(keyRequests?.remaining).toBe(100);
    expect(keyUnits?.remaining).toBe(6000);
    // The other limits were read but not consumed: tenant compute units hold only a's 15.
    expect(after.limits.find((s) => s.name === 'tenant_compute_units')?.remaining).toBe(6000 - 15);
  });

  it('refuses by compute units without consuming the request limits', async () => {
    const p = principal({ keyComputeUnitsPerMinute: 10 });
    expect((await h.service.check(p, { computeUnits: 8 }, at(0))).allowed).toBe(true);
    const d = refused(await h.service.check(p, { computeUnits: 3 }, at(1000)));
    expect(d.hit).toMatchObject({ name: 'key_compute_units', limit: 10, remaining: 2 });
    const status = await h.service.status(p, at(1000));
    expect(status.limits.find((s) => s.name === 'key_requests')?.remaining).toBe(599);
    // A request that fits the rest is admitted.
    expect((await h.service.check(p, { computeUnits: 2 }, at(1000))).allowed).toBe(true);
  });

  it('rounds fractional compute units up and rejects negative ones', async () => {
    const p = principal({ keyComputeUnitsPerMinute: 10 });
    const d = await h.service.check(p, { computeUnits: 2.2 }, at(0));
    expect(d.states.find((s) => s.name === 'key_compute_units')?.remaining).toBe(7);
    await expect(h.service.check(p, { computeUnits: -1 })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('exhausts the monthly quota and gives it back at the start of the next month (injected clock)', async () => {
    const p = principal({ tenantMonthlyComputeUnitQuota: 100, keyComputeUnitsPerMinute: 1000, tenantComputeUnitsPerMinute: 1000 });
    const lastMinute = new Date('2026-01-31T23:59:00.000Z');
    expect((await h.service.check(p, { computeUnits: 60 }, lastMinute)).allowed).toBe(true);
    const d = refused(await h.service.check(p, { computeUnits: 50 }, new Date('2026-01-31T23:59:30.000Z')));
    expect(d.hit).toMatchObject({ name: 'tenant_monthly_compute_units', limit: 100, remaining: 40, windowSeconds: 31 * 86400 });
    expect(d.retryAfterSeconds).toBe(30);
    expect(limitError(d)).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect((await h.service.check(p, { computeUnits: 40 }, new Date('2026-01-31T23:59:40.000Z'))).allowed).toBe(true);
    expect((await h.service.check(p, { computeUnits: 1 }, new Date('2026-01-31T23:59:50.000Z'))).allowed).toBe(false);
    const january = await h.service.status(p, new Date('2026-01-31T23:59:59.000Z'));
    expect(january.monthlyQuota).toEqual({ limit: 100, used: 100, resetsAt: new Date('2026-02-01T00:00:00.000Z') });

    const february = new Date('2026-02-01T00:00:05.000Z');
    const ok = await h.service.check(p, { computeUnits: 50 }, february);
    expect(ok.allowed).toBe(true);
    expect(ok.states.find((s) => s.name === 'tenant_monthly_compute_units')).toMatchObject({ remaining: 50, windowSeconds: 28 * 86400 });
    expect((await h.service.status(p, february)).monthlyQuota.used).toBe(50);
  });

  it('counts the month for `me` even without a quota, and status consumes nothing', async () => {
    const p = principal();
    await h.service.check(p, { computeUnits: 12 }, at(0));
    const s1 = await h.service.status(p, at(1));
    const s2 = await h.service.status(p, at(2));
    expect(s1).toEqual(s2);
    expect(s1.monthlyQuota).toMatchObject({ limit: null, used: 12 });
    expect(s1.limits.map((s) => s.name)).toEqual(['key_requests', 'tenant_requests', 'key_compute_units', 'tenant_compute_units']);
    expect(s1.limits.find((s) => s.name === 'key_requests')).toMatchObject({ limit: 600, remaining: 599, resetSeconds: 60 });
  });

  it('touches only the request limits for a request without compute units, and every limit otherwise', async () => {
    const p = principal({ tenantMonthlyComputeUnitQuota: 50 });
    const plain = await h.service.check(p, { computeUnits: 0 }, at(0));
    expect(plain.states.map((s) => s.name)).toEqual(['key_requests', 'tenant_requests']);
    const metered = await h.service.check(p, { computeUnits: 4 }, at(0));
    expect(metered.states.map((s) => [s.name, s.remaining])).toEqual([
      ['key_requests', 598],
      ['tenant_requests', 598],
      ['key_compute_units', 5996],
      ['tenant_compute_units', 5996],
      ['tenant_monthly_compute_units', 46],
    ]);
    expect(rateLimitHeaders(metered)['RateLimit-Policy']).toContain('"tenant_monthly_compute_units";q=50;w=2678400;qu="compute-units"');
  });

  it('answers a refusal cheaply: exact Retry-After by rank, or an upper bound past 128 weighted entries', async () => {
    const p = principal({ keyComputeUnitsPerMinute: 200, keyRequestsPerMinute: 1000, tenantRequestsPerMinute: 1000 });
    for (let i = 0; i < 200; i += 1) expect((await h.service.check(p, { computeUnits: 1 }, at(i * 100))).allowed).toBe(true);
    // Needs 150 units to leave: the 150th oldest entry (at 14.9 s) leaves at 74.9 s, i.e. in 54.9 s.
    const d = refused(await h.service.check(p, { computeUnits: 150 }, at(20_000)));
    expect(d.hit.name).toBe('key_compute_units');
    // The in-process limiter walks every entry; the script walks at most 128 and then answers when the newest leaves (59.9 s).
    expect(d.retryAfterSeconds).toBe(backend === 'local' ? 55 : 60);
    const small = refused(await h.service.check(p, { computeUnits: 2 }, at(20_000)));
    expect(small.retryAfterSeconds).toBe(41); // the 2nd oldest (0.1 s) leaves at 60.1 s
  });

  it('refuses a request larger than the whole limit with the window as Retry-After', async () => {
    const p = principal({ keyComputeUnitsPerMinute: 10 });
    const d = refused(await h.service.check(p, { computeUnits: 11 }, at(0)));
    expect(d.retryAfterSeconds).toBe(60);
  });
});

describe('limit resolution', () => {
  it('uses the principal overrides and falls back to the config defaults', () => {
    const config = limitsConfig({ DEFAULT_REQUESTS_PER_MINUTE: '70', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '700', DEFAULT_MONTHLY_COMPUTE_UNIT_QUOTA: '7000' });
    const p = principal({ keyRequestsPerMinute: 5, tenantComputeUnitsPerMinute: 55 });
    const limits = resolveLimits(p, config.limits, { requests: 1, computeUnits: 3 }, T0);
    expect(limits.map((l) => [l.name, l.limit, l.cost])).toEqual([
      ['key_requests', 5, 1],
      ['tenant_requests', 70, 1],
      ['key_compute_units', 700, 3],
      ['tenant_compute_units', 55, 3],
      ['tenant_monthly_compute_units', 7000, 3],
    ]);
    const noQuota = resolveLimits(p, limitsConfig().limits, { requests: 1, computeUnits: 0 }, T0);
    expect(noQuota.find((l) => l.name === 'tenant_monthly_compute_units')).toMatchObject({ unbounded: true });
  });

  it('puts every key of one check in one Redis Cluster slot (hash tag per tenant) under the prefix', () => {
    const p = principal({ tenantMonthlyComputeUnitQuota: 10 });
    const limits = resolveLimits(p, limitsConfig().limits, { requests: 1, computeUnits: 1 }, T0);
    const fakeClient = { defineCommand() {}, modelgateLimitCheck: async () => [] };
    const keys = new RedisLimiter(fakeClient as never, 'mg:').keysFor(limits);
    expect(keys).toHaveLength(10);
    expect(keys.every((k) => k.startsWith(`mg:{t:${p.tenantId}}:`))).toBe(true);
    // Redis Cluster hashes only the first {…} of a key: one tag, one slot.
    expect(new Set(keys.map((k) => /\{([^}]+)\}/.exec(k)?.[1])).size).toBe(1);
    // Money budgets and credit balances share the tag.
    const credits = { since: T0, refill: { amount: 5, interval: 'DAILY' as const } };
    const rich = principal({ keyMonthlyBudget: { micros: 10, currency: 'USD' }, tenantMonthlyBudget: { micros: 10, currency: 'USD' }, keyCredits: credits, tenantCredits: credits });
    const all = new RedisLimiter(fakeClient as never, 'mg:').keysFor(resolveLimits(rich, limitsConfig().limits, { requests: 1, computeUnits: 1 }, T0));
    expect(all).toHaveLength(18);
    expect(new Set(all.map((k) => /\{([^}]+)\}/.exec(k)?.[1]))).toEqual(new Set([`t:${rich.tenantId}`]));
  });
});

describe('headers and errors', () => {
  const states = [
    { name: 'key_requests' as const, limit: 50, remaining: 0, resetSeconds: 12, windowSeconds: 60 },
    { name: 'tenant_compute_units' as const, limit: 6000, remaining: 5990, resetSeconds: 40, windowSeconds: 60 },
  ];

  it('formats RateLimit-Policy and RateLimit per the IETF draft, with Retry-After on refusal', () => {
    expect(rateLimitHeaders({ allowed: true, states, source: 'redis' })).toEqual({
      'RateLimit-Policy': '"key_requests";q=50;w=60, "tenant_compute_units";q=6000;w=60;qu="compute-units"',
      RateLimit: '"key_requests";r=0;t=12, "tenant_compute_units";r=5990;t=40',
    });
    const denied: LimitDecision = { allowed: false, reason: 'limit', hit: states[0]!, retryAfterSeconds: 12, states, source: 'redis' };
    expect(rateLimitHeaders(denied)['Retry-After']).toBe('12');
    expect(rateLimitHeaders({ allowed: true, states: [], source: 'disabled' })).toEqual({});
  });

  it('maps refusals to RATE_LIMITED / OVERLOADED with the limit hit', () => {
    const denied: LimitDecision = { allowed: false, reason: 'limit', hit: states[0]!, retryAfterSeconds: 12, states, source: 'redis' };
    expect(limitError(denied)).toMatchObject({
      code: 'RATE_LIMITED',
      extensions: { retryAfterSeconds: 12, limit: { name: 'key_requests', limit: 50, windowSeconds: 60 } },
    });
    expect(limitError({ allowed: false, reason: 'unavailable', retryAfterSeconds: 1, states: [], source: 'unavailable' })).toMatchObject({
      code: 'OVERLOADED',
      extensions: { retryAfterSeconds: 1 },
    });
  });
});

describe('disabled', () => {
  it('admits everything and counts nothing when RATE_LIMITS_ENABLED=false', async () => {
    const h = await harness(null, 'x:', { RATE_LIMITS_ENABLED: 'false' });
    const p = principal({ keyRequestsPerMinute: 1 });
    const ds = await Promise.all([1, 2, 3].map(() => h.service.check(p, { computeUnits: 0 })));
    expect(ds.every((d) => d.allowed && d.source === 'disabled')).toBe(true);
    expect(h.service.backend).toBe('disabled');
    await h.close();
  });
});
