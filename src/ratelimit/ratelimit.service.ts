/**
 * RateLimitService: checks and consumes a request's limits in Redis (one
 * atomic script, see redis-limiter.ts) and falls back by policy when Redis is
 * unreachable:
 *   - open (default): the in-process limiter decides, so each replica still
 *     bounds abuse; limits then hold per process, not across replicas;
 *   - closed: the request is refused with OVERLOADED (503, Retry-After) — a
 *     store outage is the gateway's fault, not the client's, so 429 would be
 *     the wrong signal.
 * The switch is logged once per transition, shown in /readyz
 * (component `rateLimits`) and in the `modelgate_rate_limit_store_up` gauge, and the
 * service returns to Redis by itself as soon as the connection is ready again.
 *
 * A tenant's monthly quota counter that Redis lost is rebuilt from the billed
 * units in Postgres before anything is admitted against it (see
 * redis-limiter.ts); while Postgres cannot answer, such a request is refused
 * with UNAVAILABLE rather than admitted against a counter of 0.
 */
import { randomBytes } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { Readiness } from '../health/readiness';
import type { RedisConnection } from '../redis/redis';
import type { Principal } from '../auth/principal';
import { BadInputError } from '../errors';
import { LocalLimiter } from './local-limiter';
import { RedisLimiter, type RedisCheck } from './redis-limiter';
import { nextMonthStart, resolveLimits, type ResolvedLimit } from './limits';
import type { StoreResult } from './store';
import type { LimitDecision, LimitState, LimitStatus } from './types';

/**
 * Sliding-window entries need an id unique across replicas: a random prefix
 * drawn once per process plus a counter, instead of 8 fresh random bytes
 * per check (a synchronous getrandom each, ~2 % of the request path).
 */
const CHECK_ID_PREFIX = randomBytes(8).toString('hex');
let checkCounter = 0;
function nextCheckId(): string {
  checkCounter += 1;
  return `${CHECK_ID_PREFIX}${checkCounter.toString(36)}`;
}

/** Which store decides right now. */
export type LimitBackend = 'redis' | 'local' | 'unavailable' | 'disabled';

export interface RateLimitServiceOptions {
  config: Config;
  log: Logger;
  metrics: Metrics;
  readiness: Readiness;
  redis: RedisConnection | null;
  /** Clock used when a call passes no `now` (tests inject one for month rollover). */
  clock?: () => Date;
  /** A Redis call slower than this counts as a failure (the request then follows the failure mode). */
  redisTimeoutMs?: number;
  /**
   * Compute units billed to a tenant in [from, to), from Postgres: what a
   * lost monthly quota counter is rebuilt from. Absent (limiter unit tests
   * without a database): a lost counter restarts at 0.
   */
  /** apiKeyId set: that key's billed units only (a key budget's counter). */
  billedUnits?: (tenantId: string, from: Date, to: Date, apiKeyId?: string) => Promise<number>;
}

/** A rebuilt counter can vanish again before the retry (another restart, eviction): give up after this many rebuilds. */
const MAX_SEEDS_PER_CHECK = 3;

/** The quota counter could not be rebuilt (Postgres unreachable): nothing may be admitted against it. */
class QuotaSeedUnavailable extends Error {}

export interface CheckRequest {
  /** Compute units this request consumes (items x model cost); 0 for non-inference operations. */
  computeUnits: number;
}

export class RateLimitService {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly redis: RedisConnection | null;
  private readonly redisLimiter: RedisLimiter | null;
  private readonly local = new LocalLimiter();
  private readonly clock: () => Date;
  private readonly redisTimeoutMs: number;
  /** Whether the last thing we learnt about Redis was good. */
  private redisHealthy: boolean;
  private readonly storeUp: Gauge;
  private readonly decisions: Counter<'result' | 'limit' | 'source'>;
  private readonly fallbacks: Counter;
  private readonly seeds: Counter<'result'>;
  private readonly billedUnits: (tenantId: string, from: Date, to: Date, apiKeyId?: string) => Promise<number>;
  /** Rebuilds in progress, by store key: concurrent checks of one tenant share one Postgres read. */
  private readonly seeding = new Map<string, Promise<void>>();
  private unsubscribe: (() => void) | undefined;
  /** Whether Redis has ever been used (the first connection is not a recovery). */
  private everHealthy = false;

  constructor(options: RateLimitServiceOptions) {
    this.config = options.config;
    this.log = options.log;
    this.redis = options.redis;
    this.clock = options.clock ?? (() => new Date());
    this.redisTimeoutMs = options.redisTimeoutMs ?? 2000;
    this.billedUnits = options.billedUnits ?? (async () => 0);
    this.redisLimiter = this.redis ? new RedisLimiter(this.redis.client, this.redis.keyPrefix) : null;
    this.redisHealthy = this.redis?.state === 'up';
    this.everHealthy = this.redisHealthy;

    const registry = options.metrics.registry;
    this.storeUp = new Gauge({
      name: 'modelgate_rate_limit_store_up',
      help: '1 while rate limits are decided in Redis; 0 while Redis is unreachable (RATE_LIMIT_FAILURE_MODE applies) or not configured (embedded: in-process limiter)',
      registers: [registry],
    });
    this.decisions = new Counter({
      name: 'modelgate_rate_limit_decisions_total',
      help: 'Rate-limit decisions by result (allowed|refused|unavailable), the limit that refused, and where they were made',
      labelNames: ['result', 'limit', 'source'],
      registers: [registry],
    });
    this.seeds = new Counter({
      name: 'modelgate_rate_limit_quota_rebuilds_total',
      help: 'Monthly quota counters found missing in Redis and rebuilt from the billed usage in Postgres, by result (set|already_set|failed)',
      labelNames: ['result'],
      registers: [registry],
    });
    this.fallbacks = new Counter({
      name: 'modelgate_rate_limit_store_failures_total',
      help: 'Rate-limit checks that could not reach Redis and followed RATE_LIMIT_FAILURE_MODE',
      registers: [registry],
    });
    if (this.redis) {
      this.storeUp.set(this.redisHealthy ? 1 : 0);
      this.unsubscribe = this.redis.onStateChange((state) => this.setRedisHealthy(state === 'up', state === 'up' ? undefined : this.redis?.lastError));
    }

    const required = this.config.limits.enabled && this.redis !== null && this.config.limits.failureMode === 'closed';
    options.readiness.register(
      'rateLimits',
      () => ({
        ready: this.backend !== 'unavailable',
        detail: { backend: this.backend, failureMode: this.config.limits.failureMode, enabled: this.config.limits.enabled },
      }),
      { required },
    );
  }

  /** Where decisions are made right now. */
  get backend(): LimitBackend {
    if (!this.config.limits.enabled) return 'disabled';
    if (!this.redis) return 'local';
    if (this.redisHealthy) return 'redis';
    return this.config.limits.failureMode === 'open' ? 'local' : 'unavailable';
  }

  /**
   * Checks and consumes every limit that applies to this request, atomically:
   * either all are consumed or, when one refuses, none. computeUnits 0 (a
   * non-inference operation) consumes only the request limits.
   */
  async check(principal: Principal, request: CheckRequest, now?: Date): Promise<LimitDecision> {
    if (!this.config.limits.enabled) return { allowed: true, states: [], source: 'disabled' };
    const computeUnits = wholeUnits(request.computeUnits);
    const at = now ?? this.clock();
    // A request without compute units touches only the request limits (its
    // headers describe those); skipping the others keeps the script short.
    const limits = resolveLimits(principal, this.config.limits, { requests: 1, computeUnits }, at).filter(
      (l) => computeUnits > 0 || (l.kind === 'rolling' && !l.weighted),
    );
    const outcome = await this.run(principal, limits, at, now !== undefined);
    if (outcome === 'unavailable') {
      this.decisions.inc({ result: 'unavailable', limit: '', source: 'unavailable' });
      return { allowed: false, reason: 'unavailable', retryAfterSeconds: 1, states: [], source: 'unavailable' };
    }
    if (outcome === 'quota_unavailable') {
      this.decisions.inc({ result: 'unavailable', limit: 'tenant_monthly_compute_units', source: 'redis' });
      return { allowed: false, reason: 'quota_unavailable', retryAfterSeconds: 1, states: [], source: 'redis' };
    }
    const { result, source } = outcome;
    const hit = toStates(limits, result)[result.refusedIndex];
    const states = toStates(limits, result, true);
    if (result.refusedIndex >= 0 && hit) {
      this.decisions.inc({ result: 'refused', limit: hit.name, source });
      return { allowed: false, reason: 'limit', hit, retryAfterSeconds: Math.max(1, Math.ceil(result.retryAfterMs / 1000)), states, source };
    }
    this.decisions.inc({ result: 'allowed', limit: '', source });
    return { allowed: true, states, source };
  }

  /** Each limit's remaining and reset, and the month's quota used, without consuming anything. */
  async status(principal: Principal, now?: Date): Promise<LimitStatus> {
    const at = now ?? this.clock();
    const resetsAt = nextMonthStart(at);
    const quotaLimit = principal.limits.tenantMonthlyComputeUnitQuota ?? this.config.limits.defaultMonthlyComputeUnitQuota;
    if (!this.config.limits.enabled) {
      return { limits: [], monthlyQuota: { limit: quotaLimit, used: 0, resetsAt }, source: 'disabled' };
    }
    const limits = resolveLimits(principal, this.config.limits, { requests: 0, computeUnits: 0 }, at);
    const outcome = await this.run(principal, limits, at, now !== undefined);
    if (outcome === 'unavailable' || outcome === 'quota_unavailable') {
      return { limits: [], monthlyQuota: { limit: quotaLimit, used: 0, resetsAt }, source: 'unavailable' };
    }
    const quotaIndex = limits.findIndex((l) => l.kind === 'month');
    return {
      limits: toStates(limits, outcome.result, true),
      monthlyQuota: { limit: quotaLimit, used: outcome.result.used[quotaIndex] ?? 0, resetsAt },
      source: outcome.source,
    };
  }

  close(): void {
    this.unsubscribe?.();
  }

  private async run(
    principal: Principal,
    limits: ResolvedLimit[],
    at: Date,
    injected: boolean,
  ): Promise<{ result: StoreResult; source: 'redis' | 'local' } | 'unavailable' | 'quota_unavailable'> {
    if (this.redis && this.redisLimiter) {
      const limiter = this.redisLimiter;
      if (this.redis.state === 'up') {
        try {
          const requestId = nextCheckId();
          // Redis's own clock unless a test injected one, so replicas share one window.
          const attempt = () => withTimeout(limiter.check(limits, requestId, injected ? at.getTime() : null), this.redisTimeoutMs);
          let answer: RedisCheck = await attempt();
          for (let seeds = 0; 'needSeed' in answer; seeds += 1) {
            const missing = limits[answer.needSeed];
            if (!missing || seeds >= MAX_SEEDS_PER_CHECK) throw new Error('the monthly quota counter kept vanishing from Redis while being rebuilt');
            await this.seedQuota(limiter, principal.tenantId, missing, at, budgetKeyOf(principal, missing));
            answer = await attempt();
          }
          const result = answer;
          this.setRedisHealthy(true);
          this.rememberQuota(limits, result, at);
          return { result, source: 'redis' };
        } catch (error) {
          if (error instanceof QuotaSeedUnavailable) return 'quota_unavailable';
          this.fallbacks.inc();
          this.setRedisHealthy(false, error instanceof Error ? error.message : String(error));
        }
      } else {
        this.fallbacks.inc();
        this.setRedisHealthy(false, this.redis.lastError);
      }
      if (this.config.limits.failureMode === 'closed') return 'unavailable';
    }
    try {
      await this.seedLocalQuota(principal, limits, at);
    } catch (error) {
      if (error instanceof QuotaSeedUnavailable) return 'quota_unavailable';
      throw error;
    }
    return { result: this.local.check(limits, at.getTime()), source: 'local' };
  }

  /**
   * Rebuilds a missing month counter: the tenant's billed units of the month
   * from Postgres, set with SET NX so that replicas rebuilding at once agree
   * on the first value written (they read the same rows; no request is
   * admitted against the key before it exists).
   */
  private seedQuota(limiter: RedisLimiter, tenantId: string, limit: ResolvedLimit, at: Date, apiKeyId?: string): Promise<void> {
    return this.onceFor(`redis:${limit.key}`, async () => {
      const billed = await this.readBilled(tenantId, at, 'Redis', apiKeyId);
      const set = await withTimeout(limiter.seed(limit, billed), this.redisTimeoutMs);
      this.seeds.inc({ result: set ? 'set' : 'already_set' });
      this.log.info({ tenantId, month: monthOf(at), billed, set }, 'monthly quota counter rebuilt from billed usage');
    });
  }

  /**
   * The in-process limiter holds its month counters in memory: one this
   * process does not have (embedded mode after a restart, or a Redis
   * fallback in a process that never saw the Redis figure) starts from the
   * billed usage too, never from 0.
   */
  private async seedLocalQuota(principal: Principal, limits: ResolvedLimit[], at: Date): Promise<void> {
    const tenantId = principal.tenantId;
    for (const limit of limits) {
      if (limit.kind !== 'month' || !limit.seeded || this.local.hasCounter(limit.key, at.getTime())) continue;
      await this.onceFor(`local:${limit.key}`, async () => {
        const billed = await this.readBilled(tenantId, at, 'this process', budgetKeyOf(principal, limit));
        this.local.seedCounter(limit.key, billed, at.getTime() + limit.spanMs);
        this.seeds.inc({ result: 'set' });
        this.log.info({ tenantId, month: monthOf(at), billed, store: 'local' }, 'monthly quota counter rebuilt from billed usage');
      });
    }
  }

  private async readBilled(tenantId: string, at: Date, store: string, apiKeyId?: string): Promise<number> {
    const from = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
    try {
      return await this.billedUnits(tenantId, from, nextMonthStart(at), apiKeyId);
    } catch (error) {
      this.seeds.inc({ result: 'failed' });
      this.log.warn({ tenantId, store, reason: error instanceof Error ? error.message : String(error) }, 'monthly quota counter missing and the billed usage cannot be read; refusing until it can');
      throw new QuotaSeedUnavailable();
    }
  }

  /** Concurrent checks of one tenant share one rebuild. */
  private onceFor(key: string, work: () => Promise<void>): Promise<void> {
    const pending = this.seeding.get(key);
    if (pending) return pending;
    const promise = work().finally(() => this.seeding.delete(key));
    this.seeding.set(key, promise);
    return promise;
  }

  /** Keeps the month's counter known locally so a fallback starts from it. */
  private rememberQuota(limits: ResolvedLimit[], result: StoreResult, at: Date): void {
    limits.forEach((l, i) => {
      if (l.kind === 'month') this.local.seedCounter(l.key, result.used[i] ?? 0, at.getTime() + l.spanMs);
    });
  }

  private setRedisHealthy(healthy: boolean, reason?: string): void {
    if (healthy === this.redisHealthy) return;
    this.redisHealthy = healthy;
    this.storeUp.set(healthy ? 1 : 0);
    if (healthy) {
      this.log.info({ backend: 'redis' }, this.everHealthy ? 'rate limits: back on Redis' : 'rate limits: using Redis');
      this.everHealthy = true;
    } else if (this.config.limits.failureMode === 'open') {
      this.log.error({ reason, backend: 'local' }, 'rate limits: Redis unreachable, using the in-process limiter (RATE_LIMIT_FAILURE_MODE=open)');
    } else {
      this.log.error({ reason, backend: 'unavailable' }, 'rate limits: Redis unreachable, refusing requests (RATE_LIMIT_FAILURE_MODE=closed)');
    }
  }
}

function monthOf(at: Date): string {
  return at.toISOString().slice(0, 7);
}

/** Compute units are whole numbers in the stores; a fractional total (items x a fractional cost) rounds up. */
function wholeUnits(value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new BadInputError('computeUnits must be a non-negative number', 'computeUnits');
  return Math.ceil(value);
}

/** Per-limit states in the order checked; `visible` leaves out unbounded counters (not limits a client can hit). */
function toStates(limits: ResolvedLimit[], result: StoreResult, visible = false): LimitState[] {
  const states = limits.map((l, i) => ({
    name: l.name,
    limit: l.limit,
    remaining: Math.max(0, l.limit - (result.used[i] ?? 0)),
    resetSeconds: Math.ceil((result.resetMs[i] ?? 0) / 1000),
    windowSeconds: l.windowSeconds,
  }));
  return visible ? states.filter((_, i) => !limits[i]?.unbounded) : states;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The key whose billed units rebuild this counter: set for a key budget, undefined for the tenant quota. */
function budgetKeyOf(principal: Principal, limit: ResolvedLimit): string | undefined {
  return limit.name === 'key_monthly_compute_units' ? principal.apiKeyId : undefined;
}
