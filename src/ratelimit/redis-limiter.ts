/**
 * The Redis side: one Lua script checks and consumes every limit of a request
 * atomically, in one round trip (EVALSHA through ioredis defineCommand, which
 * falls back to EVAL after a Redis restart empties the script cache).
 *
 * Algorithm: a sliding-window log per rolling limit. Each admitted request
 * adds one sorted-set entry (score = time in ms, member = "<id>:<amount>");
 * request limits count entries (ZCARD), compute-unit limits keep the sum of
 * the amounts in a companion counter, so a check costs O(log n) plus the
 * entries that expire (each entry is added and removed once).
 * Why a log and not a token bucket or a two-bucket weighted counter: the log
 * is exact — no 60-second span ever holds more than the limit — whereas a
 * bucket refills continuously (a 50/min bucket admits a 51st request 1.2 s
 * after a burst of 50) and the weighted counter is an estimate that can
 * over-admit at window edges. Memory is one entry per admitted request in
 * the last minute, which the request limit itself bounds. A refusal stays
 * cheap too: its Retry-After comes from a rank lookup (request limits) or a
 * walk of at most 128 of the oldest entries (compute units).
 *
 * Atomicity: Redis runs a script without interleaving, so all replicas see
 * one order of checks; the script first evaluates every limit and only then
 * writes, so a refusal consumes nothing (all or nothing).
 *
 * Time: the script reads Redis's own clock (TIME) unless the caller injects
 * one, so replicas with skewed clocks still share one window.
 *
 * A monthly quota counter that is missing (Redis restarted without
 * persistence, failed over, evicted the key) is never taken as 0: the script
 * answers "seed" and admits nothing; the service rebuilds the counter from
 * Postgres, sets it with SET NX (so concurrent replicas agree on one value)
 * and runs the check again. Money budgets are such month counters too, in
 * micro-units (cost = units x price, computed by the caller).
 *
 * Credit balances (kind "k") are a hash {p: refill period, b: balance} that
 * must exist like a quota counter; the refill happens inside the script when
 * the caller's period id is newer than the stored one (see CHECK_SCRIPT), so
 * a boundary needs no Postgres read. Balances are rebuilt from the ledger by
 * seedCredits and topped up by grantCredits, each one small script.
 */
import type { Cluster, Redis } from 'ioredis';
import type { StoreLimit, StoreResult } from './store';

export const CHECK_SCRIPT = `
-- KEYS: two per limit: [2i-1] the log (rolling), counter (month) or balance hash (credits); [2i] the sum of a weighted log (unused otherwise)
-- ARGV[1]: now in ms, or 0 to use Redis TIME; ARGV[2]: a unique id for this request
-- ARGV[3 + 5(i-1) ...]: kind, limit, span ms (window, or ms until the month / refill period ends), cost, period; kind is
--   "c": rolling log where every entry counts 1 (requests; the count is ZCARD),
--   "w": rolling log of weighted entries (compute units; the sum is kept in KEYS[2i]),
--   "m": calendar-month counter, 0 when absent (usage shown, no quota to hold);
--   "q": calendar-month quota counter that must exist: when absent the script answers
--        {"seed", i} and changes nothing, so the caller rebuilds it first;
--   "k": credit balance, a hash {p = refill period id, b = balance} that must exist (else "seed");
--        limit is the refill amount, period the id of the period holding now ("d:YYYY-MM-DD",
--        "m:YYYY-MM", or "n": no refill). A stored period older than ARGV's is a rollover: the
--        balance is read as the refill amount and written so with the first consumption. Ids
--        compare as strings, so a replica whose clock is behind never refills a second time.
local S = 5
local n = (#ARGV - 2) / S
local function creditsNeedSeed(stored, period)
  if not stored then return true end
  if stored == period then return false end
  -- No refill, or the refill interval changed (the key service also deletes the hash then): rebuild.
  return period == 'n' or string.sub(stored, 1, 1) ~= string.sub(period, 1, 1)
end
for i = 1, n do
  local kind = ARGV[2 + (i - 1) * S + 1]
  if kind == 'q' and redis.call('EXISTS', KEYS[2 * i - 1]) == 0 then
    return { 'seed', i }
  end
  if kind == 'k' and creditsNeedSeed(redis.call('HGET', KEYS[2 * i - 1], 'p'), ARGV[2 + (i - 1) * S + 5]) then
    return { 'seed', i }
  end
end
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id = ARGV[2]
local function month(kind) return kind == 'm' or kind == 'q' end
local used, oldest, storedPeriod = {}, {}, {}
local refused, retry = 0, 0

local function amount(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

-- Phase 1: expire old entries and evaluate every limit; nothing is consumed yet.
for i = 1, n do
  local b = 2 + (i - 1) * S
  local kind, limit, span, cost = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local log, sumKey = KEYS[2 * i - 1], KEYS[2 * i]
  local u
  if kind == 'k' then
    local h = redis.call('HMGET', log, 'p', 'b')
    local period = ARGV[b + 5]
    if h[1] < period then
      -- The period rolled over: the balance is the refill amount (written below with the first consumption).
      u = limit
      storedPeriod[i] = period
    else
      u = tonumber(h[2] or '0')
      storedPeriod[i] = h[1]
    end
  elseif month(kind) then
    u = tonumber(redis.call('GET', log) or '0')
  else
    local cutoff = now - span
    local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    if first[2] and tonumber(first[2]) <= cutoff then
      if kind == 'w' then
        local sum = tonumber(redis.call('GET', sumKey) or '0')
        for _, m in ipairs(redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)) do sum = sum - amount(m) end
        redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
        if sum <= 0 or redis.call('EXISTS', log) == 0 then
          sum = 0
          redis.call('DEL', sumKey)
        else
          redis.call('SET', sumKey, sum, 'KEEPTTL')
        end
      else
        redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
      end
      first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    end
    oldest[i] = first[2] and tonumber(first[2]) or nil
    if kind == 'w' then
      u = first[2] and tonumber(redis.call('GET', sumKey) or '0') or 0
    else
      u = first[2] and redis.call('ZCARD', log) or 0
    end
  end
  used[i] = u
  if kind == 'k' then
    -- A balance: refused when it cannot pay the whole cost; it comes back at the next refill.
    if refused == 0 and cost > 0 and cost > u then
      refused = i
      retry = span
    end
  elseif refused == 0 and cost > 0 and u + cost > limit then
    refused = i
    retry = span
    if not month(kind) and cost <= limit then
      -- When can this request fit? Once the oldest entries holding "need" units have left.
      local need = u + cost - limit
      if kind == 'c' then
        -- Every entry counts 1: the need-th oldest entry, found by rank (O(log n)).
        local e = redis.call('ZRANGE', log, need - 1, need - 1, 'WITHSCORES')
        if e[2] then retry = tonumber(e[2]) + span - now end
      else
        -- Weighted: walk the oldest entries, at most 128 of them, so a refusal
        -- never costs O(window); past that, answer when the newest entry leaves
        -- (an upper bound: by then the whole window is free).
        local freed, found = 0, false
        local entries = redis.call('ZRANGE', log, 0, 127, 'WITHSCORES')
        for j = 1, #entries, 2 do
          freed = freed + amount(entries[j])
          if freed >= need then
            retry = tonumber(entries[j + 1]) + span - now
            found = true
            break
          end
        end
        if not found then
          local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
          if newest[2] then retry = tonumber(newest[2]) + span - now end
        end
      end
    end
  end
end

-- Phase 2: only when every limit admits, consume them all.
if refused == 0 then
  for i = 1, n do
    local b = 2 + (i - 1) * S
    local kind, span, cost = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
    if cost > 0 then
      local log, sumKey = KEYS[2 * i - 1], KEYS[2 * i]
      if kind == 'k' then
        used[i] = used[i] - cost
        redis.call('HSET', log, 'p', storedPeriod[i], 'b', used[i])
        -- Rebuildable from Postgres, so it may expire: 35 days past its period (400 days without refill).
        redis.call('PEXPIRE', log, span + (ARGV[b + 5] == 'n' and 34560000000 or 3024000000))
      elseif month(kind) then
        used[i] = redis.call('INCRBY', log, cost)
        -- The month's counter outlives the month by 35 days, for inspection.
        redis.call('PEXPIRE', log, span + 3024000000)
      else
        redis.call('ZADD', log, now, id .. ':' .. cost)
        redis.call('PEXPIRE', log, span)
        if kind == 'w' then
          used[i] = redis.call('INCRBY', sumKey, cost)
          redis.call('PEXPIRE', sumKey, span)
        else
          used[i] = used[i] + 1
        end
        if not oldest[i] then oldest[i] = now end
      end
    end
  end
end

local out = { refused, retry }
for i = 1, n do
  local b = 2 + (i - 1) * S
  local span = tonumber(ARGV[b + 3])
  local reset = span
  if not month(ARGV[b + 1]) and ARGV[b + 1] ~= 'k' then reset = oldest[i] and (oldest[i] + span - now) or 0 end
  out[#out + 1] = used[i]
  out[#out + 1] = reset
end
return out
`;

type CheckCommand = (...args: (string | number)[]) => Promise<(number | string)[]>;

/** KEYS[1] the balance; ARGV: period, balance, ttl ms. Sets unless the hash already holds that period. */
const CREDIT_SEED_SCRIPT = `
if redis.call('HGET', KEYS[1], 'p') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'b', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

/** KEYS[1] the balance; ARGV: period, amount, refill amount, ttl ms. See grantCredits. */
const CREDIT_GRANT_SCRIPT = `
local p = redis.call('HGET', KEYS[1], 'p')
if not p then return false end
if p == ARGV[1] or p > ARGV[1] then
  return redis.call('HINCRBY', KEYS[1], 'b', ARGV[2])
end
if ARGV[1] ~= 'n' and string.sub(p, 1, 1) == string.sub(ARGV[1], 1, 1) then
  local b = tonumber(ARGV[3]) + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'p', ARGV[1], 'b', b)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return b
end
return false
`;

/** The month counter outlives the month by 35 days, for inspection (as the script's PEXPIRE). */
export const MONTH_COUNTER_EXTRA_MS = 3_024_000_000;

/** The script's answer: a decision, or the index of a quota counter to rebuild before it can decide. */
export type RedisCheck = StoreResult | { needSeed: number };

/** Registers the script on a client (idempotent) and runs it. */
export class RedisLimiter {
  private readonly command: CheckCommand;
  private readonly creditSeed: (key: string, period: string, balance: number, ttl: number) => Promise<number>;
  private readonly creditGrant: (key: string, period: string, amount: number, refill: number, ttl: number) => Promise<number | null>;

  /** Works on a single Redis and on a Redis Cluster client alike (every key of a check shares one slot). */
  constructor(
    private readonly client: Redis | Cluster,
    private readonly prefix: string,
  ) {
    if (!('modelgateLimitCheck' in client)) {
      client.defineCommand('modelgateLimitCheck', { lua: CHECK_SCRIPT });
    }
    // defineCommand adds the method at run time; ioredis' types cannot know it.
    const method = (client as unknown as Record<string, CheckCommand>)['modelgateLimitCheck'];
    if (!method) throw new Error('ioredis did not register the rate-limit script');
    this.command = method.bind(client);
    if (!('modelgateCreditSeed' in client)) {
      client.defineCommand('modelgateCreditSeed', { lua: CREDIT_SEED_SCRIPT, numberOfKeys: 1 });
      client.defineCommand('modelgateCreditGrant', { lua: CREDIT_GRANT_SCRIPT, numberOfKeys: 1 });
    }
    // As above: methods added at run time (looked up when first used).
    const command = (name: string) => {
      const method = (client as unknown as Record<string, ((...args: (string | number)[]) => Promise<number | null>) | undefined>)[name];
      if (!method) throw new Error(`ioredis did not register ${name}`);
      return method;
    };
    this.creditSeed = (key, period, balance, ttl) => command('modelgateCreditSeed').call(client, key, period, balance, ttl) as Promise<number>;
    this.creditGrant = (key, period, amount, refill, ttl) => command('modelgateCreditGrant').call(client, key, period, amount, refill, ttl);
  }

  /** Keys passed to the script for these limits (exported for the cluster-slot test). */
  keysFor(limits: StoreLimit[]): string[] {
    const keys: string[] = [];
    for (const l of limits) {
      const key = this.prefix + l.key;
      keys.push(key, l.weighted ? `${key}:sum` : key);
    }
    return keys;
  }

  async check(limits: StoreLimit[], requestId: string, nowMs: number | null): Promise<RedisCheck> {
    const keys = this.keysFor(limits);
    const args: (string | number)[] = [keys.length, ...keys, nowMs ?? 0, requestId];
    for (const l of limits) args.push(kindOf(l), l.limit, Math.max(1, Math.ceil(l.spanMs)), l.cost, l.period ?? '');
    const raw = await this.command(...args);
    if (raw[0] === 'seed') return { needSeed: Number(raw[1]) - 1 };
    const used: number[] = [];
    const resetMs: number[] = [];
    for (let i = 0; i < limits.length; i += 1) {
      used.push(Number(raw[2 + 2 * i] ?? 0));
      resetMs.push(Math.max(0, Number(raw[3 + 2 * i] ?? 0)));
    }
    return { refusedIndex: Number(raw[0] ?? 0) - 1, retryAfterMs: Math.max(0, Number(raw[1] ?? 0)), used, resetMs };
  }

  /**
   * Sets a credit balance rebuilt from Postgres for `limit.period`, unless a
   * replica already holds one for that period (the first rebuild wins, as SET NX
   * does for month counters); resolves whether this call set it.
   */
  async seedCredits(limit: StoreLimit, balance: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(limit.spanMs)) + (limit.period === 'n' ? 34_560_000_000 : MONTH_COUNTER_EXTRA_MS);
    return (await this.creditSeed(this.prefix + limit.key, limit.period ?? 'n', balance, ttl)) === 1;
  }

  /**
   * Adds a top-up to a held balance, atomically: in the balance's own period
   * it is added; when the period has rolled over since, the refill is applied
   * first (the balance becomes refill + amount). Resolves the new balance, or
   * null when Redis holds none (the next check rebuilds it from Postgres, where
   * the grant is already recorded).
   */
  async grantCredits(limit: StoreLimit, amount: number): Promise<number | null> {
    const ttl = Math.max(1, Math.ceil(limit.spanMs)) + (limit.period === 'n' ? 34_560_000_000 : MONTH_COUNTER_EXTRA_MS);
    const answer = await this.creditGrant(this.prefix + limit.key, limit.period ?? 'n', amount, limit.limit, ttl);
    return answer === null ? null : Number(answer);
  }

  /** Drops a balance (its configuration changed): the next check rebuilds it from Postgres. */
  async dropCredits(key: string): Promise<void> {
    await this.client.del(this.prefix + key);
  }

  /**
   * Drops the keys matching a glob pattern (unprefixed; the prefix is added
   * and escaped), on every master of a cluster; resolves how many went.
   */
  async dropMatching(pattern: string): Promise<number> {
    const match = this.prefix.replace(/[*?[\]\\]/g, '\\$&') + pattern;
    const nodes: Redis[] = this.client.isCluster ? (this.client as Cluster).nodes('master') : [this.client as Redis];
    let dropped = 0;
    for (const node of nodes) {
      for await (const keys of node.scanStream({ match, count: 1000 }) as AsyncIterable<string[]>) {
        // One key at a time: in a cluster the keys of a node can lie in different slots.
        for (const key of keys) dropped += await node.unlink(key);
      }
    }
    return dropped;
  }

  /** Sets a missing month counter to `value` unless another replica set it first; resolves whether this call set it. */
  async seed(limit: StoreLimit, value: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(limit.spanMs)) + MONTH_COUNTER_EXTRA_MS;
    return (await this.client.set(this.prefix + limit.key, value, 'PX', ttl, 'NX')) === 'OK';
  }
}

function kindOf(l: StoreLimit): string {
  if (l.kind === 'credits') return 'k';
  if (l.kind === 'month') return l.seeded ? 'q' : 'm';
  return l.weighted ? 'w' : 'c';
}
