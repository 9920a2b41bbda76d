import type { Database } from '../db/database';
import type { RedisConnection } from '../redis/redis';
import { VERSION } from '../version';

/** State of a backing service. */
export enum DependencyStatus {
  UP = 'UP',
  DOWN = 'DOWN',
  STARTING = 'STARTING',
  NOT_CONFIGURED = 'NOT_CONFIGURED',
}

/** Which database the gateway uses. */
export enum DatabaseMode {
  POSTGRES = 'POSTGRES',
  EMBEDDED = 'EMBEDDED',
}

/** Liveness and dependency state of this gateway process (the GraphQL `Health` type shows it). */
export interface HealthSnapshot {
  status: string;
  version: string;
  uptimeSeconds: number;
  database: DependencyStatus;
  databaseMode: DatabaseMode;
  redis: DependencyStatus;
}

/** What the snapshot reads: the database's and Redis's connection state and the start time. */
export interface HealthSources {
  db: Pick<Database, 'state' | 'mode'>;
  /** null in embedded mode (no REDIS_URL). */
  redis: Pick<RedisConnection, 'state'> | null;
  startedAt: number;
}

export function healthSnapshot({ db, redis, startedAt }: HealthSources): HealthSnapshot {
  const database =
    db.state === 'up'
      ? DependencyStatus.UP
      : db.state === 'starting'
        ? DependencyStatus.STARTING
        : DependencyStatus.DOWN;
  const redisStatus = !redis
    ? DependencyStatus.NOT_CONFIGURED
    : redis.state === 'up'
      ? DependencyStatus.UP
      : redis.state === 'connecting'
        ? DependencyStatus.STARTING
        : DependencyStatus.DOWN;
  const ok = database === DependencyStatus.UP && (redisStatus === DependencyStatus.UP || redisStatus === DependencyStatus.NOT_CONFIGURED);
  return {
    status: ok ? 'ok' : 'degraded',
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 10) / 100,
    database,
    databaseMode: db.mode === 'postgres' ? DatabaseMode.POSTGRES : DatabaseMode.EMBEDDED,
    redis: redisStatus,
  };
}
