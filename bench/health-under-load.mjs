#!/usr/bin/env node
// A cheap query's latency while inference saturates the gateway (issue #25: `health` p99 < 15 ms),
// with variants of the gateway's environment side by side in alternating rounds, so the difference
// between variants is the setting's and not the machine's mood. Every variant is the full production
// path (`node dist/main.js`, NODE_ENV=production, Postgres, Redis limits, durable usage); each round
// loads one variant at a time with wrk (BENCH_CONCURRENCY connections of a 1-item GraphQL infer on
// BENCH_MODEL) and, one second in, measures `{ health { status } }` on one more connection.
//   npm run build:ts && node bench/health-under-load.mjs [rounds=3] [seconds=6]
//   BENCH_VARIANTS='nice0:INFERENCE_WORKER_NICE=0;nice10:INFERENCE_WORKER_NICE=10' (name:VAR=v,VAR=v;…;
//   the pseudo-variable NODE_ARGS='--flag --flag' goes on the gateway's node command line, and
//   DIST=/path/to/dist serves another build, e.g. a base kept by BENCH_GUARD_KEEP=1 npm run bench:guard)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { bootstrapKey, cpuSeconds, fixturePixels, fullPathGateway, graphqlImageInfer, log, startGateway } from './lib.mjs';

const ROUNDS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 6);
const MODEL = process.env.BENCH_MODEL ?? 'fashion-hybrid';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const VARIANTS = (process.env.BENCH_VARIANTS ?? 'nice0:INFERENCE_WORKER_NICE=0;nice10:INFERENCE_WORKER_NICE=10')
  .split(';').filter(Boolean).map((spec) => {
    const [name, vars = ''] = spec.split(':');
    return { name, env: Object.fromEntries(vars.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) };
  });

if (spawnSync('wrk', ['--version']).error) {
  console.error('this bench needs wrk (apt-get install wrk)');
  process.exit(2);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-health-'));
const inferFile = path.join(work, 'infer.json');
writeFileSync(inferFile, graphqlImageInfer(MODEL, fixturePixels(1)));
const healthFile = path.join(work, 'health.json');
writeFileSync(healthFile, JSON.stringify({ query: '{ health { status } }' }));

function script(bodyFile, authorization) {
  const file = path.join(work, `wrk-${Math.random().toString(36).slice(2)}.lua`);
  writeFileSync(file, `
wrk.method = "POST"
local f = io.open(${JSON.stringify(bodyFile)}, "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["content-type"] = "application/json"
${authorization ? `wrk.headers["authorization"] = ${JSON.stringify(authorization)}` : ''}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f %d\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, summary.duration))
end
`);
  return file;
}

function parse(stdout) {
  const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(stdout);
  if (!m) throw new Error(`wrk failed: ${stdout}`);
  return { requests: Number(m[1]), errors: Number(m[2]), p50: Number(m[3]), p99: Number(m[4]), max: Number(m[5]), seconds: Number(m[6]) / 1e6 };
}

async function round(variant) {
  const loader = spawn('wrk', ['-t', '1', '-c', String(CONCURRENCY), '-d', `${SECONDS + 2}s`, '--timeout', '10s', '-s', variant.loadScript, `${variant.url}/graphql`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let loadOut = '';
  loader.stdout.on('data', (d) => { loadOut += d; });
  const loaderDone = new Promise((resolve) => loader.on('exit', resolve));
  await new Promise((r) => setTimeout(r, 1000));
  const cpu0 = cpuSeconds(variant.child.pid);
  const probe = spawnSync('wrk', ['-t', '1', '-c', '1', '-d', `${SECONDS}s`, '--timeout', '10s', '-s', variant.healthScript, `${variant.url}/graphql`], { encoding: 'utf8' });
  const cpu = cpuSeconds(variant.child.pid) - cpu0;
  await loaderDone;
  const health = parse(probe.stdout);
  const load = parse(loadOut);
  return { health, load, cpu };
}

const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const databases = [];
const results = new Map();
try {
  for (const v of VARIANTS) {
    const { env, port } = await fullPathGateway(admin, databases, {
      adminUrl: ADMIN_DB, redisUrl: REDIS_URL, name: `health_${process.pid}_${v.name}`, dataDir: path.join(work, v.name), extra: v.env,
    });
    const nodeArgs = (env.NODE_ARGS ?? '').split(' ').filter(Boolean);
    const dist = env.DIST ? path.resolve(env.DIST) : undefined;
    delete env.NODE_ARGS;
    delete env.DIST;
    const key = bootstrapKey(env, dist);
    log(`starting ${v.name} (${JSON.stringify(v.env)}) on ${port}`);
    const { child, url } = await startGateway(env, { what: v.name, nodeArgs, dist });
    Object.assign(v, { child, url, loadScript: script(inferFile, `Bearer ${key}`), healthScript: script(healthFile, null) });
    results.set(v.name, []);
  }
  for (let r = 1; r <= ROUNDS; r += 1) {
    const order = r % 2 ? VARIANTS : [...VARIANTS].reverse();
    for (const v of order) {
      const result = await round(v);
      results.get(v.name).push(result);
      log(`round ${r}/${ROUNDS} ${v.name}: health p50 ${result.health.p50.toFixed(1)} p99 ${result.health.p99.toFixed(1)} ms (${result.health.requests} queries); load ${Math.round(result.load.requests / result.load.seconds)} req/s, p99 ${result.load.p99.toFixed(1)} ms, ${result.load.errors} errors; load avg ${os.loadavg()[0].toFixed(1)}`);
    }
  }
} finally {
  for (const v of VARIANTS) v.child?.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1500));
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
console.log(`\n${MODEL} × 1 GraphQL infer at c=${CONCURRENCY} + one connection of { health { status } }; ${ROUNDS} alternating rounds × ${SECONDS} s; medians over rounds (range)`);
console.log('| variant | health p50 ms | health p99 ms | health max ms | inference req/s | inference p99 ms | gateway CPU, cores | errors |');
console.log('|---|---|---|---|---|---|---|---|');
for (const v of VARIANTS) {
  const rs = results.get(v.name);
  const range = (f, d = 1) => `${median(rs.map(f)).toFixed(d)} (${Math.min(...rs.map(f)).toFixed(d)}–${Math.max(...rs.map(f)).toFixed(d)})`;
  // The health queries' CPU is in the same counters, so a per-request figure would mix the two loads: cores used instead.
  const cores = (x) => x.cpu / x.health.seconds;
  console.log(`| ${v.name} | ${range((x) => x.health.p50)} | ${range((x) => x.health.p99)} | ${range((x) => x.health.max)} | ${range((x) => x.load.requests / x.load.seconds, 0)} | ${range((x) => x.load.p99)} | ${range(cores, 2)} | ${rs.reduce((a, x) => a + x.health.errors + x.load.errors, 0)} |`);
}
