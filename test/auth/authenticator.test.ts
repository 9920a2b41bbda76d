/** The Authenticator's cache and pub/sub invalidation, on the real database and Redis, without HTTP. */
import { Authenticator } from '../../src/auth/authenticator';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log/logger';
import { RedisConnection } from '../../src/redis/redis';
import { closeTestKeys, createTestKey, testKeyService } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { baseEnv } from '../helpers/gateway';
import { until } from '../harness/until';

const log = createLogger({ level: 'silent', pretty: false });

function keysConfig(overrides: Record<string, string> = {}) {
  return loadConfig({ ...baseEnv('postgres'), ...overrides } as NodeJS.ProcessEnv);
}

afterAll(() => closeTestKeys());

describe('Authenticator', () => {
  it('fills every Principal field, limits included, from the key and tenant rows', async () => {
    const { db } = await testKeyService();
    const auth = new Authenticator({ config: keysConfig(), db, redis: null, log });
    const expiresAt = new Date(Date.now() + 3_600_000);
    const k = await createTestKey({
      scopes: ['inference', 'usage:read'],
      allowedModels: ['fashion-cnn'],
      tenantLimits: { requestsPerMinute: 100, computeUnitsPerMinute: 2000, monthlyComputeUnitQuota: 50000 },
      keyLimits: { requestsPerMinute: 10, computeUnitsPerMinute: 200 },
      expiresAt,
    });
    const p = await auth.authenticate({ authorization: `Bearer ${k.key}` });
    expect(p).toEqual({
      apiKeyId: k.apiKeyId,
      keyPrefix: k.key.slice(0, 16),
      tenantId: k.tenantId,
      tenantName: expect.stringMatching(/^tenant-/),
      scopes: ['inference', 'usage:read'],
      allowedModels: ['fashion-cnn'],
      expiresAt,
      limits: {
        keyRequestsPerMinute: 10,
        keyComputeUnitsPerMinute: 200,
        tenantRequestsPerMinute: 100,
        tenantComputeUnitsPerMinute: 2000,
        tenantMonthlyComputeUnitQuota: 50000,
        keyMonthlyComputeUnitBudget: null,
        keyMonthlyBudget: null,
        tenantMonthlyBudget: null,
        keyCredits: null,
        tenantCredits: null,
      },
    });
    expect(await auth.authenticate({})).toBeNull();
  });

  it('keeps the cache within KEY_CACHE_MAX_ENTRIES', async () => {
    const { db } = await testKeyService();
    const auth = new Authenticator({ config: keysConfig({ KEY_CACHE_MAX_ENTRIES: '2' }), db, redis: null, log });
    for (let i = 0; i < 4; i += 1) await auth.verify((await createTestKey({ scopes: ['inference'] })).key);
    expect(auth.cacheSize).toBe(2);
  });

  it('drops entries named by an invalidation published by another instance, by key and by tenant', async () => {
    const { db } = await testKeyService();
    const config = keysConfig();
    const redisA = new RedisConnection(testEnv.redisUrl, `${testEnv.redisPrefix}authn:`, log);
    const redisB = new RedisConnection(testEnv.redisUrl, `${testEnv.redisPrefix}authn:`, log);
    const a = new Authenticator({ config, db, redis: redisA, log });
    const b = new Authenticator({ config, db, redis: redisB, log });
    a.start();
    b.start();
    try {
      await Promise.all([redisA.waitUntilReady(2000), redisB.waitUntilReady(2000)]);
      const one = await createTestKey({ scopes: ['inference'] });
      const two = await createTestKey({ scopes: ['inference'] });
      // Wait until B's subscription is live (the subscriber connects on its own).
      await b.verify(one.key);
      await b.verify(two.key);
      expect(b.cacheSize).toBe(2);
      let published = false;
      const afterKey = await until(
        'B to drop the invalidated key (republished until its subscription is live)',
        () => {
          if (!published || b.cacheSize === 2) void a.invalidate({ keyIds: [one.apiKeyId] });
          published = true;
          return b.cacheSize;
        },
        { accept: (size) => size === 1, everyMs: 20 },
      );
      expect(afterKey).toBe(1);
      await a.invalidate({ tenantIds: [two.tenantId] });
      expect(await until('B to drop the invalidated tenant', () => b.cacheSize, { accept: (size) => size === 0, everyMs: 20 })).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([redisA.close(), redisB.close()]);
    }
  });
});
