/**
 * What /readyz and /metrics say about the database and the revocation
 * channels while they are out.
 *
 * Database down, keys served stale: /readyz stays 200 (component `database`
 * ready, `staleServing: true`). Every replica shares the one database, so
 * taking them all out of rotation would turn a database blip into a full
 * outage, while each of them can still authenticate the keys it verified in
 * the last KEY_CACHE_STALE_MAX_MS, meter into its spool and run models.
 * Unknown keys get UNAVAILABLE (503) from the request itself. Once no cached
 * key is within the bound any more, or the database was never reached since
 * start, the component is not ready and the replica leaves rotation.
 */
import { Gauge } from 'prom-client';
import type { Config } from '../config';
import type { Database } from '../db/database';
import type { Authenticator } from '../auth/authenticator';
import type { Metrics } from '../metrics/metrics';
import type { Readiness } from './readiness';

export function registerOutageReadiness(
  deps: { config: Pick<Config, 'keys' | 'limits'>; db: Database; auth: Authenticator; metrics: Metrics },
  readiness: Readiness,
): void {
  const { config, db, auth, metrics } = deps;
  readiness.register('database', () => {
    const staleServing = auth.servingStale();
    return {
      ready: db.state === 'up' || staleServing,
      detail: {
        mode: db.mode,
        state: db.state,
        staleServing,
        ...(db.downSince !== null ? { downForMs: Date.now() - db.downSince } : {}),
        ...(staleServing ? { degraded: `known keys served from cache (KEY_CACHE_STALE_MAX_MS ${config.keys.cacheStaleMaxMs} ms); unknown keys get UNAVAILABLE` } : {}),
        ...(db.lastError ? { error: db.lastError } : {}),
      },
    };
  });

  // A gateway that hears no revocation would honour a revoked key until its cache entry expires.
  // A new replica waits for its first channel; later outages of every channel (open mode) only degrade it.
  const channels = auth.channelStates();
  if (channels.redis_pubsub !== 'not_configured' || channels.pg_notify !== 'not_configured') {
    let everSubscribed = false;
    readiness.register('keyInvalidation', () => {
      const listening = auth.subscribed;
      everSubscribed ||= listening;
      const ready = listening || (everSubscribed && config.limits.failureMode === 'open');
      const states = auth.channelStates();
      return {
        ready,
        detail: {
          subscribed: listening,
          redisPubSub: states.redis_pubsub,
          pgNotify: states.pg_notify,
          ...(ready && !listening ? { degraded: `revocations bounded by KEY_CACHE_TTL_MS (${config.keys.cacheTtlMs} ms)` } : {}),
        },
      };
    });
  }

  new Gauge({
    name: 'modelgate_database_up',
    help: '1 while the database answers; 0 while it is unreachable (see modelgate_auth_stale_serving) or not yet reached',
    registers: [metrics.registry],
    collect() {
      this.set(db.state === 'up' ? 1 : 0);
    },
  });
}
