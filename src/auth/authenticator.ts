/**
 * Verifies the API key on each request. A key that is not shaped right or
 * whose checksum is wrong is refused before any I/O; a well-formed key is
 * looked up by its SHA-256 and the result cached in process (bounded, TTL ≤
 * KEY_CACHE_TTL_MS), so a steady caller costs no database round trip.
 * Invalidations drop entries at once on every process; they arrive on two
 * independent channels, Redis pub/sub and Postgres NOTIFY (sent in the
 * transaction of the change), so either one alone is enough.
 *
 * Stale-if-error: while the database cannot be reached, a key verified at
 * most KEY_CACHE_STALE_MAX_MS ago keeps working from its last known good
 * state (expiry, grace and invalidations still apply; an invalidated entry is
 * gone, so it is refused). A key with no such entry gets UNAVAILABLE (503):
 * the gateway cannot tell, and must not guess, whether it is valid.
 */
import type Redis from 'ioredis';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config';
import type { Database } from '../db/database';
import type { ApiKey, Tenant } from '../db/generated/client';
import { ForbiddenError, UnauthenticatedError, UnavailableError } from '../errors';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { RedisConnection } from '../redis/redis';
import { hashesEqual, hashKey, isWellFormedKey } from '../ids/key-format';
import type { Principal } from './principal';
import { principalFromRows } from './principal-from-rows';
import { isAccepted, keyStatus, lifetimeOf, type KeyLifetime } from './key-status';
import { invalidationChannel, parseInvalidation, publishInvalidation, type InvalidationTarget, type KeyInvalidator } from './invalidation';
import { PgInvalidationListener } from './pg-invalidation';

/** One message for every refusal, so a caller cannot probe which keys exist. */
export const INVALID_KEY_MESSAGE = 'Missing or invalid API key';

export type HeaderBag = Record<string, string | string[] | undefined>;

/** A key's lifetime (key-status.ts) as the database last confirmed it, with what authenticating needs. */
interface CacheEntry extends KeyLifetime {
  hash: string;
  principal: Principal;
  tenantSuspended: boolean;
  /** When the database last confirmed this state. */
  cachedAt: number;
  /** The cache epoch it was confirmed in; an older one must be confirmed again before use (see expireAll). */
  epoch: number;
}

/** The two invalidation channels, as /readyz and metrics name them. */
export type InvalidationChannel = 'redis_pubsub' | 'pg_notify';
export type ChannelState = 'up' | 'down' | 'not_configured';

interface ChannelTrack {
  configured: boolean;
  up: boolean;
  everUp: boolean;
  upSince: number;
  downSince: number | null;
}

export interface AuthenticatorDeps {
  config: Pick<Config, 'keys'>;
  db: Database;
  redis: RedisConnection | null;
  log: Logger;
  metrics?: Metrics;
  /** Postgres URL to LISTEN on for invalidations (postgres mode); absent: no NOTIFY channel (embedded, tests). */
  pgListenUrl?: string;
}

/** Reads the key from `Authorization: Bearer …` or `x-api-key`; undefined when neither is sent. */
export function credentialFrom(headers: HeaderBag): string | undefined {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  const authorization = first(headers['authorization']);
  if (authorization !== undefined) {
    const match = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
    // Any other scheme, or an empty bearer, counts as a malformed credential.
    return match?.[1] ?? '';
  }
  const apiKey = first(headers['x-api-key']);
  return apiKey === undefined ? undefined : apiKey.trim();
}

export class Authenticator implements KeyInvalidator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<CacheEntry | null>>();
  private readonly lastUsedWritten = new Map<string, number>();
  /** Bumped on every invalidation; a lookup that started before one is not cached. */
  private generation = 0;
  /** Bumped when every entry must be confirmed by the database again before its next use. */
  private epoch = 0;
  /** The newest cachedAt of any entry: while it is within KEY_CACHE_STALE_MAX_MS, some key can be served stale. */
  private newestCachedAt = 0;
  private subscriber: Redis | undefined;
  private pgListener: PgInvalidationListener | undefined;
  private readonly channels: Record<InvalidationChannel, ChannelTrack>;
  private readonly lookups: Counter<'result'> | undefined;
  private readonly staleServed: Counter | undefined;
  private readonly invalidationsReceived: Counter<'channel'> | undefined;
  private readonly ttlMs: number;
  private readonly staleMaxMs: number;
  private readonly maxEntries: number;
  private readonly lastUsedGranularityMs: number;

  constructor(private readonly deps: AuthenticatorDeps) {
    this.ttlMs = deps.config.keys.cacheTtlMs;
    this.staleMaxMs = deps.config.keys.cacheStaleMaxMs;
    this.maxEntries = deps.config.keys.cacheMaxEntries;
    this.lastUsedGranularityMs = deps.config.keys.lastUsedGranularityMs;
    const track = (configured: boolean): ChannelTrack => ({ configured, up: false, everUp: false, upSince: 0, downSince: null });
    this.channels = { redis_pubsub: track(deps.redis !== null), pg_notify: track(deps.pgListenUrl !== undefined) };
    if (deps.metrics) {
      const registers = [deps.metrics.registry];
      this.lookups = new Counter({
        name: 'modelgate_auth_key_lookups_total',
        help: 'API key lookups in the database (cache misses), by result (found|unknown|error)',
        labelNames: ['result'],
        registers,
      });
      this.staleServed = new Counter({
        name: 'modelgate_auth_stale_served_total',
        help: 'Requests authenticated from a cache entry past KEY_CACHE_TTL_MS because the database was unreachable (stale-if-error)',
        registers,
      });
      this.invalidationsReceived = new Counter({
        name: 'modelgate_key_invalidations_received_total',
        help: 'Key invalidations (revocation, rotation, tenant changes) received per broadcast channel (redis_pubsub, pg_notify)',
        labelNames: ['channel'],
        registers,
      });
      const staleNow = () => (this.servingStale() ? 1 : 0);
      new Gauge({
        name: 'modelgate_auth_stale_serving',
        help: '1 while the database is unreachable and known keys are authenticated from the cache (KEY_CACHE_STALE_MAX_MS)',
        registers,
        collect() {
          this.set(staleNow());
        },
      });
      const channelsNow = () => this.channelStates();
      new Gauge({
        name: 'modelgate_key_invalidation_channel_up',
        help: 'Per revocation broadcast channel (redis_pubsub, pg_notify): 1 while this process listens on it, 0 while not; absent when not configured',
        labelNames: ['channel'],
        registers,
        collect() {
          this.reset();
          for (const [channel, state] of Object.entries(channelsNow())) {
            if (state !== 'not_configured') this.set({ channel }, state === 'up' ? 1 : 0);
          }
        },
      });
    }
  }

  /** True while some invalidation channel is listening, or none is configured (nothing to miss). */
  get subscribed(): boolean {
    const { redis_pubsub: r, pg_notify: p } = this.channels;
    return (!r.configured && !p.configured) || r.up || p.up;
  }

  channelStates(): Record<InvalidationChannel, ChannelState> {
    const state = (c: ChannelTrack): ChannelState => (!c.configured ? 'not_configured' : c.up ? 'up' : 'down');
    return { redis_pubsub: state(this.channels.redis_pubsub), pg_notify: state(this.channels.pg_notify) };
  }

  /** Whether the database is down and some cached key is still within KEY_CACHE_STALE_MAX_MS (so known keys work). */
  servingStale(now = Date.now()): boolean {
    return this.deps.db.state === 'down' && this.deps.db.everUp && this.staleMaxMs > 0 && this.cache.size > 0 && now - this.newestCachedAt < this.staleMaxMs;
  }

  /** Listens on the invalidation channels: Redis pub/sub on a connection of its own (a subscribed connection can do nothing else), and Postgres NOTIFY. */
  start(): void {
    if (this.deps.pgListenUrl && !this.pgListener) {
      this.pgListener = new PgInvalidationListener(this.deps.pgListenUrl, this.deps.log, {
        message: (target) => {
          this.invalidationsReceived?.inc({ channel: 'pg_notify' });
          this.apply(target);
        },
        state: (up) => this.channelChanged('pg_notify', up),
      });
      this.pgListener.start();
    }
    const redis = this.deps.redis;
    if (!redis || this.subscriber) return;
    const sub = redis.duplicate();
    this.subscriber = sub;
    const channel = invalidationChannel(redis.keyPrefix);
    sub.on('ready', () => {
      sub
        .subscribe(channel)
        .then(() => this.channelChanged('redis_pubsub', true))
        .catch((error: unknown) => this.deps.log.warn({ reason: String(error) }, 'key invalidation subscribe failed'));
    });
    sub.on('close', () => this.channelChanged('redis_pubsub', false));
    sub.on('error', () => undefined); // state and logging are the main connection's job
    sub.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      const target = parseInvalidation(message);
      if (!target) return;
      this.invalidationsReceived?.inc({ channel: 'redis_pubsub' });
      this.apply(target);
    });
  }

  async close(): Promise<void> {
    const listener = this.pgListener;
    this.pgListener = undefined;
    await listener?.close();
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (!sub) return;
    try {
      await sub.quit();
    } catch {
      sub.disconnect();
    }
  }

  /**
   * The caller, or null when the request carries no key. Throws
   * UnauthenticatedError (one message) for a malformed, unknown, expired or
   * revoked key and ForbiddenError for a suspended tenant.
   */
  async authenticate(headers: HeaderBag): Promise<Principal | null> {
    const credential = credentialFrom(headers);
    if (credential === undefined) return null;
    return this.verify(credential);
  }

  async verify(plaintext: string): Promise<Principal> {
    if (!isWellFormedKey(plaintext)) throw new UnauthenticatedError(INVALID_KEY_MESSAGE);
    return this.verifyHash(hashKey(plaintext));
  }

  /**
   * Verifies a key known by its hash (a console session holds the hash, never
   * the key): the same cache, invalidations and refusals as a presented key.
   */
  async verifyHash(hash: string): Promise<Principal> {
    const now = Date.now();
    let entry = this.cache.get(hash);
    if (entry && !hashesEqual(entry.hash, hash)) entry = undefined;
    if (!entry || now - entry.cachedAt >= this.ttlMs || entry.epoch !== this.epoch) {
      entry = await this.refresh(hash, entry, now);
    }
    if (!entry) throw new UnauthenticatedError(INVALID_KEY_MESSAGE);
    if (!isAccepted(keyStatus(entry, now))) {
      throw new UnauthenticatedError(INVALID_KEY_MESSAGE);
    }
    if (entry.tenantSuspended) throw new ForbiddenError('The tenant of this API key is suspended');
    this.touch(entry.principal.apiKeyId, now);
    return entry.principal;
  }

  /** Drops matching entries here and tells every other process to do the same. */
  async invalidate(target: InvalidationTarget): Promise<void> {
    this.apply(target);
    await publishInvalidation(this.deps.redis, target, this.deps.log);
  }

  /** Drops cached entries for these keys or tenants in this process only. */
  apply(target: InvalidationTarget): void {
    this.generation += 1;
    const keyIds = new Set(target.keyIds ?? []);
    const tenantIds = new Set(target.tenantIds ?? []);
    if (keyIds.size === 0 && tenantIds.size === 0) return;
    for (const [hash, entry] of this.cache) {
      if (keyIds.has(entry.principal.apiKeyId) || tenantIds.has(entry.principal.tenantId)) this.cache.delete(hash);
    }
  }

  clear(): void {
    this.generation += 1;
    this.cache.clear();
  }

  /**
   * Every entry must be confirmed by the database before its next use, as
   * after clear(), but stays available for stale-if-error: invalidations may
   * have been missed, yet while the database is down the last known state
   * is still the best there is (bounded by KEY_CACHE_STALE_MAX_MS).
   */
  expireAll(): void {
    this.generation += 1;
    this.epoch += 1;
  }

  /**
   * A listener came up or went down. Messages sent while a channel was down
   * are lost on it, but every change is sent on both: only when the other
   * channel did not listen throughout the gap may one have been missed.
   */
  private channelChanged(name: InvalidationChannel, up: boolean): void {
    const c = this.channels[name];
    if (c.up === up) return;
    const now = Date.now();
    if (!up) {
      c.up = false;
      c.downSince = now;
      return;
    }
    const gapStart = c.downSince;
    c.up = true;
    c.upSince = now;
    c.downSince = null;
    const other = this.channels[name === 'redis_pubsub' ? 'pg_notify' : 'redis_pubsub'];
    const covered = other.configured && other.up && other.upSince <= (gapStart ?? now);
    if (c.everUp && !covered) {
      this.expireAll();
      this.deps.log.info({ channel: name }, 'key invalidation channel back after a gap no other channel covered; cached keys are confirmed again before use');
    }
    c.everUp = true;
  }

  /**
   * The entry from the database, or the cached one when the database cannot
   * be reached and the entry is recent enough (stale-if-error). Throws
   * UnavailableError when neither is possible.
   */
  private async refresh(hash: string, cached: CacheEntry | undefined, now: number): Promise<CacheEntry | undefined> {
    const stale = cached !== undefined && this.staleMaxMs > 0 && now - cached.cachedAt < this.staleMaxMs ? cached : undefined;
    if (stale && this.deps.db.state === 'down') {
      // A known outage: answer now rather than wait on a connection attempt; the database's own probe sees recovery.
      this.staleServed?.inc();
      return stale;
    }
    try {
      return (await this.load(hash)) ?? undefined;
    } catch (error) {
      this.deps.db.noteFailure(error);
      this.deps.log.debug({ reason: error instanceof Error ? error.message : String(error), servedStale: stale !== undefined }, 'key lookup failed');
      if (stale) {
        this.staleServed?.inc();
        return stale;
      }
      throw new UnavailableError('API keys cannot be verified right now; retry shortly');
    }
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  private load(hash: string): Promise<CacheEntry | null> {
    const pending = this.inflight.get(hash);
    if (pending) return pending;
    const generation = this.generation;
    const promise = this.fetch(hash)
      .then((entry) => {
        if (entry && generation === this.generation && this.ttlMs > 0) this.remember(entry);
        return entry;
      })
      .finally(() => this.inflight.delete(hash));
    this.inflight.set(hash, promise);
    return promise;
  }

  private async fetch(hash: string): Promise<CacheEntry | null> {
    let row;
    try {
      // Tried while the database is down too: stale entries or UNAVAILABLE answer a failure, and a success ends the outage.
      row = await this.deps.db.prismaEvenIfDown.apiKey.findUnique({ where: { hash }, include: { tenant: true } });
    } catch (error) {
      this.lookups?.inc({ result: 'error' });
      throw error;
    }
    this.lookups?.inc({ result: row ? 'found' : 'unknown' });
    if (!row || !hashesEqual(row.hash, hash)) return null;
    return entryFor(row, row.tenant, Date.now());
  }

  private remember(entry: CacheEntry): void {
    entry.epoch = this.epoch;
    this.newestCachedAt = Math.max(this.newestCachedAt, entry.cachedAt);
    this.cache.delete(entry.hash);
    this.cache.set(entry.hash, entry);
    // Map keeps insertion order: the first key is the oldest entry.
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
  }

  /** lastUsedAt is written at most once per granularity window per key and process, off the request path. */
  private touch(apiKeyId: string, now: number): void {
    const last = this.lastUsedWritten.get(apiKeyId);
    if (last !== undefined && now - last < this.lastUsedGranularityMs) return;
    if (this.lastUsedWritten.size >= this.maxEntries) this.lastUsedWritten.clear();
    this.lastUsedWritten.set(apiKeyId, now);
    const threshold = new Date(now - this.lastUsedGranularityMs);
    let prisma;
    try {
      prisma = this.deps.db.prisma;
    } catch {
      return;
    }
    prisma.apiKey
      .updateMany({
        where: { id: apiKeyId, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: threshold } }] },
        data: { lastUsedAt: new Date(now) },
      })
      .catch((error: unknown) => this.deps.log.debug({ reason: String(error) }, 'lastUsedAt update failed'));
  }
}

function entryFor(key: ApiKey, tenant: Tenant, now: number): CacheEntry {
  return {
    hash: key.hash,
    principal: principalFromRows(key, tenant),
    tenantSuspended: tenant.status === 'SUSPENDED',
    ...lifetimeOf(key),
    cachedAt: now,
    epoch: 0,
  };
}
