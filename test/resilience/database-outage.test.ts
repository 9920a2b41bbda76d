/**
 * Postgres outage under load, against the built gateway (node dist/main.js,
 * NODE_ENV=production) on a private Postgres the test stops: keys already
 * used keep working from their last known good state (stale-if-error, well
 * past KEY_CACHE_TTL_MS), an unknown key gets 503 UNAVAILABLE without any
 * database text, /readyz stays 200 and says it serves stale, and the gateway
 * notices recovery on the next query: a key it never saw works on the first
 * tries after Postgres answers again. Every answered inference has its usage
 * record once the database is back (the spool, as before).
 */
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { generateKey } from '../../src/ids/key-format';
import { PrivatePostgres, ProductionGateway, productionEnv, sleep, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { testEnv } from '../helpers/env';
import { errorCode, infer, KeyFactory, metric, readyz, until, usageOf, type MadeKey } from './helpers';

// A gateway start, then a second one and a Postgres restart within one test.
jest.setTimeout(2 * STARTUP_TEST_TIMEOUT_MS);

/**
 * A Redis key prefix of this file's own. Every process on a prefix hears every key invalidation
 * published on it, and any invalidation (even for another tenant) keeps a key lookup that raced
 * with it out of the cache: on the run's shared prefix, other test files' revocations left these
 * keys uncached, so a refusal came from authentication instead of the path under test.
 */
const REDIS_PREFIX = `${testEnv.redisPrefix}dbout-${randomBytes(4).toString('hex')}:`;
const TTL_MS = 1000;
const OUTAGE_MS = 6000;
const LOAD_WORKERS = 3;
/** Attempts a never-seen key gets after Postgres answers again; the old 5 s ping needed ~50 of these. */
const RECOVERY_ATTEMPTS = 3;
const RECOVERY_SPACING_MS = 100;
/** Anything that would be the database talking to a client. */
const DATABASE_TEXT = /ECONNREFUSED|ECONNRESET|postgres|prisma|database system|terminating connection|Connection terminated|SQLSTATE|57P0|08006|127\.0\.0\.1:\d/i;

interface Outcome {
  key: string;
  status: number;
  code: unknown;
  at: number;
  text: string;
}

describe('Postgres outage under load', () => {
  const pg = new PrivatePostgres();
  let gw: ProductionGateway | undefined;
  let factory: KeyFactory | undefined;

  beforeAll(async () => {
    await pg.init();
    await pg.start();
  });
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    await factory?.close().catch(() => undefined);
    await pg.destroy();
  });

  it('serves known keys throughout, refuses unknown ones with UNAVAILABLE, and recovers on the next query', async () => {
    gw = await ProductionGateway.start({
      ...productionEnv({ databaseUrl: pg.url, redisKeyPrefix: REDIS_PREFIX }),
      KEY_CACHE_TTL_MS: String(TTL_MS),
      DEFAULT_REQUESTS_PER_MINUTE: '100000000',
      DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
      DATABASE_CONNECT_RETRY_MAX_MS: '500',
    });
    const gateway = gw;
    factory = await KeyFactory.open(pg.url);
    const tenantId = await factory.tenant();
    const known: MadeKey[] = [];
    for (let i = 0; i < 3; i += 1) known.push(await factory.key(tenantId));
    const neverSeen = await factory.key(tenantId);
    const forged = generateKey('live').plaintext; // well formed, in no database
    for (const k of known) expect((await infer(gateway, k.key)).status).toBe(200);

    // Load on the known keys from before the outage until after it.
    const outcomes: Outcome[] = [];
    let loading = true;
    const workers = Array.from({ length: LOAD_WORKERS }, async (_, w) => {
      for (let i = 0; loading; i += 1) {
        const k = known[(w + i) % known.length]!;
        const res = await infer(gateway, k.key).catch((error: unknown) => ({ status: 0, body: null, text: String(error) }));
        outcomes.push({ key: k.key, status: res.status, code: errorCode(res.body), at: performance.now(), text: res.text });
      }
    });
    await sleep(500);

    await pg.stop('immediate');
    const stoppedAt = performance.now();
    // Until the gateway has noticed (a failed query or a lost pooled connection), then well past the TTL.
    await until('the gateway to see the outage', () => readyz(gateway), { accept: (r) => r.body.components['database']?.detail['state'] === 'down' });
    const noticedAt = performance.now();
    const unknownDuring: Outcome[] = [];
    while (performance.now() - noticedAt < OUTAGE_MS) {
      for (const key of [neverSeen.key, forged]) {
        const res = await infer(gateway, key);
        unknownDuring.push({ key, status: res.status, code: errorCode(res.body), at: performance.now(), text: res.text });
      }
      await sleep(250);
    }
    const ready = await readyz(gateway);
    const staleServing = await metric(gateway, 'modelgate_auth_stale_serving');
    const databaseUp = await metric(gateway, 'modelgate_database_up');
    const staleServed = await metric(gateway, 'modelgate_auth_stale_served_total');

    await pg.start(); // returns once Postgres accepts connections
    const answeredAt = performance.now();
    let attempts = 0;
    let recovered: Outcome | undefined;
    const afterRecovery: Outcome[] = [];
    while (attempts < RECOVERY_ATTEMPTS && !recovered) {
      attempts += 1;
      const res = await infer(gateway, neverSeen.key);
      const o = { key: neverSeen.key, status: res.status, code: errorCode(res.body), at: performance.now(), text: res.text };
      afterRecovery.push(o);
      if (res.status === 200) recovered = o;
      else await sleep(RECOVERY_SPACING_MS);
    }
    const upAt = await until('/readyz database up', async () => ((await readyz(gateway)).body.components['database']?.detail['state'] === 'up' ? performance.now() : undefined), { everyMs: 10 });
    await sleep(500);
    loading = false;
    await Promise.all(workers);

    const knownFailures = outcomes.filter((o) => o.status !== 200 || o.code !== undefined);
    const duringOutage = outcomes.filter((o) => o.at > stoppedAt && o.at < answeredAt).length;
    const lastKnownError = knownFailures.length ? Math.max(...knownFailures.map((o) => o.at)) - answeredAt : null;
    process.stdout.write(
      `database outage: ${outcomes.length} requests on known keys (${duringOutage} while Postgres was down ${((answeredAt - stoppedAt) / 1000).toFixed(1)} s), ` +
        `${knownFailures.length} failed; stale-served ${staleServed ?? 0}; unknown keys during the outage: ${unknownDuring.length} answers, ` +
        `statuses ${[...new Set(unknownDuring.map((o) => `${o.status}/${String(o.code)}`))].join(',')}; after Postgres answered: never-seen key served on attempt ${attempts} ` +
        `(${recovered ? (recovered.at - answeredAt).toFixed(0) : '-'} ms), /readyz database up after ${(upAt - answeredAt).toFixed(0)} ms` +
        `${lastKnownError === null ? '' : `, last known-key error ${lastKnownError.toFixed(0)} ms after`}\n`,
    );

    expect(duringOutage).toBeGreaterThan(0);
    expect(knownFailures.map((o) => `${o.status} ${o.text.slice(0, 200)}`)).toEqual([]);
    expect(staleServed).toBeGreaterThan(0);
    expect(unknownDuring.length).toBeGreaterThan(0);
    expect(unknownDuring.filter((o) => o.status !== 503 || o.code !== 'UNAVAILABLE')).toEqual([]);
    for (const o of [...outcomes, ...unknownDuring, ...afterRecovery]) expect(o.text).not.toMatch(DATABASE_TEXT);
    // Still in rotation while it can authenticate known keys, and says why.
    expect(ready.status).toBe(200);
    expect(ready.body.components['database']).toMatchObject({ ready: true, detail: { state: 'down', staleServing: true } });
    expect({ staleServing, databaseUp }).toEqual({ staleServing: 1, databaseUp: 0 });
    // Recovery is noticed by the query itself, not by the next 5 s ping.
    expect(recovered?.status).toBe(200);
    expect(await metric(gateway, 'modelgate_auth_stale_serving')).toBe(0);
    expect((await infer(gateway, forged)).status).toBe(401);

    // Every answered inference has exactly one usage record (spooled during the outage, written after).
    const served = outcomes.filter((o) => o.status === 200).length + known.length + (recovered ? 1 : 0);
    const usage = await until(`${served} usage records`, async () => {
      const u = await usageOf(pg.url, tenantId);
      return u.ok >= served ? u : undefined;
    }, { everyMs: 200 });
    expect(usage.ok).toBe(served);
    expect(gateway.output).not.toContain(neverSeen.key);
    for (const k of known) expect(gateway.output).not.toContain(k.key);
  });

  it('admits nothing against a quota counter Redis lost while Postgres cannot say what was billed', async () => {
    const quota = 3;
    const second = await ProductionGateway.start({ ...productionEnv({ databaseUrl: pg.url, redisKeyPrefix: REDIS_PREFIX }), USAGE_FLUSH_INTERVAL_MS: '50' }, { name: 'quota' });
    const redis = new Redis(testEnv.redisUrl);
    try {
      factory ??= await KeyFactory.open(pg.url);
      const tenantId = await factory.tenant({ monthlyComputeUnitQuota: quota });
      const caller = await factory.key(tenantId);
      expect((await infer(second, caller.key)).status).toBe(200);
      await until('1 usage record', async () => ((await usageOf(pg.url, tenantId)).ok === 1 ? true : undefined));

      await pg.stop('immediate');
      // The counter vanishes (eviction, failover) while the database is away.
      const counterKey = `${REDIS_PREFIX}{t:${tenantId}}:rl:t:quota:${new Date().toISOString().slice(0, 7)}`;
      expect(await redis.del(counterKey)).toBe(1);
      const during = await infer(second, caller.key);
      await pg.start();
      const afterwards = [];
      for (let i = 0; i < 4; i += 1) afterwards.push(await infer(second, caller.key));

      process.stdout.write(`quota without Postgres: ${during.status}/${String(errorCode(during.body))} while down; then ${afterwards.map((r) => r.status).join(',')}\n`);
      // Refused as unavailable (the key itself still authenticates from the cache), and nothing admitted.
      expect({ status: during.status, code: errorCode(during.body) }).toEqual({ status: 503, code: 'UNAVAILABLE' });
      expect(during.text).not.toMatch(DATABASE_TEXT);
      expect(afterwards.map((r) => `${r.status}/${String(errorCode(r.body) ?? 'OK')}`)).toEqual(['200/OK', '200/OK', '429/QUOTA_EXCEEDED', '429/QUOTA_EXCEEDED']);
      expect(await metric(second, 'modelgate_rate_limit_quota_rebuilds_total', '{result="failed"}')).toBeGreaterThanOrEqual(1);
      const usage = await until(`${quota} usage records`, async () => {
        const u = await usageOf(pg.url, tenantId);
        return u.ok === quota ? u : undefined;
      });
      expect(usage.units).toBe(quota);
    } finally {
      redis.disconnect();
      await second.stop();
    }
  });
});
