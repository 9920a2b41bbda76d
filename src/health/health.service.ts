import type { Services } from '../server/services';
import { DatabaseMode, DependencyStatus, type Health } from '../server/graphql/health/health.resolver';
import { VERSION } from '../version';

export function healthSnapshot(services: Services): Health {
  const database =
    services.db.state === 'up'
      ? DependencyStatus.UP
      : services.db.state === 'starting'
        ? DependencyStatus.STARTING
        : DependencyStatus.DOWN;
  const redis = !services.redis
    ? DependencyStatus.NOT_CONFIGURED
    : services.redis.state === 'up'
      ? DependencyStatus.UP
      : services.redis.state === 'connecting'
        ? DependencyStatus.STARTING
        : DependencyStatus.DOWN;
  const ok = database === DependencyStatus.UP && (redis === DependencyStatus.UP || redis === DependencyStatus.NOT_CONFIGURED);
  return {
    status: ok ? 'ok' : 'degraded',
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - services.startedAt) / 10) / 100,
    database,
    databaseMode: services.db.mode === 'postgres' ? DatabaseMode.POSTGRES : DatabaseMode.EMBEDDED,
    redis,
  };
}
