/**
 * Credit balances and money budgets in the same atomic Lua check as the
 * rate limits (real Redis and Postgres, three limiter instances on one Redis
 * as three replicas are): exact consumption, refill at the UTC boundary
 * (injected clock), top-ups through the ledger, rebuild from Postgres when
 * Redis loses the balance or the spend counter, currency mismatches refused.
 */
import { randomUUID } from 'node:crypto';
import { testEnv } from '../helpers/env';
import { limitError, rateLimitHeaders } from '../../src/ratelimit/headers';
import { RateLimitService } from '../../src/ratelimit/ratelimit.service';
import { RedisConnection } from '../../src/redis/redis';
import { Metrics } from '../../src/metrics/metrics';
import { Readiness } from '../../src/health/readiness';
import { billedComputeUnits } from '../../src/billing/billed-units';
import { CreditService, creditBalanceFromLedger } from '../../src/billing/credits';
import { PriceBook } from '../../src/billing/price-book';
import type { Database } from '../../src/db/database';
import type { UsageService } from '../../src/usage/usage.service';
import type { LimitDecision } from '../../src/ratelimit/types';
import { drain, makeEvent, openDatabase, quietLogger, startUsage } from '../usage/helpers';
import { limitsConfig, principal } from './limiter-helpers';

const NOW = new Date('2026-11-10T10:00:00.000Z');
const roomy = { keyComputeUnitsPerMinute: 1_000_000, tenantComputeUnitsPerMinute: 1_000_000, keyRequestsPerMinute: 100_000, tenantRequestsPerMinute: 100_000 };

function refusal(d: LimitDecision) {
  if (d.allowed || d.reason !== 'limit') throw new Error(`expected a limit refusal, got ${JSON.stringify(d)}`);
  return d;
}

describe('credit balances and money budgets', () => {
  const { log } = quietLogger();
  let db: Database;
  let usage: UsageService;
  let prices: PriceBook;
  const connections: RedisConnection[] = [];
  let replicas: RateLimitService[];

  beforeAll(async () => {
    db = await openDatabase(testEnv.databaseUrl, log);
    usage = await startUsage(db, log);
    // Prices may be set "in the past" relative to this book's clock: the tests price November 2026.
    prices = new PriceBook(db, () => Date.parse('2026-11-01T00:00:00Z'));
    replicas = await Promise.all(
      [0, 1, 2].map(async () => {
        const redis = new RedisConnection(testEnv.redisUrl, testEnv.redisPrefix, log);
        await redis.waitUntilReady(5000);
        connections.push(redis);
        return new RateLimitService({
          config: limitsConfig(),
          log,
          metrics: new Metrics(),
          readiness: new Readiness(),
          redis,
          billedUnits: (t, from, to, k) => billedComputeUnits(db, t, from, to, k),
          spendMicros: (t, from, to, currency, k) => prices.spendMicros(t, from, to, currency, k),
          creditBalance: (t, k, from, to, refill) => creditBalanceFromLedger(db, t, k, from, to, refill),
          priceAt: (t, model, at) => prices.priceAt(t, model, at),
        });
      }),
    );
  });
  afterAll(async () => {
    for (const r of replicas) r.close();
    await Promise.all(connections.map((c) => c.close()));
    await usage.close();
    await db.close();
  });

  const redisKeys = async (tenantId: string) => connections[0]!.client.keys(`${testEnv.redisPrefix}{t:${tenantId}}:*`);

  it('consumes a daily credit balance exactly across three replicas (90 concurrent 1-unit checks, 50 credits: 50 admitted) and refills it at UTC midnight', async () => {
    const p = principal({ ...roomy, keyCredits: { since: new Date('2026-11-01T00:00:00Z'), refill: { amount: 50, interval: 'DAILY' } } });
    const decisions = await Promise.all(Array.from({ length: 90 }, (_, i) => replicas[i % 3]!.check(p, { computeUnits: 1 }, NOW)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(50);
    const refused = decisions.filter((d) => !d.allowed).map(refusal);
    expect(refused).toHaveLength(40);
    const resetSeconds = 14 * 3600; // 10:00 → midnight
    for (const d of refused) {
      expect(d.hit).toMatchObject({ name: 'key_credits', remaining: 0 });
      expect(d.retryAfterSeconds).toBe(resetSeconds);
      expect(limitError(d)).toMatchObject({ code: 'QUOTA_EXCEEDED', extensions: { limit: { name: 'key_credits' } } });
    }
    expect(rateLimitHeaders(refused[0]!)['RateLimit-Policy']).toContain('"key_credits";q=50;w=86400;qu="compute-units"');
    // One millisecond before midnight: still empty. At midnight: 50 again, refilled inside the script.
    expect((await replicas[1]!.check(p, { computeUnits: 1 }, new Date('2026-11-10T23:59:59.999Z'))).allowed).toBe(false);
    const midnight = new Date('2026-11-11T00:00:00.000Z');
    expect((await replicas[2]!.status(p, midnight)).limits.find((l) => l.name === 'key_credits')).toMatchObject({ remaining: 50, limit: 50, resetSeconds: 86400 });
    const next = await Promise.all(Array.from({ length: 60 }, (_, i) => replicas[i % 3]!.check(p, { computeUnits: 1 }, midnight)));
    expect(next.filter((d) => d.allowed)).toHaveLength(50);
    // A replica whose clock is still before midnight does not refill a second time.
    expect((await replicas[0]!.check(p, { computeUnits: 1 }, new Date('2026-11-10T23:59:59.000Z'))).allowed).toBe(false);
  });

  it('is all-or-nothing: a refusal by the tenant balance consumes no key credits and no per-minute units', async () => {
    const tenantId = randomUUID();
    const credits = { since: new Date('2026-11-01T00:00:00Z'), refill: { amount: 10, interval: 'MONTHLY' as const } };
    const p = principal({ ...roomy, keyCredits: { ...credits, refill: { amount: 100, interval: 'MONTHLY' } }, tenantCredits: credits }, { tenantId });
    expect((await replicas[0]!.check(p, { computeUnits: 8 }, NOW)).allowed).toBe(true);
    const d = refusal(await replicas[1]!.check(p, { computeUnits: 5 }, NOW));
    expect(d.hit).toMatchObject({ name: 'tenant_credits', remaining: 2 });
    const status = await replicas[2]!.status(p, NOW);
    expect(status.limits.find((l) => l.name === 'key_credits')).toMatchObject({ remaining: 92 });
    expect(status.limits.find((l) => l.name === 'key_compute_units')).toMatchObject({ remaining: 1_000_000 - 8 });
    expect(status.monthlyQuota.used).toBe(8);
  });

  it('raises the balance with a top-up recorded in the ledger, and rebuilds it from Postgres when Redis loses it', async () => {
    const tenant = await db.prisma.tenant.create({ data: { name: `credits-${randomUUID().slice(0, 8)}` } });
    const since = new Date(Date.now() - 60_000);
    const key = await db.prisma.apiKey.create({
      data: { tenantId: tenant.id, name: 'c', prefix: 'mg_test_cred', hash: randomUUID(), scopes: ['inference'], allowedModels: [], creditsSince: since },
    });
    const p = principal({ ...roomy, keyCredits: { since, refill: null } }, { tenantId: tenant.id, apiKeyId: key.id });
    const grants = new CreditService(db, replicas[0]!);
    // No refill and nothing granted: the balance is 0, so nothing is admitted.
    const empty = refusal(await replicas[0]!.check(p, { computeUnits: 1 }));
    expect(empty.hit).toMatchObject({ name: 'key_credits', remaining: 0, windowSeconds: 0 });
    expect(limitError(empty).message).toContain('an admin can grant credits');
    expect((await grants.grant(null, { tenant: tenant.name, apiKey: key.id, amount: 30, reason: 'test' })).balance).toBe(30);
    for (let i = 0; i < 4; i += 1) expect((await replicas[i % 3]!.check(p, { computeUnits: 5 })).allowed).toBe(true);
    expect((await grants.grant(null, { tenant: tenant.name, apiKey: key.id, amount: 7 })).balance).toBe(17);
    const audit = await db.prisma.auditEvent.findMany({ where: { tenantId: tenant.id, action: 'credits.grant' } });
    expect(audit).toHaveLength(2);
    // The usage those checks admitted reaches Postgres (20 units), plus 2 units billed
    // through another replica Redis never counted here; then Redis loses the balance.
    for (let i = 0; i < 4; i += 1) await usage.record({ ...makeEvent(tenant.id, i), apiKeyId: key.id, status: 'OK', items: 5, computeUnits: 5, createdAt: new Date() });
    await usage.record({ ...makeEvent(tenant.id, 4), apiKeyId: key.id, status: 'OK', items: 2, computeUnits: 2, createdAt: new Date() });
    await drain(usage);
    const lost = await redisKeys(tenant.id);
    expect(lost.some((k) => k.endsWith(`:cr:k:${key.id}`))).toBe(true);
    await connections[0]!.client.del(...lost);
    expect(await redisKeys(tenant.id)).toEqual([]);
    // Rebuilt from Postgres: 30 + 7 granted − 22 billed = 15 (Redis had 17).
    expect((await replicas[2]!.status(p)).limits.find((l) => l.name === 'key_credits')).toMatchObject({ remaining: 15 });
    expect((await replicas[1]!.check(p, { computeUnits: 16 })).allowed).toBe(false);
    expect((await replicas[1]!.check(p, { computeUnits: 15 })).allowed).toBe(true);
    // A grant while Redis holds no balance: rebuilt from the ledger, which already holds the grant:
    // 30 + 7 + 5 granted − 22 billed = 20 (the 15 units just admitted were never recorded in this test).
    await connections[0]!.client.del(...(await redisKeys(tenant.id)));
    expect((await grants.grant(null, { tenant: tenant.name, apiKey: key.id, amount: 5 })).balance).toBe(20);
    expect((await replicas[0]!.status(p)).limits.find((l) => l.name === 'key_credits')).toMatchObject({ remaining: 20 });
    // A key without credits configured cannot be granted any.
    const plain = await db.prisma.apiKey.create({ data: { tenantId: tenant.id, name: 'p', prefix: 'mg_test_plai', hash: randomUUID(), scopes: [], allowedModels: [] } });
    await expect(grants.grant(null, { tenant: tenant.name, apiKey: plain.id, amount: 1 })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('charges a money budget units x the price in effect: exactly budget / cost requests across three replicas, rebuilt from the spend, mismatched currencies refused', async () => {
    const tenant = await db.prisma.tenant.create({ data: { name: `spend-${randomUUID().slice(0, 8)}` } });
    const model = `m-${randomUUID().slice(0, 8)}`;
    const apiKeyId = randomUUID();
    // 250 micro-USD per unit from Nov 10 00:00, 400 from Nov 10 12:00 (the later price applies from its hour).
    await prices.setPrice(null, { model, tenant: tenant.id, currency: 'USD', unitPriceMicros: '250', effectiveFrom: new Date('2026-11-10T00:00:00Z') });
    await prices.setPrice(null, { model, tenant: tenant.id, currency: 'USD', unitPriceMicros: '400', effectiveFrom: new Date('2026-11-10T12:00:00Z') });
    // Budget 10 000 micros; each request is 4 units x 250 = 1000 micros: exactly 10 of 40 fit.
    const p = principal({ ...roomy, keyMonthlyBudget: { micros: 10_000, currency: 'USD' } }, { tenantId: tenant.id, apiKeyId });
    const decisions = await Promise.all(Array.from({ length: 40 }, (_, i) => replicas[i % 3]!.check(p, { computeUnits: 4, model }, NOW)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    for (const d of decisions.filter((x) => !x.allowed).map(refusal)) {
      expect(d.hit).toMatchObject({ name: 'key_monthly_spend', limit: 10_000, remaining: 0, currency: 'USD' });
      expect(limitError(d)).toMatchObject({ code: 'QUOTA_EXCEEDED', extensions: { limit: { name: 'key_monthly_spend', currency: 'USD' } } });
    }
    const status = await replicas[0]!.status(p, NOW);
    expect(status.limits.find((l) => l.name === 'key_monthly_spend')).toMatchObject({ limit: 10_000, remaining: 0, currency: 'USD' });
    expect(rateLimitHeaders({ allowed: true, states: status.limits, source: 'redis' })['RateLimit-Policy']).toContain('"key_monthly_spend";q=10000;w=2592000;qu="micros-USD"');
    // A model without a price costs no money (the invoice bills it 0 too).
    expect((await replicas[1]!.check(p, { computeUnits: 4, model: 'unpriced-model' }, NOW)).allowed).toBe(true);

    // Rebuild: 6 units billed at 10:xx (250) and 5 at 12:xx (400) = 3500 micros; Redis loses the counter.
    const q = principal({ ...roomy, keyMonthlyBudget: { micros: 5_000, currency: 'USD' } }, { tenantId: tenant.id, apiKeyId: randomUUID() });
    const k = q.apiKeyId;
    await usage.record({ ...makeEvent(tenant.id, 0), model, apiKeyId: k, status: 'OK', items: 6, computeUnits: 6, createdAt: new Date('2026-11-10T10:30:00Z') });
    await usage.record({ ...makeEvent(tenant.id, 1), model, apiKeyId: k, status: 'OK', items: 5, computeUnits: 5, createdAt: new Date('2026-11-10T12:30:00Z') });
    await drain(usage);
    const later = new Date('2026-11-10T13:00:00Z');
    expect((await replicas[2]!.status(q, later)).limits.find((l) => l.name === 'key_monthly_spend')).toMatchObject({ remaining: 1_500 });
    // 4 units now cost 1600 > 1500; 3 units (1200) fit.
    expect((await replicas[0]!.check(q, { computeUnits: 4, model }, later)).allowed).toBe(false);
    expect((await replicas[0]!.check(q, { computeUnits: 3, model }, later)).allowed).toBe(true);

    // A budget in EUR meets a USD price: refused before anything is counted, naming the budget.
    const eur = principal({ ...roomy, tenantMonthlyBudget: { micros: 1_000_000, currency: 'EUR' } }, { tenantId: tenant.id });
    const mismatch = await replicas[0]!.check(eur, { computeUnits: 1, model }, NOW);
    if (mismatch.allowed || mismatch.reason !== 'currency_mismatch') throw new Error(JSON.stringify(mismatch));
    expect(limitError(mismatch)).toMatchObject({ code: 'QUOTA_EXCEEDED', extensions: { reason: 'CURRENCY_MISMATCH', priceCurrency: 'USD', limit: { name: 'tenant_monthly_spend' } } });
    expect((await replicas[0]!.status(eur, NOW)).monthlyQuota.used).toBe(4 * 10 + 4 + 3);
  });

  it('rebuilds every missing counter of one check in Redis (quota, unit budget, both money budgets, both balances): decided in Redis, not by the fallback', async () => {
    const credits = { since: new Date('2026-11-01T00:00:00Z'), refill: { amount: 100, interval: 'MONTHLY' as const } };
    const money = { micros: 1_000_000, currency: 'USD' };
    const p = principal({ ...roomy, tenantMonthlyComputeUnitQuota: 1000, keyMonthlyComputeUnitBudget: 1000, keyMonthlyBudget: money, tenantMonthlyBudget: money, keyCredits: credits, tenantCredits: credits });
    const d = await replicas[0]!.check(p, { computeUnits: 2 }, NOW);
    expect(d).toMatchObject({ allowed: true, source: 'redis' });
    expect(d.states.map((st) => [st.name, st.remaining])).toEqual([
      ['key_requests', 99_999],
      ['tenant_requests', 99_999],
      ['key_compute_units', 999_998],
      ['tenant_compute_units', 999_998],
      ['tenant_monthly_compute_units', 998],
      ['key_monthly_compute_units', 998],
      ['key_monthly_spend', 1_000_000],
      ['tenant_monthly_spend', 1_000_000],
      ['key_credits', 98],
      ['tenant_credits', 98],
    ]);
  });

  it('holds the same balances in the in-process limiter (embedded mode, or Redis down in open mode): exact within one process, refilled at the boundary', async () => {
    // The decision observer (the hook for credits.exhausted / threshold events) sees every decision with the state after it.
    const seen: LimitDecision[] = [];
    const service = new RateLimitService({ config: limitsConfig(), log, metrics: new Metrics(), readiness: new Readiness(), redis: null, onDecision: (_p, d) => seen.push(d) });
    const local = { service, close: async () => service.close() };
    try {
      const p = principal({ ...roomy, keyCredits: { since: new Date('2026-11-01T00:00:00Z'), refill: { amount: 5, interval: 'DAILY' } }, tenantMonthlyBudget: { micros: 3_000, currency: 'USD' } });
      const d = await Promise.all(Array.from({ length: 8 }, () => local.service.check(p, { computeUnits: 1 }, NOW)));
      expect(d.filter((x) => x.allowed)).toHaveLength(5);
      expect(refusal(d[7]!).hit).toMatchObject({ name: 'key_credits', remaining: 0 });
      expect(d[0]!.source).toBe('local');
      const midnight = new Date('2026-11-11T00:00:00.000Z');
      expect((await local.service.status(p, midnight)).limits.find((l) => l.name === 'key_credits')).toMatchObject({ remaining: 5 });
      expect((await local.service.check(p, { computeUnits: 5 }, midnight)).allowed).toBe(true);
      expect((await local.service.check(p, { computeUnits: 1 }, midnight)).allowed).toBe(false);
      expect(seen).toHaveLength(10);
      expect(seen[8]!.states.find((st) => st.name === 'key_credits')).toMatchObject({ remaining: 0 });
    } finally {
      await local.close();
    }
  });
});
