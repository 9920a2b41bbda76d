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
 * and runs the check again.
 */
import type { Cluster, Redis } from 'ioredis';
import type { StoreLimit, StoreResult } from './store';

export const CHECK_SCRIPT = `
-- KEYS: two per limit: [2i-1] the log (rolling) or counter (month); [2i] the sum of a weighted log (unused otherwise)
-- ARGV[1]: now in ms, or 0 to use Redis TIME; ARGV[2]: a unique id for this request
-- ARGV[3 + 4(i-1) ...]: kind, limit, span ms (window, or ms until the month ends), cost; kind is
--   "c": rolling log where every entry counts 1 (requests; the count is ZCARD),
--   "w": rolling log of weighted entries (compute units; the sum is kept in KEYS[2i]),
--   "m": calendar-month counter, 0 when absent (usage shown, no quota to hold);
--   "q": calendar-month quota counter that must exist: when absent the script answers
--        {"seed", i} and changes nothing, so the caller rebuilds it first.
local n = (#ARGV - 2) / 4
for i = 1, n do
  if ARGV[2 + (i - 1) * 4 + 1] == 'q' and redis.call('EXISTS', KEYS[2 * i - 1]) == 0 then
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
local used, oldest = {}, {}
local refused, retry = 0, 0

local function amount(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

-- Phase 1: expire old entries and evaluate every limit; nothing is consumed yet.
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local kind, limit, span, cost = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local log, sumKey = KEYS[2 * i - 1], KEYS[2 * i]
  local u
  if month(kind) then
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
  if refused == 0 and cost > 0 and u + cost > limit then
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
    local b = 2 + (i - 1) * 4
    local kind, span, cost = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
    if cost > 0 then
      local log, sumKey = KEYS[2 * i - 1], KEYS[2 * i]
      if month(kind) then
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
  local b = 2 + (i - 1) * 4
  local span = tonumber(ARGV[b + 3])
  local reset = span
  if not month(ARGV[b + 1]) then reset = oldest[i] and (oldest[i] + span - now) or 0 end
  out[#out + 1] = used[i]
  out[#out + 1] = reset
end
return out
`;

type CheckCommand = (...args: (string | number)[]) => Promise<(number | string)[]>;

/** The month counter outlives the month by 35 days, for inspection (as the script's PEXPIRE). */
export const MONTH_COUNTER_EXTRA_MS = 3_024_000_000;

/** The script's answer: a decision, or the index of a quota counter to rebuild before it can decide. */
export type RedisCheck = StoreResult | { needSeed: number };

/** Registers the script on a client (idempotent) and runs it. */
export class RedisLimiter {
  private readonly command: CheckCommand;

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
    for (const l of limits) args.push(kindOf(l), l.limit, Math.max(1, Math.ceil(l.spanMs)), l.cost);
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

  /** Sets a missing month counter to `value` unless another replica set it first; resolves whether this call set it. */
  async seed(limit: StoreLimit, value: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(limit.spanMs)) + MONTH_COUNTER_EXTRA_MS;
    return (await this.client.set(this.prefix + limit.key, value, 'PX', ttl, 'NX')) === 'OK';
  }
}

function kindOf(l: StoreLimit): string {
  if (l.kind === 'month') return l.seeded ? 'q' : 'm';
  return l.weighted ? 'w' : 'c';
}
