#!/usr/bin/env node
// One Redis round trip from Node (ioredis, auto-pipelining, a one-line EVALSHA), back to back and
// after 3 ms idle before each, as a lone gateway request meets it (bench/PROFILE.md, issue #25).
//   node bench/redis-rtt.mjs        (BENCH_REDIS_URL, default redis://127.0.0.1:6379/0)
import Redis from 'ioredis';
const r = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0', { enableAutoPipelining: true });
const sha = await r.script('LOAD', "return redis.call('INCR', KEYS[1])");
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor(p * xs.length)];
for (const gap of [0, 3]) {
  const t = [];
  for (let i = 0; i < 1500; i++) {
    if (gap) await new Promise((res) => setTimeout(res, gap));
    const s = process.hrtime.bigint();
    await r.evalsha(sha, 1, 'rtt:probe');
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  console.log(`EVALSHA round trip, ${gap ? gap + ' ms idle before each' : 'back to back'}: p50 ${pct(t, 0.5).toFixed(3)} ms, p90 ${pct(t, 0.9).toFixed(3)}, p99 ${pct(t, 0.99).toFixed(3)}`);
}
r.disconnect();
