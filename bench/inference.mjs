#!/usr/bin/env node
// Inference benchmark on the full path users run, every row side by side in one run:
//   full    the gateway (`node dist/main.js`, NODE_ENV=production) on Postgres + Redis,
//           rate limits on, usage records on, an admin key
//   nolimit the same gateway with RATE_LIMITS_ENABLED=false and no Redis (the cost of limits);
//           usage recording cannot be turned off (billing), so no row drops it
//   bare    a bare node:http server calling onnxruntime-node directly (single-item rows only)
//   ort     onnxruntime-node in-process at the same batch size and thread budget as the
//           gateway's workers (the compute floor), and with every core (intraOp = cores)
// Load comes from wrk (C, Debian's package: `apt-get install wrk`), so the load generator
// costs the server little of the two cores. For every row: items/s, p50/p99, and server CPU
// per request and per item from /proc/<pid>/stat (utime+stime, all threads) — the figure
// that holds on a noisy machine; throughput swings ±30 % run to run here.
// Usage: npm run bench:inference
//   BENCH_SECONDS=5 per row; BENCH_MODELS=fashion-cnn,fashion-hybrid; BENCH_ITEMS=1,16,64;
//   BENCH_CONCURRENCY_SINGLE=64 (1-item rows); BENCH_CONCURRENCY_MULTI=8 (multi-item rows);
//   BENCH_BASELINE_DIST=/path/to/other/dist adds a "baseline" column: the same full path on
//   another build (e.g. main's), measured in the same run, rows interleaved, for before/after.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import * as ort from 'onnxruntime-node';
import { ROOT, cpuSeconds, fixtureImages, freePort, log, waitReady, writeResultsSection } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const MODELS = (process.env.BENCH_MODELS ?? 'fashion-cnn,fashion-hybrid').split(',');
const ITEMS = (process.env.BENCH_ITEMS ?? '1,16,64').split(',').map(Number);
const C_SINGLE = Number(process.env.BENCH_CONCURRENCY_SINGLE ?? 64);
const C_MULTI = Number(process.env.BENCH_CONCURRENCY_MULTI ?? 8);
const BASELINE_DIST = process.env.BENCH_BASELINE_DIST ? path.resolve(process.env.BENCH_BASELINE_DIST) : null;
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const images = fixtureImages();

if (spawnSync('wrk', ['--version']).error) {
  console.error('bench:inference needs wrk (apt-get install wrk)');
  process.exit(2);
}

function floats(n) {
  const f = new Float32Array(n * 784);
  for (let i = 0; i < f.length; i += 1) f[i] = images[i % images.length] / 255;
  return f;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-'));

/** Runs wrk against url with a POST body; returns requests, non-2xx, p50/p99 ms and the server's CPU seconds. */
function wrk(url, bodyFile, headers, concurrency, seconds, serverPid) {
  const script = path.join(work, `wrk-${Math.random().toString(36).slice(2)}.lua`);
  writeFileSync(script, `
wrk.method = "POST"
local f = io.open(${JSON.stringify(bodyFile)}, "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["content-type"] = "application/json"
${Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`).join('\n')}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %d\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration))
end
`);
  const before = serverPid ? cpuSeconds(serverPid) : 0;
  const out = spawnSync('wrk', ['-t', '1', '-c', String(concurrency), '-d', `${seconds}s`, '--timeout', '10s', '-s', script, url], { encoding: 'utf8' });
  const cpu = serverPid ? cpuSeconds(serverPid) - before : 0;
  const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(out.stdout);
  if (!m) throw new Error(`wrk failed: ${out.stdout}${out.stderr}`);
  const requests = Number(m[1]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out.stdout);
  return { requests, errors: Number(m[2]) + Number(non2xx?.[1] ?? 0), p50: Number(m[3]), p99: Number(m[4]), seconds: Number(m[5]) / 1e6, cpu };
}

/** onnxruntime in-process: ms of wall and CPU per item at a batch size and thread count. */
async function ortPerItem(modelPath, batch, threads) {
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1 });
  const feeds = { image: new ort.Tensor('float32', floats(batch), [batch, 1, 28, 28]) };
  for (let i = 0; i < 10; i += 1) await session.run(feeds);
  let runs = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  while (performance.now() - start < 1500) { await session.run(feeds); runs += 1; }
  const wallMs = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  await session.release();
  const items = runs * batch;
  return { itemsPerSecond: items / (wallMs / 1000), cpuMsPerItem: (cpu.user + cpu.system) / 1000 / items };
}

function bodyFile(model, items) {
  const file = path.join(work, `${model}-${items}.json`);
  writeFileSync(file, JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
    variables: { input: { model, inputs: [{ name: 'image', datatype: 'FP32', shape: [items, 1, 28, 28], dataBase64: Buffer.from(floats(items).buffer).toString('base64') }] } },
  }));
  return file;
}

// One database per run on the machine's Postgres (dropped after), one Redis prefix.
const runId = `${Date.now().toString(36)}`;
const dbName = `modelgate_bench_${runId}`;
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(ADMIN_DB);
dbUrl.pathname = `/${dbName}`;

const generous = {
  DEFAULT_REQUESTS_PER_MINUTE: '100000000',
  DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
};
const baseEnv = {
  PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_PRETTY: 'false',
  MODEL_REPOSITORY: path.join(ROOT, 'models'), DATABASE_URL: dbUrl.toString(), DATA_DIR: path.join(work, 'data'),
  SHUTDOWN_READINESS_GRACE_MS: '0', ...generous,
};

async function startGateway(name, env, dist = path.join(ROOT, 'dist')) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(dist, 'main.js')], { env: { GRPC_PORT: '0', ...baseEnv, ...env, PORT: String(port), DATA_DIR: path.join(work, `data-${name}`) }, stdio: ['ignore', 'inherit', 'inherit'] });
  await waitReady(`http://127.0.0.1:${port}/readyz`, child, name, 900);
  return { name, child, url: `http://127.0.0.1:${port}` };
}

const boot = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', 'bootstrap', '--json'], { env: { ...baseEnv }, encoding: 'utf8' });
const key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
if (!key) throw new Error(`admin bootstrap failed: ${boot.stdout}${boot.stderr}`);
const headers = { authorization: `Bearer ${key}` };

log(`gateways: full path (Postgres + Redis, limits on, usage on) and limits off; ${os.availableParallelism()} cores`);
const full = await startGateway('full', { REDIS_URL, REDIS_KEY_PREFIX: `mgbench:${runId}:` });
const nolimit = await startGateway('nolimit', { RATE_LIMITS_ENABLED: 'false' });
const baseline = BASELINE_DIST ? await startGateway('baseline', { REDIS_URL, REDIS_KEY_PREFIX: `mgbench:${runId}:b:` }, BASELINE_DIST) : null;
const gateways = baseline ? [baseline, full, nolimit] : [full, nolimit];

const rows = [];
let health = null;
try {
  for (const model of MODELS) {
    const modelPath = path.join(ROOT, 'models', model, '1', 'model.onnx');
    const barePort = await freePort();
    const bare = spawn(process.execPath, [path.join(ROOT, 'bench/bare-server.mjs'), modelPath, String(barePort)], { stdio: ['ignore', 'ignore', 'inherit'] });
    await new Promise((r) => setTimeout(r, 1500));
    for (const items of ITEMS) {
      const c = items === 1 ? C_SINGLE : C_MULTI;
      const body = bodyFile(model, items);
      const row = { model, items, concurrency: c };
      for (const gw of gateways) {
        log(`${model} × ${items}, c=${c}: ${gw.name}`);
        wrk(`${gw.url}/graphql`, body, headers, c, 2, gw.child.pid); // warm-up (JIT, pools, caches)
        row[gw.name] = wrk(`${gw.url}/graphql`, body, headers, c, SECONDS, gw.child.pid);
      }
      if (items === 1) {
        log(`${model} × 1: bare node:http + onnxruntime`);
        row.bare = wrk(`http://127.0.0.1:${barePort}/graphql`, body, {}, c, SECONDS, bare.pid);
      }
      log(`${model} × ${items}: onnxruntime in-process (1 thread, and ${os.availableParallelism()} threads)`);
      row.ort1 = await ortPerItem(modelPath, items, 1);
      row.ortAll = await ortPerItem(modelPath, items, os.availableParallelism());
      rows.push(row);
    }
    bare.kill();
  }
  const last = MODELS[MODELS.length - 1];
  log(`health p99 while ${last} × 1 saturates the full-path gateway`);
  const healthFile = path.join(work, 'health.json');
  writeFileSync(healthFile, JSON.stringify({ query: '{ health { status } }' }));
  const loadFile = bodyFile(last, 1);
  writeFileSync(path.join(work, 'load.lua'), `wrk.method="POST"\nlocal f=io.open(${JSON.stringify(loadFile)},"rb"); wrk.body=f:read("*a"); f:close()\nwrk.headers["content-type"]="application/json"\nwrk.headers["authorization"]=${JSON.stringify(headers.authorization)}\n`);
  const healthUnderLoad = (gw) => {
    const loader = spawn('wrk', ['-t', '1', '-c', String(C_SINGLE), '-d', `${SECONDS + 2}s`, '-s', path.join(work, 'load.lua'), `${gw.url}/graphql`], { stdio: 'ignore' });
    spawnSync('sleep', ['1']);
    const result = wrk(`${gw.url}/graphql`, healthFile, {}, 1, SECONDS, null);
    loader.kill();
    spawnSync('sleep', ['1']);
    return result;
  };
  if (baseline) health = { baseline: healthUnderLoad(baseline) };
  health = { ...health, full: healthUnderLoad(full) };
} finally {
  for (const gw of gateways) gw.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 2000));
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const ips = (r, items) => (r.requests * items) / r.seconds;
const cpuReq = (r) => (r.cpu * 1000) / r.requests;
const cell = (r, items) => (r ? `${f0(ips(r, items))}, ${f1(r.p50)}/${f1(r.p99)}, **${f3(cpuReq(r))}** / ${f3(cpuReq(r) / items)}${r.errors ? `, ${r.errors} errors` : ''}` : '—');
const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'cpu'}), load average ${load} at the end, ${SECONDS} s per row after a 2 s warm-up, wrk (1 thread) as load generator; ${C_SINGLE} connections for 1-item rows, ${C_MULTI} for multi-item rows. Each cell: items/s, p50/p99 ms, **server CPU ms per request** / per item (utime+stime of the server process, all threads).`,
  '',
  `| model | items/req |${baseline ? ' baseline build, full path |' : ''} full path (PG + Redis + limits + usage) | limits off | bare node:http + ort | ort in-process 1 thread: items/s, CPU ms/item | ort in-process all cores: items/s | full ÷ ort(all cores) items/s |`,
  `|---|---|${baseline ? '---|' : ''}---|---|---|---|---|---|`,
  ...rows.map((r) => `| ${r.model} | ${r.items} |${baseline ? ` ${cell(r.baseline, r.items)} |` : ''} ${cell(r.full, r.items)} | ${cell(r.nolimit, r.items)} | ${cell(r.bare, r.items)} | ${f0(r.ort1.itemsPerSecond)}, ${f3(r.ort1.cpuMsPerItem)} | ${f0(r.ortAll.itemsPerSecond)} | ${f2(ips(r.full, r.items) / r.ortAll.itemsPerSecond)} |`),
  '',
  ...Object.entries(health ?? {}).map(([name, h]) => `Cheap query (\`health\`, one connection) while ${MODELS[MODELS.length - 1]} × 1 saturates the ${name === 'baseline' ? 'baseline build\'s' : 'full-path'} gateway at ${C_SINGLE} connections: p50 ${f1(h.p50)} ms, p99 ${f1(h.p99)} ms over ${h.requests} queries.`),
  baseline ? `\nBaseline build: ${BASELINE_DIST}.` : '',
];
const section = lines.join('\n');
console.log(section);
writeResultsSection('inference', `Inference (\`npm run bench:inference\`)`, section);
