/**
 * A key's monthly compute-unit budget, in the same Lua check as the rate
 * limits: exact across three limiter instances on one Redis (each its own
 * connection, as three replicas are), all-or-nothing with the tenant quota,
 * QUOTA_EXCEEDED naming the budget, and rebuilt from the key's billed usage
 * in Postgres when Redis loses the counter.
 */
import { randomUUID } from 'node:crypto';
import { testEnv } from '../helpers/env';
import { limitError, rateLimitHeaders } from '../../src/ratelimit/headers';
import { RateLimitService } from '../../src/ratelimit/ratelimit.service';
import { RedisConnection } from '../../src/redis/redis';
import { Metrics } from '../../src/metrics/metrics';
import { Readiness } from '../../src/health/readiness';
import { billedComputeUnits } from '../../src/billing/billed-units';
import { drain, makeEvent, openDatabase, quietLogger, startUsage } from '../usage/helpers';
import { harness, limitsConfig, principal, type Harness } from './limiter-helpers';

const NOW = new Date('2026-12-01T10:00:00.000Z');

describe('key monthly budget', () => {
  let replicas: Harness[];
  beforeAll(async () => {
    replicas = await Promise.all([0, 1, 2].map(() => harness(testEnv.redisUrl, testEnv.redisPrefix)));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
  });

  it('admits exactly the budget across three replicas (120 concurrent checks of 3 units, budget 100: 33 admitted)', async () => {
    // The budget's counter must exist before the first check; with no usage in Postgres the default billedUnits gives 0.
    const p = principal({ keyMonthlyComputeUnitBudget: 100, keyComputeUnitsPerMinute: 100_000, tenantComputeUnitsPerMinute: 100_000, keyRequestsPerMinute: 1000, tenantRequestsPerMinute: 1000 });
    const decisions = await Promise.all(Array.from({ length: 120 }, (_, i) => replicas[i % 3]!.service.check(p, { computeUnits: 3 }, NOW)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(33);
    const refusals = decisions.filter((d) => !d.allowed);
    expect(refusals).toHaveLength(87);
    for (const d of refusals) {
      if (d.allowed || d.reason !== 'limit') throw new Error(`unexpected decision ${JSON.stringify(d)}`);
      expect(d.hit).toMatchObject({ name: 'key_monthly_compute_units', limit: 100, remaining: 1 });
      expect(limitError(d)).toMatchObject({ code: 'QUOTA_EXCEEDED', extensions: { limit: { name: 'key_monthly_compute_units', limit: 100 } } });
    }
    // A request that still fits is admitted; then nothing more.
    expect((await replicas[1]!.service.check(p, { computeUnits: 1 }, NOW)).allowed).toBe(true);
    const last = await replicas[2]!.service.check(p, { computeUnits: 1 }, NOW);
    expect(last.allowed).toBe(false);
    expect(rateLimitHeaders(last)['RateLimit-Policy'] ?? rateLimitHeaders(last)['ratelimit-policy']).toContain('"key_monthly_compute_units";q=100');
    const status = await replicas[0]!.service.status(p, NOW);
    expect(status.limits.find((l) => l.name === 'key_monthly_compute_units')).toMatchObject({ limit: 100, remaining: 0 });
  });

  it('is all-or-nothing with the tenant quota: a refusal by the budget consumes no tenant quota, and the other key of the tenant is unaffected', async () => {
    const tenantId = randomUUID();
    const small = principal({ keyMonthlyComputeUnitBudget: 10, tenantMonthlyComputeUnitQuota: 1000 }, { tenantId });
    const other = principal({ tenantMonthlyComputeUnitQuota: 1000 }, { tenantId });
    const h = replicas[0]!.service;
    expect((await h.check(small, { computeUnits: 8 }, NOW)).allowed).toBe(true);
    expect((await h.check(small, { computeUnits: 5 }, NOW)).allowed).toBe(false);
    const s = await h.status(other, NOW);
    expect(s.monthlyQuota.used).toBe(8);
    expect((await h.check(other, { computeUnits: 500 }, NOW)).allowed).toBe(true);
    expect((await h.status(small, NOW)).limits.find((l) => l.name === 'key_monthly_compute_units')).toMatchObject({ remaining: 2 });
  });

  it("rebuilds a lost budget counter from the key's billed units in Postgres, not from 0", async () => {
    const { log } = quietLogger();
    const db = await openDatabase(testEnv.databaseUrl, log);
    const usage = await startUsage(db, log);
    const redis = new RedisConnection(testEnv.redisUrl, testEnv.redisPrefix, log);
    await redis.waitUntilReady(5000);
    const service = new RateLimitService({
      config: limitsConfig(),
      log,
      metrics: new Metrics(),
      readiness: new Readiness(),
      redis,
      billedUnits: (t, from, to, apiKeyId) => billedComputeUnits(db, t, from, to, apiKeyId),
    });
    try {
      const tenantId = randomUUID();
      const apiKeyId = randomUUID();
      // 7 units billed this month to this key, 50 to another key of the tenant (not the budget's).
      await usage.record({ ...makeEvent(tenantId, 0), apiKeyId, status: 'OK', items: 7, computeUnits: 7, createdAt: new Date('2026-12-01T01:00:00Z') });
      await usage.record({ ...makeEvent(tenantId, 0), apiKeyId: randomUUID(), status: 'OK', items: 50, computeUnits: 50, createdAt: new Date('2026-12-01T01:00:00Z') });
      await drain(usage);
      const p = principal({ keyMonthlyComputeUnitBudget: 10 }, { tenantId, apiKeyId });
      expect((await service.check(p, { computeUnits: 4 }, NOW)).allowed).toBe(false); // 7 + 4 > 10
      expect((await service.check(p, { computeUnits: 3 }, NOW)).allowed).toBe(true);
      expect((await service.check(p, { computeUnits: 1 }, NOW)).allowed).toBe(false);
    } finally {
      service.close();
      await redis.close();
      await usage.close();
      await db.close();
    }
  });
});
