/**
 * Verifies the API key on each request. A key that is not shaped right or
 * whose checksum is wrong is refused before any I/O; a well-formed key is
 * looked up by its SHA-256 and the result cached in process (bounded, TTL ≤
 * KEY_CACHE_TTL_MS), so a steady caller costs no database round trip.
 * Invalidations from Redis pub/sub drop entries at once on every process.
 */
import type Redis from 'ioredis';
import { Counter } from 'prom-client';
import type { Config } from '../config';
import type { Database } from '../db/database';
import type { ApiKey, Tenant } from '../db/generated/client';
import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { RedisConnection } from '../redis/redis';
import { hashesEqual, hashKey, isWellFormedKey } from '../keys/key-format';
import type { Principal } from './principal';
import { principalFromRows } from './principal-from-rows';
import { invalidationChannel, parseInvalidation, publishInvalidation, type InvalidationTarget, type KeyInvalidator } from './invalidation';

/** One message for every refusal, so a caller cannot probe which keys exist. */
export const INVALID_KEY_MESSAGE = 'Missing or invalid API key';

export type HeaderBag = Record<string, string | string[] | undefined>;

interface CacheEntry {
  hash: string;
  principal: Principal;
  tenantSuspended: boolean;
  revoked: boolean;
  expiresAt: number | null;
  graceUntil: number | null;
  cachedAt: number;
}

export interface AuthenticatorDeps {
  config: Pick<Config, 'keys'>;
  db: Database;
  redis: RedisConnection | null;
  log: Logger;
  metrics?: Metrics;
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
  private subscriber: Redis | undefined;
  private readonly lookups: Counter<'result'> | undefined;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly lastUsedGranularityMs: number;

  constructor(private readonly deps: AuthenticatorDeps) {
    this.ttlMs = deps.config.keys.cacheTtlMs;
    this.maxEntries = deps.config.keys.cacheMaxEntries;
    this.lastUsedGranularityMs = deps.config.keys.lastUsedGranularityMs;
    if (deps.metrics) {
      this.lookups = new Counter({
        name: 'modelgate_auth_key_lookups_total',
        help: 'API key lookups in the database (cache misses), by result',
        labelNames: ['result'],
        registers: [deps.metrics.registry],
      });
    }
  }

  /** Subscribes to the invalidation channel on a connection of its own (a subscribed connection can do nothing else). */
  start(): void {
    const redis = this.deps.redis;
    if (!redis || this.subscriber) return;
    const sub = redis.duplicate();
    this.subscriber = sub;
    const channel = invalidationChannel(redis.keyPrefix);
    let readyBefore = false;
    sub.on('ready', () => {
      // Messages published while we were disconnected are lost: start from an empty cache.
      if (readyBefore) this.clear();
      readyBefore = true;
      sub.subscribe(channel).catch((error: unknown) => this.deps.log.warn({ reason: String(error) }, 'key invalidation subscribe failed'));
    });
    sub.on('error', () => undefined); // state and logging are the main connection's job
    sub.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      const target = parseInvalidation(message);
      if (target) this.apply(target);
    });
  }

  async close(): Promise<void> {
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
    const hash = hashKey(plaintext);
    const now = Date.now();
    let entry = this.cache.get(hash);
    if (!entry || now - entry.cachedAt >= this.ttlMs || !hashesEqual(entry.hash, hash)) {
      entry = (await this.load(hash)) ?? undefined;
    }
    if (!entry) throw new UnauthenticatedError(INVALID_KEY_MESSAGE);
    if (entry.revoked || (entry.expiresAt !== null && now >= entry.expiresAt) || (entry.graceUntil !== null && now >= entry.graceUntil)) {
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
    const row = await this.deps.db.prisma.apiKey.findUnique({ where: { hash }, include: { tenant: true } });
    this.lookups?.inc({ result: row ? 'found' : 'unknown' });
    if (!row || !hashesEqual(row.hash, hash)) return null;
    return entryFor(row, row.tenant, Date.now());
  }

  private remember(entry: CacheEntry): void {
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
    revoked: key.revokedAt !== null,
    expiresAt: key.expiresAt?.getTime() ?? null,
    graceUntil: key.graceUntil?.getTime() ?? null,
    cachedAt: now,
  };
}
