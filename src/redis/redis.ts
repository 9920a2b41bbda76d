/**
 * The shared Redis connection (ioredis). Rate limits, quotas and key
 * revocations use it so that every replica sees the same state. The client
 * reconnects by itself; its state is tracked for /readyz and the logs say
 * once per transition when Redis goes away or comes back.
 *
 * A URL with `?cluster=true` (e.g. redis://10.0.0.5:7000?cluster=true) names
 * one seed node of a Redis Cluster; ioredis discovers the others. Rate-limit
 * keys are hash-tagged per tenant so one check stays on one slot.
 */
import Redis, { Cluster } from 'ioredis';
import type { Logger } from '../log/logger';

export type RedisState = 'connecting' | 'up' | 'down';

/** Splits `?cluster=true` off a REDIS_URL; the rest is what ioredis reads. */
export function parseRedisUrl(url: string): { url: string; cluster: boolean } {
  const parsed = new URL(url);
  const flag = parsed.searchParams.get('cluster');
  parsed.searchParams.delete('cluster');
  return { url: parsed.toString(), cluster: flag === 'true' || flag === '1' };
}

export class RedisConnection {
  readonly client: Redis | Cluster;
  state: RedisState = 'connecting';
  lastError: string | undefined;
  private readonly listeners = new Set<(state: RedisState) => void>();

  constructor(
    readonly url: string,
    readonly keyPrefix: string,
    private readonly log: Logger,
  ) {
    const target = parseRedisUrl(url);
    const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 1000);
    // Fail commands fast while disconnected instead of queueing them: callers
    // (rate limits) have their own fallback and must not hang a request.
    // Auto-pipelining sends the commands of one event-loop turn (every
    // concurrent request's limit check) in one socket write instead of one each.
    const options = { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy, lazyConnect: false, enableAutoPipelining: true };
    if (target.cluster) {
      const seed = new URL(target.url);
      this.client = new Cluster([{ host: seed.hostname, port: Number(seed.port || 6379) }], {
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        clusterRetryStrategy: retryStrategy,
        redisOptions: {
          connectTimeout: 2000,
          maxRetriesPerRequest: 1,
          ...(seed.username ? { username: decodeURIComponent(seed.username) } : {}),
          ...(seed.password ? { password: decodeURIComponent(seed.password) } : {}),
          ...(seed.protocol === 'rediss:' ? { tls: {} } : {}),
        },
      });
    } else {
      this.client = new Redis(target.url, options);
    }
    this.client.on('ready', () => this.transition('up'));
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
      this.transition('down');
    });
    this.client.on('end', () => this.transition('down'));
    this.client.on('close', () => this.transition('down'));
  }

  /** Creates a second connection with the same settings (pub/sub needs its own). */
  duplicate(): Redis {
    // A Cluster's duplicate offers the same pub/sub surface (subscribe, on('message'), quit) that callers use.
    return this.client.duplicate() as Redis;
  }

  private closing = false;

  onStateChange(listener: (state: RedisState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private transition(next: RedisState): void {
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    if (next === 'up') {
      this.lastError = undefined;
      this.log.info({ previous }, 'redis connected');
    } else if ((previous === 'up' || previous === 'connecting') && !this.closing) {
      this.log.error({ reason: this.lastError }, 'redis unavailable');
    }
    for (const l of this.listeners) l(next);
  }

  /** Resolves when connected, or after timeoutMs (whichever first); returns whether it is up. */
  async waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.state === 'up') return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(false);
      }, timeoutMs);
      const off = this.onStateChange((s) => {
        if (s === 'up') {
          clearTimeout(timer);
          off();
          resolve(true);
        }
      });
    });
  }

  async close(): Promise<void> {
    // Our own quit is not an outage: no error line on every clean shutdown.
    this.closing = true;
    this.listeners.clear();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
