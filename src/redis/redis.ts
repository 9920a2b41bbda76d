/**
 * The shared Redis connection (ioredis). Rate limits, quotas and key
 * revocations use it so that every replica sees the same state. The client
 * reconnects by itself; its state is tracked for /readyz and the logs say
 * once per transition when Redis goes away or comes back.
 */
import Redis from 'ioredis';
import type { Logger } from '../log/logger';

export type RedisState = 'connecting' | 'up' | 'down';

export class RedisConnection {
  readonly client: Redis;
  state: RedisState = 'connecting';
  lastError: string | undefined;
  private readonly listeners = new Set<(state: RedisState) => void>();

  constructor(
    readonly url: string,
    readonly keyPrefix: string,
    private readonly log: Logger,
  ) {
    this.client = new Redis(url, {
      // Fail commands fast while disconnected instead of queueing them: callers
      // (rate limits) have their own fallback and must not hang a request.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 1000),
      lazyConnect: false,
    });
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
    return this.client.duplicate();
  }

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
    } else if (previous === 'up' || previous === 'connecting') {
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
    this.listeners.clear();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
