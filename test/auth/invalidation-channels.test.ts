/**
 * The two invalidation channels of the key cache, on the real database and a
 * private redis-server the test kills: a Redis gap that Postgres NOTIFY
 * covered keeps the cache (and NOTIFY still delivers revocations); a gap no
 * channel covered makes every cached key be confirmed again before use.
 */
import { Authenticator } from '../../src/auth/authenticator';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log/logger';
import { Metrics } from '../../src/metrics/metrics';
import { RedisConnection } from '../../src/redis/redis';
import { TestRedisServer } from '../ratelimit/redis-server';
import { closeTestKeys, createTestKey, testKeyService } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { baseEnv } from '../helpers/gateway';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const log = createLogger({ level: 'silent', pretty: false });
const CLI = { principal: null, actor: 'test' };

async function lookups(metrics: Metrics): Promise<number> {
  const metric = await metrics.registry.getSingleMetric('modelgate_auth_key_lookups_total')?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

describe('invalidation channels', () => {
  let redisServer: TestRedisServer;
  beforeAll(async () => {
    redisServer = await TestRedisServer.start();
  });
  afterAll(async () => {
    await redisServer.kill();
    await closeTestKeys();
  });

  async function withAuth(pgListen: boolean, body: (auth: Authenticator, metrics: Metrics) => Promise<void>): Promise<void> {
    const { db } = await testKeyService();
    const redis = new RedisConnection(redisServer.url, `${testEnv.redisPrefix}chan:`, log);
    const metrics = new Metrics();
    const config = loadConfig({ ...baseEnv('postgres') } as NodeJS.ProcessEnv);
    const auth = new Authenticator({ config, db, redis, log, metrics, ...(pgListen ? { pgListenUrl: testEnv.databaseUrl } : {}) });
    auth.start();
    try {
      await until('both invalidation channels up', () => auth.channelStates(), { accept: (c) => c.redis_pubsub === 'up' && (!pgListen || c.pg_notify === 'up'), everyMs: 20 });
      await body(auth, metrics);
    } finally {
      await auth.close();
      await redis.close();
    }
  }

  async function redisGap(auth: Authenticator, during: () => Promise<void> = async () => undefined): Promise<void> {
    await redisServer.kill();
    await until('pub/sub down', () => auth.channelStates(), { accept: (c) => c.redis_pubsub === 'down', everyMs: 20 });
    await during();
    await redisServer.restart();
    await until('pub/sub back', () => auth.channelStates(), { accept: (c) => c.redis_pubsub === 'up', everyMs: 20 });
  }

  it('keeps cached keys through a Redis gap that Postgres NOTIFY covered, and NOTIFY alone delivers a revocation', async () => {
    await withAuth(true, async (auth, metrics) => {
      const k = await createTestKey({ scopes: ['inference'] });
      await auth.verify(k.key);
      const before = await lookups(metrics);
      await redisGap(auth);
      await auth.verify(k.key);
      expect(await lookups(metrics)).toBe(before); // still fresh: nothing could have been missed

      // The helpers' KeyService broadcasts nothing itself; the NOTIFY in its transaction is the only message.
      const { keys } = await testKeyService();
      await keys.revokeApiKey(CLI, k.apiKeyId);
      // Bounded by the cache TTL (KEY_CACHE_TTL_MS, 10 s by default), not by speed: past it, expiry alone would refuse the key.
      await until('the revocation to reach the cache', () => auth.verify(k.key).then(() => 'still accepted', (e: { code?: string }) => e.code ?? 'no code'), {
        accept: (code) => code === 'UNAUTHENTICATED',
        everyMs: 20,
        timeoutMs: 10_000,
        onArrived: (ms) => process.stdout.write(`invalidation-channels: NOTIFY alone revoked the cached key ${Math.round(ms)} ms after the revoke committed\n`),
      });
    });
  });

  it('confirms every cached key again after a gap no channel covered', async () => {
    await withAuth(false, async (auth, metrics) => {
      const k = await createTestKey({ scopes: ['inference'] });
      await auth.verify(k.key);
      const { keys } = await testKeyService();
      // Revoked while this process hears nothing (no NOTIFY listener, Redis down): the message is lost.
      await redisGap(auth, async () => {
        await keys.revokeApiKey(CLI, k.apiKeyId);
      });
      const before = await lookups(metrics);
      await expect(auth.verify(k.key)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      expect(await lookups(metrics)).toBe(before + 1);
    });
  });
});
