#!/usr/bin/env node
// The cost of tracing, side by side in one run: three production gateways (`node dist/main.js`,
// Postgres + Redis, limits and usage on) that differ only in tracing —
//   off      no exporter configured (trace context read and answered, nothing recorded)
//   on       OTLP/HTTP export of every span to a local sink process (bench/otlp-sink.mjs)
//   sampled  the same exporter with OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1
// Load from wrk (1 thread). Each route runs BENCH_ROUNDS rounds; a round measures every gateway
// once, in a rotated order, so drift in the machine's load hits each alike; a cell is the round
// with the median CPU per request. Reported: req/s, p50/p99 ms, and **server CPU ms per request**
// from /proc/<pid>/stat (utime+stime, all threads) — the figure that holds on a noisy machine —
// and each gateway's idle CPU (timers, flushes), which a low request rate spreads over fewer requests.
// Every request carries a sampled traceparent, as a traced client would send.
// Usage: npm run bench:tracing   (BENCH_SECONDS=5 per cell, BENCH_ROUNDS=3, BENCH_CONCURRENCY=32)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createRequire } from 'node:module';
import { ROOT, cpuSeconds, fixtureImages, freePort, log, waitReady, writeResultsSection } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const images = fixtureImages();

if (spawnSync('wrk', ['--version']).error) {
  console.error('bench:tracing needs wrk (apt-get install wrk)');
  process.exit(2);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-tracing-'));

function wrk(url, bodyFile, headers, seconds, serverPid) {
  const script = path.join(work, `wrk-${Math.random().toString(36).slice(2)}.lua`);
  // A fresh trace id per request (math.random), a sampled parent, as a traced client sends.
  writeFileSync(script, `
wrk.method = "POST"
local f = io.open(${JSON.stringify(bodyFile)}, "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["content-type"] = "application/json"
${Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`).join('\n')}
local hex = function(n) local t = {} for i = 1, n do t[i] = string.format("%x", math.random(0, 15)) end return table.concat(t) end
request = function()
  wrk.headers["traceparent"] = "00-" .. hex(32) .. "-" .. hex(16) .. "-01"
  return wrk.format()
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %d\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration))
end
`);
  const before = cpuSeconds(serverPid);
  const out = spawnSync('wrk', ['-t', '1', '-c', String(CONCURRENCY), '-d', `${seconds}s`, '--timeout', '10s', '-s', script, url], { encoding: 'utf8' });
  const cpu = cpuSeconds(serverPid) - before;
  const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(out.stdout);
  if (!m) throw new Error(`wrk failed: ${out.stdout}${out.stderr}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out.stdout);
  return { requests: Number(m[1]), errors: Number(m[2]) + Number(non2xx?.[1] ?? 0), p50: Number(m[3]), p99: Number(m[4]), seconds: Number(m[5]) / 1e6, cpu };
}

const floats = new Float32Array(784).map((_, i) => images[i] / 255);
const graphqlBody = path.join(work, 'graphql.json');
writeFileSync(graphqlBody, JSON.stringify({
  query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
  variables: { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: Buffer.from(floats.buffer).toString('base64') }] } },
}));
const oipBody = path.join(work, 'oip.json');
writeFileSync(oipBody, JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from(floats) }] }));

const runId = Date.now().toString(36);
const dbName = `modelgate_bench_tracing_${runId}`;
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(ADMIN_DB);
dbUrl.pathname = `/${dbName}`;
const baseEnv = {
  PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_PRETTY: 'false',
  MODEL_REPOSITORY: path.join(ROOT, 'models'), DATABASE_URL: dbUrl.toString(), SHUTDOWN_READINESS_GRACE_MS: '0',
  DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
  REDIS_URL, REDIS_KEY_PREFIX: `mgbench:${runId}:`, INFERENCE_WORKERS: '1', INFERENCE_IDLE_LOOP_WORKERS: '0',
};

const sinkPort = await freePort();
const sink = spawn(process.execPath, [path.join(ROOT, 'bench/otlp-sink.mjs'), String(sinkPort)], { stdio: ['ignore', 'ignore', 'inherit'] });
const sinkCount = async () => (await fetch(`http://127.0.0.1:${sinkPort}/count`)).json();

async function startGateway(name, env) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/main.js')], { env: { GRPC_PORT: '0', ...baseEnv, ...env, PORT: String(port), DATA_DIR: path.join(work, `data-${name}`) }, stdio: ['ignore', 'inherit', 'inherit'] });
  await waitReady(`http://127.0.0.1:${port}/readyz`, child, name, 900);
  return { name, child, url: `http://127.0.0.1:${port}` };
}

const boot = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', 'bootstrap', '--json'], { env: { ...baseEnv, DATA_DIR: path.join(work, 'boot') }, encoding: 'utf8' });
const key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
if (!key) throw new Error(`admin bootstrap failed: ${boot.stdout}${boot.stderr}`);
const headers = { authorization: `Bearer ${key}` };

const exporterEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`, OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_BSP_MAX_QUEUE_SIZE: '8192' };
const gateways = [];
const rows = [];
let spans = null;
let micro = null;

/**
 * The span work of one request alone, in this process (no HTTP, no model): a server span
 * continuing a traceparent plus the six step spans, ended, through the gateway's own
 * src/tracing; with the OTLP exporter to the sink (batching, JSON, HTTP included), and
 * with no exporter. CPU µs per request from process.cpuUsage over a fixed count.
 */
async function spanWorkPerRequest() {
  const require = createRequire(import.meta.url);
  const { createTracing } = require(path.join(ROOT, 'dist/tracing/tracing.js'));
  const { loadConfig } = require(path.join(ROOT, 'dist/config/index.js'));
  const { createLogger } = require(path.join(ROOT, 'dist/log/logger.js'));
  const quiet = createLogger({ level: 'silent', pretty: false });
  const measure = async (env, n) => {
    const tracing = createTracing(loadConfig(env).tracing, quiet);
    const one = async () => {
      const t = tracing.startRequest({ method: 'POST', route: '/graphql', path: '/graphql', requestId: 'bench', headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
      await t.step('authenticate', async (s) => s.set({ 'modelgate.tenant_id': 't', 'modelgate.api_key_prefix': 'mg_live_abcd' }));
      await t.step('admit', async (s) => s.set({ 'modelgate.limit.decision': 'allowed' }), { 'modelgate.compute_units': 1 });
      t.step('validate', () => 1, { 'modelgate.items': 1 });
      const now = performance.now();
      const attrs = { 'modelgate.model': 'fashion-cnn', 'modelgate.model_version': '1', 'modelgate.execution_provider': 'cpu', 'modelgate.items': 1, 'modelgate.batch_size': 8 };
      t.recorded('queue', now - 2, now - 1, attrs);
      t.recorded('compute', now - 1, now, attrs);
      await t.step('record', async () => undefined, { 'modelgate.usage.status': 'OK' });
      t.annotate({ 'modelgate.model': 'fashion-cnn', 'modelgate.usage.status': 'OK' });
      t.end(200);
    };
    for (let i = 0; i < 2000; i += 1) await one(); // warm-up
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i += 1) {
      await one();
      // Let the exporter's timers and sockets run, as they would between requests.
      if (i % 8 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    // A backlog beyond the exporter's concurrent-export limit fails the flush; the count below tells.
    await tracing.shutdown().catch((error) => log(`tracing shutdown: ${error.message}`));
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / n;
  };
  const n = 20000;
  const off = await measure({}, n);
  const before = (await sinkCount()).spans;
  const on = await measure({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`, OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_BSP_MAX_QUEUE_SIZE: '65536' }, n);
  return { n, off, on, received: (await sinkCount()).spans - before, sent: (n + 2000) * 7 };
}
try {
  gateways.push(await startGateway('off', {}));
  gateways.push(await startGateway('on', exporterEnv));
  gateways.push(await startGateway('sampled', { ...exporterEnv, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }));
  for (const gw of gateways) {
    const before = cpuSeconds(gw.child.pid);
    await new Promise((r) => setTimeout(r, 3000));
    gw.idleMsPerSecond = ((cpuSeconds(gw.child.pid) - before) * 1000) / 3;
  }
  for (const [route, url, body] of [['GraphQL infer', '/graphql', graphqlBody], ['OIP /v2 infer (JSON)', '/v2/models/fashion-cnn/infer', oipBody]]) {
    const row = { route };
    const runs = Object.fromEntries(gateways.map((gw) => [gw.name, []]));
    for (const gw of gateways) wrk(`${gw.url}${url}`, body, headers, 2, gw.child.pid); // warm-up (JIT, pools, caches)
    for (let round = 0; round < ROUNDS; round += 1) {
      for (let i = 0; i < gateways.length; i += 1) {
        const gw = gateways[(round + i) % gateways.length];
        log(`${route}, round ${round + 1}/${ROUNDS}: tracing ${gw.name}`);
        runs[gw.name].push(wrk(`${gw.url}${url}`, body, headers, SECONDS, gw.child.pid));
      }
    }
    for (const gw of gateways) {
      const sorted = runs[gw.name].sort((a, b) => a.cpu / a.requests - b.cpu / b.requests);
      row[gw.name] = sorted[Math.floor(sorted.length / 2)];
      row[`${gw.name}All`] = sorted.map((r) => (r.cpu * 1000) / r.requests);
    }
    rows.push(row);
  }
  await new Promise((r) => setTimeout(r, 1000));
  spans = await sinkCount();
  micro = await spanWorkPerRequest();
} finally {
  for (const gw of gateways) gw.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 2000));
  sink.kill();
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}

const f0 = (x) => Math.round(x).toLocaleString('en-US');
const f1 = (x) => x.toFixed(1);
const f3 = (x) => x.toFixed(3);
const cpuReq = (r) => (r.cpu * 1000) / r.requests;
const cell = (r, all) => `${f0(r.requests / r.seconds)}, ${f1(r.p50)}/${f1(r.p99)}, **${f3(cpuReq(r))}** [${all.map(f3).join(', ')}]${r.errors ? `, ${r.errors} errors` : ''}`;
const delta = (r, name) => `${cpuReq(r[name]) >= cpuReq(r.off) ? '+' : ''}${f3(cpuReq(r[name]) - cpuReq(r.off))} (${f0(((cpuReq(r[name]) - cpuReq(r.off)) / cpuReq(r.off)) * 100)} %)`;
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.availableParallelism()} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end; wrk 1 thread, ${CONCURRENCY} connections, ${SECONDS} s per run, ${ROUNDS} rounds in rotated order after a 2 s warm-up; fashion-cnn, 1 item per request; every request with a sampled traceparent. Cell: the median round's req/s, p50/p99 ms, **server CPU ms per request** [every round's CPU ms/req].`,
  '',
  '| route | tracing off (no exporter) | on (every span exported) | sampled 10 % | on − off, CPU ms/req | sampled − off |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.route} | ${cell(r.off, r.offAll)} | ${cell(r.on, r.onAll)} | ${cell(r.sampled, r.sampledAll)} | ${delta(r, 'on')} | ${delta(r, 'sampled')} |`),
  '',
  `Idle CPU before the runs, ms per second: ${gateways.map((gw) => `${gw.name} ${f1(gw.idleMsPerSecond ?? NaN)}`).join(', ')}.`,
  micro ? `The span work alone (\`src/tracing\` in the bench process, a server span continuing a traceparent + the six step spans, ${f0(micro.n)} requests, CPU incl. the exporter's batching, JSON and HTTP): **${f1(micro.on)} µs per request** exported (the sink got ${f0(micro.received)} of ${f0(micro.sent)} spans), ${f1(micro.off)} µs with no exporter.` : '',
  `The sink received ${spans ? `${f0(spans.spans)} spans in ${f0(spans.exports)} exports` : 'no count'} (the "on" and "sampled" gateways together, warm-ups included).`,
];
const section = lines.join('\n');
console.log(section);
writeResultsSection('tracing', `Tracing (\`npm run bench:tracing\`)`, section);
