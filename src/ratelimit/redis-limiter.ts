/**
 * The Redis side: one Lua script checks and consumes every limit of a request
 * atomically, in one round trip (EVALSHA through ioredis defineCommand, which
 * falls back to EVAL after a Redis restart empties the script cache).
 *
 * Algorithm: a sliding-window log per rolling limit. Each admitted request
 * adds one sorted-set entry (score = time in ms, member = "<id>:<amount>"),
 * and a companion counter holds the sum of the amounts, so checking is
 * O(1) plus the entries that expire (each entry is added and removed once).
 * Why a log and not a token bucket or a two-bucket weighted counter: the log
 * is exact — no 60-second span ever holds more than the limit — whereas a
 * bucket refills continuously (a 50/min bucket admits a 51st request 1.2 s
 * after a burst of 50) and the weighted counter is an estimate that can
 * over-admit at window edges. Memory is one entry per admitted request in
 * the last minute, which the request limit itself bounds.
 *
 * Atomicity: Redis runs a script without interleaving, so all replicas see
 * one order of checks; the script first evaluates every limit and only then
 * writes, so a refusal consumes nothing (all or nothing).
 *
 * Time: the script reads Redis's own clock (TIME) unless the caller injects
 * one, so replicas with skewed clocks still share one window.
 */
import type Redis from 'ioredis';
import type { StoreLimit, StoreResult } from './store';

export const CHECK_SCRIPT = `
-- KEYS: two per limit: [2i-1] the log (rolling) or counter (month), [2i] the sum of the log (rolling; unused for month)
-- ARGV[1]: now in ms, or 0 to use Redis TIME; ARGV[2]: a unique id for this request
-- ARGV[3 + 4(i-1) ...]: kind ("r" rolling | "m" month), limit, span ms (window, or ms until the month ends), cost
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id = ARGV[2]
local n = (#ARGV - 2) / 4
local used = {}
local refused = 0
local retry = 0

local function amount(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

for i = 1, n do
  local b = 2 + (i - 1) * 4
  local kind, limit, span, cost = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local log, sumKey = KEYS[2 * i - 1], KEYS[2 * i]
  local u
  if kind == 'r' then
    local cutoff = now - span
    local expired = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
    local sum = tonumber(redis.call('GET', sumKey) or '0')
    if #expired > 0 then
      for _, m in ipairs(expired) do sum = sum - amount(m) end
      redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
      if redis.call('ZCARD', log) == 0 or sum < 0 then sum = 0 end
      if sum == 0 then redis.call('DEL', sumKey) else redis.call('SET', sumKey, sum, 'KEEPTTL') end
    end
    u = sum
  else
    u = tonumber(redis.call('GET', log) or '0')
  end
  used[i] = u
  if refused == 0 and cost > 0 and u + cost > limit then
    refused = i
    if cost > limit then
      retry = span
    elseif kind == 'r' then
      -- Walk the log from the oldest entry until enough has left the window.
      local need = u + cost - limit
      local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
      local freed = 0
      retry = span
      for j = 1, #entries, 2 do
        freed = freed + amount(entries[j])
        if freed >= need then
          retry = tonumber(entries[j + 1]) + span - now
          break
        end
      end
    else
      retry = span
    end
  end
end

if refused == 0 then
  for i = 1, n do
    local b = 2 + (i - 1) * 4
    local kind, span, cost = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
    if cost > 0 then
      local log, sumKey = KEYS[2 * i - 1], KEYS[2 * i]
      if kind == 'r' then
        redis.call('ZADD', log, now, id .. ':' .. cost)
        redis.call('PEXPIRE', log, span)
        used[i] = redis.call('INCRBY', sumKey, cost)
        redis.call('PEXPIRE', sumKey, span)
      else
        used[i] = redis.call('INCRBY', log, cost)
        -- The month's counter outlives the month by 35 days, for inspection.
        redis.call('PEXPIRE', log, span + 3024000000)
      end
    end
  end
end

local out = { refused, retry }
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local kind, span = ARGV[b + 1], tonumber(ARGV[b + 3])
  local reset = span
  if kind == 'r' then
    local oldest = redis.call('ZRANGE', KEYS[2 * i - 1], 0, 0, 'WITHSCORES')
    if oldest[2] then reset = tonumber(oldest[2]) + span - now else reset = 0 end
  end
  out[#out + 1] = used[i]
  out[#out + 1] = reset
end
return out
`;

type CheckCommand = (...args: (string | number)[]) => Promise<number[]>;

/** Registers the script on a client (idempotent) and runs it. */
export class RedisLimiter {
  private readonly command: CheckCommand;

  constructor(
    client: Redis,
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
      keys.push(key, l.kind === 'rolling' ? `${key}:sum` : key);
    }
    return keys;
  }

  async check(limits: StoreLimit[], requestId: string, nowMs: number | null): Promise<StoreResult> {
    const keys = this.keysFor(limits);
    const args: (string | number)[] = [keys.length, ...keys, nowMs ?? 0, requestId];
    for (const l of limits) args.push(l.kind === 'rolling' ? 'r' : 'm', l.limit, Math.max(1, Math.ceil(l.spanMs)), l.cost);
    const raw = await this.command(...args);
    const used: number[] = [];
    const resetMs: number[] = [];
    for (let i = 0; i < limits.length; i += 1) {
      used.push(Number(raw[2 + 2 * i] ?? 0));
      resetMs.push(Math.max(0, Number(raw[3 + 2 * i] ?? 0)));
    }
    return { refusedIndex: Number(raw[0] ?? 0) - 1, retryAfterMs: Math.max(0, Number(raw[1] ?? 0)), used, resetMs };
  }
}
