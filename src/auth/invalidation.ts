/**
 * Revocation broadcast. A change that must stop a cached key from working
 * (revoke, rotate, suspend, limits or expiry change) is published on a Redis
 * channel that every gateway process subscribes to; without Redis the cache
 * TTL bounds how long another process may keep accepting the key.
 */
import type { RedisConnection } from '../redis/redis';
import type { Logger } from '../log/logger';

export interface InvalidationTarget {
  keyIds?: string[];
  tenantIds?: string[];
}

/** What the key service calls after committing a change. */
export interface KeyInvalidator {
  invalidate(target: InvalidationTarget): Promise<void>;
}

export function invalidationChannel(keyPrefix: string): string {
  return `${keyPrefix}keys:invalidate`;
}

/** Publishes only (the CLI uses it: it holds no cache of its own). */
export class RedisKeyInvalidator implements KeyInvalidator {
  constructor(
    private readonly redis: RedisConnection | null,
    private readonly log: Logger,
  ) {}

  async invalidate(target: InvalidationTarget): Promise<void> {
    await publishInvalidation(this.redis, target, this.log);
  }
}

export async function publishInvalidation(redis: RedisConnection | null, target: InvalidationTarget, log: Logger): Promise<void> {
  if (!redis) return;
  try {
    await redis.client.publish(invalidationChannel(redis.keyPrefix), JSON.stringify(target));
  } catch (error) {
    log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'key invalidation not broadcast; other processes drop the key when their cache expires');
  }
}

export function parseInvalidation(message: string): InvalidationTarget | null {
  try {
    const value = JSON.parse(message) as unknown;
    if (typeof value !== 'object' || value === null) return null;
    const { keyIds, tenantIds } = value as Record<string, unknown>;
    const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);
    return { keyIds: strings(keyIds), tenantIds: strings(tenantIds) };
  } catch {
    return null;
  }
}
