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
 * with UNAVAILABLE rather than admitted against a counter of 0. The same
 * holds for money-budget counters (rebuilt from the spend) and credit
 * balances (rebuilt from the ledger minus the billed units).
 */
import { randomBytes } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { Readiness } from '../health/readiness';
import type { RedisConnection } from '../redis/redis';
import type { CreditsConfig, Principal } from '../auth/principal';
import { BadInputError } from '../errors';
import { LocalLimiter } from './local-limiter';
import { RedisLimiter, type RedisCheck } from './redis-limiter';
import { creditLimit, limitKey, monthId, nextMonthStart, resolveLimits, tenantTag, type ResolvedLimit } from './limits';
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
  /** Micro-units of `currency` spent in [from, to) (units x the price in effect each hour): what a lost spend counter is rebuilt from. */
  spendMicros?: (tenantId: string, from: Date, to: Date, currency: string, apiKeyId?: string) => Promise<number>;
  /** A credit balance from Postgres: refill + grants since `from` − units billed since `from`. */
  creditBalance?: (tenantId: string, apiKeyId: string | undefined, from: Date, to: Date, refill: number | null) => Promise<number>;
  /** The price of one compute unit of `model` for the tenant at `at` (null: no price), for money budgets. */
  priceAt?: (tenantId: string, model: string, at: Date) => Promise<{ currency: string; microsPerUnit: number } | null>;
  /**
   * Called after every check with its decision, whose states hold each
   * limit's remaining after it (the hook for threshold and
   * credits-exhausted events). Synchronous; a throw is logged, never raised.
   */
  onDecision?: (principal: Principal, decision: LimitDecision) => void;
}

/** The store key of a credit balance (the same whatever its configuration or the time). */
export function creditBalanceKey(target: CreditTarget): string {
  return limitKey({ tenantId: target.tenantId, apiKeyId: target.apiKeyId ?? '' }, target.apiKeyId ? 'key_credits' : 'tenant_credits', new Date());
}

/**
 * Drops held balances in Redis only, for a process without a limiter (the
 * CLI on a database): a changed credit configuration must not keep the old
 * balance in the gateways' Redis. A gateway's in-process fallback figures
 * (held only while Redis is down) are not reached from here.
 */
export function redisCreditReset(redis: RedisConnection): { resetCredits(target: CreditTarget): Promise<void> } {
  const limiter = new RedisLimiter(redis.client, redis.keyPrefix);
  return { resetCredits: (target) => limiter.dropCredits(creditBalanceKey(target)) };
}

/** Whose credit balance: a key's (apiKeyId set) or its tenant's. */
export interface CreditTarget {
  tenantId: string;
  apiKeyId?: string;
}

/** A rebuilt counter can vanish again before the retry (another restart, eviction): give up after this many rebuilds. */
const MAX_SEEDS_PER_CHECK = 3;

/** The quota counter could not be rebuilt (Postgres unreachable): nothing may be admitted against it. */
class QuotaSeedUnavailable extends Error {}

export interface CheckRequest {
  /** Compute units this request consumes (items x model cost); 0 for non-inference operations. */
  computeUnits: number;
  /** The model, for the price a money budget charges (absent: the request costs no money). */
  model?: string;
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
  private readonly spendMicros: NonNullable<RateLimitServiceOptions['spendMicros']>;
  private readonly creditBalance: NonNullable<RateLimitServiceOptions['creditBalance']>;
  private readonly priceAt: NonNullable<RateLimitServiceOptions['priceAt']>;
  private readonly onDecision: RateLimitServiceOptions['onDecision'];
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
    this.spendMicros = options.spendMicros ?? (async () => 0);
    this.creditBalance = options.creditBalance ?? (async (_t, _k, _f, _to, refill) => refill ?? 0);
    this.priceAt = options.priceAt ?? (async () => null);
    this.onDecision = options.onDecision;
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
    const decision = await this.decide(principal, request, now);
    if (this.onDecision) {
      try {
        this.onDecision(principal, decision);
      } catch (error) {
        this.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'limit decision observer failed');
      }
    }
    return decision;
  }

  private async decide(principal: Principal, request: CheckRequest, now?: Date): Promise<LimitDecision> {
    if (!this.config.limits.enabled) return { allowed: true, states: [], source: 'disabled' };
    const computeUnits = wholeUnits(request.computeUnits);
    const at = now ?? this.clock();
    // The price is looked up only when a money budget applies (cached in the price book).
    const budgets = [principal.limits.keyMonthlyBudget, principal.limits.tenantMonthlyBudget];
    let price: { currency: string; microsPerUnit: number } | null = null;
    if (computeUnits > 0 && request.model !== undefined && budgets.some((b) => b)) {
      price = await this.priceAt(principal.tenantId, request.model, at);
      const mismatch = price ? budgets.findIndex((b) => b && b.currency !== price?.currency) : -1;
      const budget = budgets[mismatch];
      if (price && budget) {
        // A budget in one currency cannot be charged a price in another: refused before anything is counted.
        const name = mismatch === 0 ? 'key_monthly_spend' : 'tenant_monthly_spend';
        this.decisions.inc({ result: 'refused', limit: name, source: 'redis' });
        const hit: LimitState = { name, limit: budget.micros, remaining: 0, resetSeconds: 0, windowSeconds: 0, currency: budget.currency };
        return { allowed: false, reason: 'currency_mismatch', hit, priceCurrency: price.currency, retryAfterSeconds: 3600, states: [], source: 'redis' };
      }
    }
    // A request without compute units touches only the request limits (its
    // headers describe those); skipping the others keeps the script short.
    const limits = resolveLimits(principal, this.config.limits, { requests: 1, computeUnits, price }, at).filter(
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
            // Each seeded limit may need one rebuild; beyond that, counters keep vanishing.
            if (!missing || seeds >= limits.length + MAX_SEEDS_PER_CHECK) throw new Error('a limit counter kept vanishing from Redis while being rebuilt');
            await this.seedQuota(limiter, principal.tenantId, missing, at);
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
   * Rebuilds a missing month counter or credit balance from Postgres: the
   * billed units (quota, key budget), the spend (money budgets) or the
   * ledger (credits), set only if absent (SET NX / same period) so that
   * replicas rebuilding at once agree on the first value written (they read
   * the same rows; no request is admitted against the key before it exists).
   */
  private seedQuota(limiter: RedisLimiter, tenantId: string, limit: ResolvedLimit, at: Date): Promise<void> {
    return this.onceFor(`redis:${limit.key}:${limit.period ?? ''}`, async () => {
      const value = await this.readSeed(tenantId, limit, at, 'Redis');
      const set = await withTimeout(limit.kind === 'credits' ? limiter.seedCredits(limit, value) : limiter.seed(limit, value), this.redisTimeoutMs);
      this.seeds.inc({ result: set ? 'set' : 'already_set' });
      this.log.info({ tenantId, limit: limit.name, month: monthOf(at), value, set }, 'limit counter rebuilt from Postgres');
    });
  }

  /**
   * The in-process limiter holds its month counters and balances in memory:
   * one this process does not have (embedded mode after a restart, or a Redis
   * fallback in a process that never saw the Redis figure) starts from
   * Postgres too, never from 0.
   */
  private async seedLocalQuota(principal: Principal, limits: ResolvedLimit[], at: Date): Promise<void> {
    const tenantId = principal.tenantId;
    for (const limit of limits) {
      if (limit.kind === 'credits') {
        if (this.local.hasBalance(limit)) continue;
        await this.onceFor(`local:${limit.key}:${limit.period ?? ''}`, async () => {
          this.local.seedBalance(limit, await this.readSeed(tenantId, limit, at, 'this process'));
          this.seeds.inc({ result: 'set' });
        });
        continue;
      }
      if (limit.kind !== 'month' || !limit.seeded || this.local.hasCounter(limit.key, at.getTime())) continue;
      await this.onceFor(`local:${limit.key}`, async () => {
        const value = await this.readSeed(tenantId, limit, at, 'this process');
        this.local.seedCounter(limit.key, value, at.getTime() + limit.spanMs);
        this.seeds.inc({ result: 'set' });
        this.log.info({ tenantId, limit: limit.name, month: monthOf(at), value, store: 'local' }, 'limit counter rebuilt from Postgres');
      });
    }
  }

  private async readSeed(tenantId: string, limit: ResolvedLimit, at: Date, store: string): Promise<number> {
    const from = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
    const seed = limit.seed ?? { kind: 'units' as const };
    try {
      switch (seed.kind) {
        case 'units':
          return await this.billedUnits(tenantId, from, nextMonthStart(at), seed.apiKeyId);
        case 'spend':
          return await this.spendMicros(tenantId, from, nextMonthStart(at), seed.currency, seed.apiKeyId);
        case 'credits':
          return await this.creditBalance(tenantId, seed.apiKeyId, seed.from, new Date(at.getTime() + 1), seed.refill);
      }
    } catch (error) {
      this.seeds.inc({ result: 'failed' });
      this.log.warn({ tenantId, limit: limit.name, store, reason: error instanceof Error ? error.message : String(error) }, 'limit counter missing and Postgres cannot say what it held; refusing until it can');
      throw new QuotaSeedUnavailable();
    }
  }

  /**
   * Adds a top-up (already recorded in the ledger) to the held balance and
   * answers the new one; where no store holds it, the balance is rebuilt from
   * Postgres (which includes the grant) and set, so the answer is exact either way.
   */
  async grantCredits(target: CreditTarget, credits: CreditsConfig, amount: number, now?: Date): Promise<number> {
    const at = now ?? this.clock();
    const limit = creditLimit({ tenantId: target.tenantId, apiKeyId: target.apiKeyId ?? '' }, credits, target.apiKeyId ? 'key' : 'tenant', 0, at);
    const local = this.local.grant(limit, amount);
    if (this.redisLimiter && this.redis?.state === 'up') {
      const held = await withTimeout(this.redisLimiter.grantCredits(limit, amount), this.redisTimeoutMs);
      if (held !== null) return held;
      const rebuilt = await this.readSeed(target.tenantId, limit, at, 'Redis');
      await withTimeout(this.redisLimiter.seedCredits(limit, rebuilt), this.redisTimeoutMs);
      return rebuilt;
    }
    if (local !== null) return local;
    const rebuilt = await this.readSeed(target.tenantId, limit, at, 'this process');
    this.local.seedBalance(limit, rebuilt);
    return rebuilt;
  }

  /**
   * One key's live credit balance, read without consuming (for readers other
   * than the key itself: an admin, its tenant's usage readers); null when
   * limits are off or no store can be read.
   */
  async keyCreditBalance(key: { apiKeyId: string; keyPrefix: string; tenantId: string }, credits: CreditsConfig, now?: Date): Promise<number | null> {
    // Only the credit limit matters: no per-key or tenant overrides, so nothing else is read but the defaults' counters.
    const target: Principal = {
      ...key,
      tenantName: '',
      scopes: [],
      allowedModels: [],
      expiresAt: null,
      limits: {
        keyRequestsPerMinute: null,
        keyComputeUnitsPerMinute: null,
        tenantRequestsPerMinute: null,
        tenantComputeUnitsPerMinute: null,
        tenantMonthlyComputeUnitQuota: null,
        keyCredits: credits,
      },
    };
    const status = await this.status(target, now);
    return status.limits.find((l) => l.name === 'key_credits')?.remaining ?? null;
  }

  /** Forgets a balance whose configuration changed, everywhere it is held: the next check rebuilds it from Postgres. */
  async resetCredits(target: CreditTarget): Promise<void> {
    const key = creditBalanceKey(target);
    this.local.dropBalance(key);
    if (this.redisLimiter && this.redis?.state === 'up') await withTimeout(this.redisLimiter.dropCredits(key), this.redisTimeoutMs);
  }

  /**
   * Forgets this month's money-budget counters of one tenant (null: of every
   * tenant), wherever they are held: the next check rebuilds each from the
   * spend Postgres prices (a price set for the current hour reprices what
   * the hour already recorded). Never throws: a counter it could not drop
   * keeps the figure it had, and that is logged.
   */
  async resetSpend(tenantId: string | null, now?: Date): Promise<void> {
    const month = monthId(now ?? this.clock());
    const tag = tenantId ? tenantTag(tenantId) : null;
    this.local.dropCounters((key) => key.includes(':spend:') && key.endsWith(`:${month}`) && (tag === null || key.startsWith(`${tag}:`)));
    if (!this.redisLimiter || this.redis?.state !== 'up') return;
    try {
      const dropped = await this.redisLimiter.dropMatching(`${tag ?? '{t:*}'}:rl:*:spend:*:${month}`);
      this.log.info({ tenantId, month, dropped }, 'money-budget counters dropped (a price changed the current hour); rebuilt from Postgres on the next check');
    } catch (error) {
      this.log.warn({ tenantId, month, reason: error instanceof Error ? error.message : String(error) }, 'could not drop money-budget counters after a price change');
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

  /** Keeps the month's counters and the balances known locally so a fallback starts from them. */
  private rememberQuota(limits: ResolvedLimit[], result: StoreResult, at: Date): void {
    limits.forEach((l, i) => {
      if (l.kind === 'month') this.local.seedCounter(l.key, result.used[i] ?? 0, at.getTime() + l.spanMs);
      else if (l.kind === 'credits') this.local.seedBalance(l, result.used[i] ?? 0);
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
  const states = limits.map((l, i): LimitState => {
    const used = result.used[i] ?? 0;
    // A credit balance is its own remaining; its limit is the refill amount (or the balance, when higher or without refill).
    const credits = l.kind === 'credits';
    return {
      name: l.name,
      limit: credits ? Math.max(l.limit, used) : l.limit,
      remaining: credits ? Math.max(0, used) : Math.max(0, l.limit - used),
      resetSeconds: Math.ceil((result.resetMs[i] ?? 0) / 1000),
      windowSeconds: l.windowSeconds,
      ...(l.currency ? { currency: l.currency } : {}),
    };
  });
  return visible ? states.filter((_, i) => !limits[i]?.unbounded) : states;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
