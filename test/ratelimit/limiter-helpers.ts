/** Builds RateLimitService instances and principals for the limiter tests. */
import pino from 'pino';
import { loadConfig, type Config } from '../../src/config';
import { createLogger, type Logger } from '../../src/log/logger';
import { Metrics } from '../../src/metrics/metrics';
import { Readiness } from '../../src/health/readiness';
import { RedisConnection } from '../../src/redis/redis';
import { RateLimitService } from '../../src/ratelimit/ratelimit.service';
import type { Principal } from '../../src/auth/principal';
import { LogCapture } from '../helpers/capture';
import { testPrincipal } from '../helpers/principal';

export function principal(overrides: Partial<Principal['limits']> = {}, ids: { tenantId?: string; apiKeyId?: string } = {}): Principal {
  return testPrincipal({ ...(ids.tenantId ? { tenantId: ids.tenantId } : {}), ...(ids.apiKeyId ? { apiKeyId: ids.apiKeyId } : {}) }, overrides);
}

export function limitsConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', ...env } as NodeJS.ProcessEnv);
}

export interface Harness {
  service: RateLimitService;
  metrics: Metrics;
  readiness: Readiness;
  logs: LogCapture;
  log: Logger;
  redis: RedisConnection | null;
  close(): Promise<void>;
}

/** A service on Redis (url + prefix) or, with url null, on the in-process limiter. */
export async function harness(url: string | null, prefix: string, env: Record<string, string> = {}): Promise<Harness> {
  const logs = new LogCapture();
  const log = createLogger({ level: 'info', pretty: false, destination: logs as unknown as pino.DestinationStream });
  const config = limitsConfig(env);
  const redis = url ? new RedisConnection(url, prefix, log.child({ component: 'redis' })) : null;
  if (redis && !(await redis.waitUntilReady(5000))) throw new Error(`test Redis at ${url} not ready`);
  const metrics = new Metrics();
  const readiness = new Readiness();
  const service = new RateLimitService({ config, log, metrics, readiness, redis });
  return {
    service,
    metrics,
    readiness,
    logs,
    log,
    redis,
    async close() {
      service.close();
      await redis?.close();
    },
  };
}
