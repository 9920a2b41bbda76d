/**
 * The check script on a real Redis Cluster node (cluster mode on, one node
 * owning all 16384 slots, started by this test): cluster mode refuses a
 * multi-key script whose keys hash to different slots (CROSSSLOT) even on
 * one node, so this proves the per-tenant hash tag keeps a check on one slot.
 */
import { Cluster } from 'ioredis';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { RedisLimiter } from '../../src/ratelimit/redis-limiter';
import { resolveLimits } from '../../src/ratelimit/limits';
import { TestRedisServer } from './redis-server';
import { limitsConfig, principal } from './limiter-helpers';
import { graphql, startGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { parseRedisUrl } from '../../src/redis/redis';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

describe('check script on Redis Cluster', () => {
  let server: TestRedisServer;
  let cluster: Cluster;
  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cluster-'));
    server = await TestRedisServer.start(['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--dir', dir]);
    const admin = new Redis(server.url);
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await until('cluster_state:ok', async () => String(await admin.call('CLUSTER', 'INFO')), { accept: (info) => info.includes('cluster_state:ok'), everyMs: 100 });
    admin.disconnect();
    cluster = new Cluster([{ host: '127.0.0.1', port: server.port }]);
  });
  afterAll(async () => {
    cluster?.disconnect();
    await closeTestKeys();
    await server.kill();
  });

  it('checks all five limits of a request in one script and admits exactly the limit', async () => {
    const limiter = new RedisLimiter(cluster, 'mg:');
    const p = principal({ keyRequestsPerMinute: 5, tenantMonthlyComputeUnitQuota: 1000 });
    const at = new Date();
    const limits = resolveLimits(p, limitsConfig().limits, { requests: 1, computeUnits: 2 }, at);
    // A quota counter must exist before it admits anything: the script first asks for it to be rebuilt.
    const month = limits.findIndex((l) => l.kind === 'month');
    expect(await limiter.check(limits, 'r-first', null)).toEqual({ needSeed: month });
    expect(await limiter.seed(limits[month]!, 0)).toBe(true);
    expect(await limiter.seed(limits[month]!, 7)).toBe(false);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => limiter.check(limits, `r${i}`, null)));
    const refused = results.map((r) => ('refusedIndex' in r ? r.refusedIndex : 'seed'));
    expect(refused.filter((r) => r === -1)).toHaveLength(5);
    expect(refused.filter((r) => r === 0)).toHaveLength(3);
  });

  it('would be refused by the cluster if the keys of one check did not share a slot', async () => {
    const limiter = new RedisLimiter(cluster, 'mg:');
    const a = resolveLimits(principal(), limitsConfig().limits, { requests: 1, computeUnits: 0 }, new Date());
    const b = resolveLimits(principal(), limitsConfig().limits, { requests: 1, computeUnits: 0 }, new Date());
    // Two tenants' keys in one script: different tags, different slots.
    await expect(limiter.check([a[0]!, b[0]!], 'x', null)).rejects.toThrow(/CROSSSLOT/);
  });

  it('serves a gateway whose REDIS_URL names a cluster seed node (?cluster=true), exact as on one node', async () => {
    expect(parseRedisUrl('redis://u:p@10.0.0.5:7000/0?cluster=true')).toEqual({ url: 'redis://u:p@10.0.0.5:7000/0', cluster: true });
    expect(parseRedisUrl('redis://127.0.0.1:6379/0').cluster).toBe(false);
    const gw = await startGateway({ REDIS_URL: `redis://127.0.0.1:${server.port}?cluster=true`, REDIS_KEY_PREFIX: 'mgcl:' });
    try {
      const { key } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 5 } });
      const responses = await Promise.all(Array.from({ length: 8 }, () => graphql(gw.url, '{ me { limits { source } } }', {}, authHeaders(key))));
      expect(responses.filter((r) => r.status === 200)).toHaveLength(5);
      expect(responses.filter((r) => r.status === 429)).toHaveLength(3);
      expect(responses.find((r) => r.status === 200)?.body.data).toEqual({ me: { limits: { source: 'redis' } } });
    } finally {
      await gw.close();
    }
  });
});
