/**
 * The in-process limiter: the same sliding-window log and monthly counter as
 * the Redis script (see redis-limiter.ts), held in this process's memory.
 * Used in embedded mode (no REDIS_URL) and, with RATE_LIMIT_FAILURE_MODE=open,
 * while Redis is unreachable, so each replica still bounds abuse. JavaScript
 * runs one check at a time, so all-or-nothing needs no locking here.
 */
import type { StoreLimit, StoreResult } from './store';

interface Log {
  /** Entries in arrival order: [time ms, amount]. */
  entries: [number, number][];
  sum: number;
  expiresAt: number;
}

interface Counter {
  value: number;
  expiresAt: number;
}

/** A credit balance held here, with the refill period it belongs to. */
interface Balance {
  period: string;
  balance: number;
}

const SWEEP_EVERY = 1000;

/** Whether a stored credit period must be rebuilt rather than refilled (same rule as the Redis script). */
export function creditsNeedSeed(stored: string | undefined, period: string): boolean {
  if (stored === undefined) return true;
  if (stored === period) return false;
  return period === 'n' || stored.slice(0, 1) !== period.slice(0, 1);
}

export class LocalLimiter {
  private readonly logs = new Map<string, Log>();
  private readonly counters = new Map<string, Counter>();
  private readonly balances = new Map<string, Balance>();
  private checks = 0;

  check(limits: StoreLimit[], nowMs: number): StoreResult {
    this.checks += 1;
    if (this.checks % SWEEP_EVERY === 0) this.sweep(nowMs);

    const used: number[] = [];
    let refusedIndex = -1;
    let retryAfterMs = 0;
    limits.forEach((l, i) => {
      let u: number;
      if (l.kind === 'credits') {
        u = this.balanceOf(l);
        used.push(u);
        if (refusedIndex === -1 && l.cost > 0 && l.cost > u) {
          refusedIndex = i;
          retryAfterMs = l.spanMs;
        }
        return;
      }
      if (l.kind === 'rolling') {
        const log = this.logs.get(l.key);
        if (log) this.trim(log, nowMs - l.spanMs);
        u = log?.sum ?? 0;
      } else {
        u = this.counterValue(l.key, nowMs);
      }
      used.push(u);
      if (refusedIndex === -1 && l.cost > 0 && u + l.cost > l.limit) {
        refusedIndex = i;
        retryAfterMs = this.retryAfter(l, u, nowMs);
      }
    });

    if (refusedIndex === -1) {
      limits.forEach((l, i) => {
        if (l.cost <= 0) return;
        if (l.kind === 'credits') {
          const period = l.period ?? 'n';
          const held = this.balances.get(l.key);
          const next = { period: held && held.period > period ? held.period : period, balance: (used[i] ?? 0) - l.cost };
          this.balances.set(l.key, next);
          used[i] = next.balance;
          return;
        }
        if (l.kind === 'rolling') {
          let log = this.logs.get(l.key);
          if (!log) {
            log = { entries: [], sum: 0, expiresAt: 0 };
            this.logs.set(l.key, log);
          }
          log.entries.push([nowMs, l.cost]);
          log.sum += l.cost;
          log.expiresAt = nowMs + l.spanMs;
          used[i] = log.sum;
        } else {
          const counter = this.counters.get(l.key) ?? { value: 0, expiresAt: 0 };
          counter.value += l.cost;
          counter.expiresAt = nowMs + l.spanMs;
          this.counters.set(l.key, counter);
          used[i] = counter.value;
        }
      });
    }

    const resetMs = limits.map((l) => {
      if (l.kind === 'month' || l.kind === 'credits') return l.spanMs;
      const oldest = this.logs.get(l.key)?.entries[0];
      return oldest ? Math.max(0, oldest[0] + l.spanMs - nowMs) : 0;
    });
    return { refusedIndex, retryAfterMs, used, resetMs };
  }

  /**
   * Starts a month counter from what Redis last reported, so falling back
   * mid-month does not hand a tenant its whole quota again.
   */
  seedCounter(key: string, value: number, expiresAt: number): void {
    const existing = this.counters.get(key);
    if (!existing || existing.value < value) this.counters.set(key, { value, expiresAt });
  }

  /** Whether this process holds a balance it can use for the limit's period (else it must be rebuilt first). */
  hasBalance(l: StoreLimit): boolean {
    return !creditsNeedSeed(this.balances.get(l.key)?.period, l.period ?? 'n');
  }

  /** Sets a balance (rebuilt from Postgres, or the figure Redis last reported) for the limit's period. */
  seedBalance(l: StoreLimit, balance: number): void {
    this.balances.set(l.key, { period: l.period ?? 'n', balance });
  }

  /** Adds a top-up to a held balance (refilling first when the period rolled over); null when none is held. */
  grant(l: StoreLimit, amount: number): number | null {
    const held = this.balances.get(l.key);
    if (!held || creditsNeedSeed(held.period, l.period ?? 'n')) return null;
    const balance = this.balanceOf(l) + amount;
    this.balances.set(l.key, { period: held.period > (l.period ?? 'n') ? held.period : (l.period ?? 'n'), balance });
    return balance;
  }

  /** Forgets the month counters whose key passes `matches` (they are rebuilt from Postgres on the next check). */
  dropCounters(matches: (key: string) => boolean): void {
    for (const key of [...this.counters.keys()]) if (matches(key)) this.counters.delete(key);
  }

  /** Forgets a balance (its configuration changed). */
  dropBalance(key: string): void {
    this.balances.delete(key);
  }

  private balanceOf(l: StoreLimit): number {
    const held = this.balances.get(l.key);
    if (!held) return 0;
    // A period that rolled over reads as the refill amount (l.limit), as in the Redis script.
    return held.period < (l.period ?? 'n') ? l.limit : held.balance;
  }

  /** Whether a month counter for this key is held (absent: never counted here, or expired). */
  hasCounter(key: string, nowMs: number): boolean {
    const c = this.counters.get(key);
    return c !== undefined && c.expiresAt > nowMs;
  }

  /** Number of keys held (for tests of the sweep). */
  get size(): number {
    return this.logs.size + this.counters.size + this.balances.size;
  }

  private counterValue(key: string, nowMs: number): number {
    const c = this.counters.get(key);
    if (!c) return 0;
    if (c.expiresAt <= nowMs) {
      this.counters.delete(key);
      return 0;
    }
    return c.value;
  }

  private trim(log: Log, cutoff: number): void {
    let drop = 0;
    while (drop < log.entries.length && (log.entries[drop]?.[0] ?? Infinity) <= cutoff) {
      log.sum -= log.entries[drop]?.[1] ?? 0;
      drop += 1;
    }
    if (drop > 0) log.entries.splice(0, drop);
    if (log.entries.length === 0) log.sum = 0;
  }

  private retryAfter(l: StoreLimit, used: number, nowMs: number): number {
    if (l.cost > l.limit || l.kind === 'month') return l.spanMs;
    const need = used + l.cost - l.limit;
    let freed = 0;
    for (const [t, amount] of this.logs.get(l.key)?.entries ?? []) {
      freed += amount;
      if (freed >= need) return t + l.spanMs - nowMs;
    }
    return l.spanMs;
  }

  /** Drops windows and counters nobody has touched since they expired. */
  private sweep(nowMs: number): void {
    for (const [key, log] of this.logs) if (log.expiresAt <= nowMs) this.logs.delete(key);
    for (const [key, c] of this.counters) if (c.expiresAt <= nowMs) this.counters.delete(key);
  }
}
