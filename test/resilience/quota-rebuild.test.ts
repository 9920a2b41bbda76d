/**
 * Redis state loss never loosens billing: the monthly quota counter lives in
 * Redis; when Redis restarts empty (or is flushed), the counter is rebuilt
 * from the billed usage in Postgres before anything is admitted, so a tenant
 * with a quota of 5 compute units is never billed more than 5 — also when two
 * replicas rebuild it at once.
 * Built gateways as child processes (NODE_ENV=production), a private
 * redis-server the test restarts, the run's Postgres database.
 */
import Redis from 'ioredis';
import { ProductionGateway, TestRedisServer, productionEnv, runCli, sleep, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { errorCode, infer, metric, readyz, until, usageOf } from './helpers';

// Two rounds of gateway starts.
jest.setTimeout(2 * STARTUP_TEST_TIMEOUT_MS);

const QUOTA = 5;

describe('monthly quota across a Redis restart and a flush', () => {
  let redis: TestRedisServer;
  let a: ProductionGateway | undefined;
  let b: ProductionGateway | undefined;

  beforeAll(async () => {
    redis = await TestRedisServer.start();
    const env = { ...productionEnv({ redisUrl: redis.url }), USAGE_FLUSH_INTERVAL_MS: '50' };
    [a, b] = await Promise.all([ProductionGateway.start(env, { name: 'A' }), ProductionGateway.start(env, { name: 'B' })]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.kill();
    await closeTestKeys();
  });

  /** Waits until Postgres holds `ok` served records of the tenant (what a rebuild reads). */
  const recorded = (tenantId: string, ok: number) => until(`${ok} usage records`, async () => ((await usageOf(testEnv.databaseUrl, tenantId)).ok === ok ? true : undefined));
  const backOnRedis = (gw: ProductionGateway) =>
    until(`${gw.name} back on Redis`, async () => ((await readyz(gw)).body.components['rateLimits']?.detail['backend'] === 'redis' ? true : undefined));

  it('refuses exactly as the quota demands after Redis loses the counter; billed units never exceed the quota', async () => {
    const gwA = a!;
    const gwB = b!;
    const caller = await createTestKey({ scopes: ['inference'], tenantLimits: { monthlyComputeUnitQuota: QUOTA } });

    // 2 of 5 units admitted and recorded.
    for (let i = 0; i < 2; i += 1) expect((await infer(gwA, caller.key)).status).toBe(200);
    await recorded(caller.tenantId, 2);

    // Redis restarts without persistence: the counter is gone.
    await redis.kill();
    await redis.restart();
    await Promise.all([backOnRedis(gwA), backOnRedis(gwB)]);

    // One more (3 of 5), then the counter is flushed away again.
    expect((await infer(gwB, caller.key)).status).toBe(200);
    await recorded(caller.tenantId, 3);
    const flusher = new Redis(redis.url);
    await flusher.flushall();

    // 8 concurrent requests over both replicas: both find the counter missing, both rebuild it, SET NX makes them agree.
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => infer(i % 2 === 0 ? gwA : gwB, caller.key)));
    const admitted = burst.filter((r) => r.status === 200).length;
    const refused = burst.filter((r) => r.status === 429 && errorCode(r.body) === 'QUOTA_EXCEEDED').length;
    process.stdout.write(`quota rebuild: after a restart and a flush, ${admitted} of 8 concurrent requests admitted, ${refused} refused with QUOTA_EXCEEDED\n`);
    expect(admitted).toBe(QUOTA - 3);
    expect(refused).toBe(8 - (QUOTA - 3));

    // And nothing more after that.
    const after = await infer(gwA, caller.key);
    expect(after.status).toBe(429);
    expect(errorCode(after.body)).toBe('QUOTA_EXCEEDED');
    expect(Number(await flusher.get(`${testEnv.redisPrefix}{t:${caller.tenantId}}:rl:t:quota:${new Date().toISOString().slice(0, 7)}`))).toBe(QUOTA);
    flusher.disconnect();

    await recorded(caller.tenantId, QUOTA);
    const usage = await usageOf(testEnv.databaseUrl, caller.tenantId);
    expect(usage.units).toBe(QUOTA);
    expect(usage.rollupUnits).toBe(QUOTA);
    // Written once for the new tenant's first request, once after the restart, once after the flush: SET NX let one replica win each time.
    const sets = async (gw: ProductionGateway) => (await metric(gw, 'modelgate_rate_limit_quota_rebuilds_total', '{result="set"}')) ?? 0;
    expect((await sets(gwA)) + (await sets(gwB))).toBe(3);
  });
});

describe('monthly quota across a restart of an embedded gateway (in-process limiter, no Redis)', () => {
  it('rebuilds the in-process counter from the billed usage in the embedded database', async () => {
    const quota = 3;
    const env: Record<string, string> = { ...productionEnv({ redisUrl: null }), USAGE_FLUSH_INTERVAL_MS: '50' };
    delete env['DATABASE_URL'];
    // The CLI works on the embedded database while no gateway holds it.
    const tenant = await runCli(['tenants', 'create', 'quota3', '--monthly-quota', String(quota)], env);
    expect({ code: tenant.code, stderr: tenant.code === 0 ? '' : tenant.stderr }).toEqual({ code: 0, stderr: '' });
    const created = await runCli(['keys', 'create', '--tenant', 'quota3', '--scopes', 'inference'], env);
    expect({ code: created.code, stderr: created.code === 0 ? '' : created.stderr }).toEqual({ code: 0, stderr: '' });
    const key = created.stdout.trim();

    let gw = await ProductionGateway.start(env, { name: 'embedded' });
    try {
      for (let i = 0; i < 2; i += 1) expect((await infer(gw, key)).status).toBe(200);
      await sleep(500); // a few flush intervals: the records are in the database before the stop
      expect((await gw.stop()).code).toBe(0);
      gw = await gw.restart();
      const after = [];
      for (let i = 0; i < 3; i += 1) after.push(await infer(gw, key));
      process.stdout.write(`quota after an embedded restart: ${after.map((r) => `${r.status}/${String(errorCode(r.body) ?? 'OK')}`).join(', ')}\n`);
      expect(after.map((r) => `${r.status}/${String(errorCode(r.body) ?? 'OK')}`)).toEqual(['200/OK', '429/QUOTA_EXCEEDED', '429/QUOTA_EXCEEDED']);
    } finally {
      await gw.stop();
    }
  });
});
