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

jest.setTimeout(60_000);

const log = createLogger({ level: 'silent', pretty: false });
const CLI = { principal: null, actor: 'test' };

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
      await eventually('channels up', () => auth.channelStates().redis_pubsub === 'up' && (!pgListen || auth.channelStates().pg_notify === 'up'));
      await body(auth, metrics);
    } finally {
      await auth.close();
      await redis.close();
    }
  }

  async function redisGap(auth: Authenticator, during: () => Promise<void> = async () => undefined): Promise<void> {
    await redisServer.kill();
    await eventually('pub/sub down', () => auth.channelStates().redis_pubsub === 'down');
    await during();
    await redisServer.restart();
    await eventually('pub/sub back', () => auth.channelStates().redis_pubsub === 'up');
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
      await eventually('the revocation', async () => auth.verify(k.key).then(() => false, (e: { code?: string }) => e.code === 'UNAUTHENTICATED'));
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
