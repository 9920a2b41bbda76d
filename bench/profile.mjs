#!/usr/bin/env node
// CPU profile of the full-path gateway under wrk load (bench/PROFILE.md):
// PROFILE_MODEL=fashion-cnn picks the model (default fashion-hybrid).
// `node --cpu-prof dist/main.js` on Postgres + Redis, limits and usage on, an
// admin key; wrk runs one scenario, then SIGTERM writes the profiles (the main
// thread's and each inference worker's) and this prints a summary: self time
// by package/area and the top functions of the main thread, plus the server's
// CPU ms per request (utime+stime, all threads) over the same load.
//   npm run build:ts && node bench/profile.mjs [items=1] [concurrency=64] [seconds=10]
//   PROFILE_DOOR=oip sends the items as one OIP binary request instead of a GraphQL mutation.
//   PROFILE_MODEL_REPOSITORY=dir serves another repository (e.g. one whose model opts in to the response cache: every request a hit).
//   PROFILE_KEEP=dir keeps the .cpuprofile files there; PROFILE_DIST=/other/dist profiles another
//   build (e.g. main's, for the before summary); PROFILE_OFF=1 measures CPU without the profiler.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, readdirSync, mkdirSync, cpSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { oipImageRequest } from './lib.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const DIST = path.resolve(process.env.PROFILE_DIST ?? path.join(ROOT, 'dist'));
const [items = 1, concurrency = 64, seconds = 10] = process.argv.slice(2).map(Number);
const MODEL = process.env.PROFILE_MODEL ?? 'fashion-hybrid';
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const images = readFileSync(path.join(ROOT, 'test/fixtures/fashion-mnist-test-1000.bin'));
const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-profile-'));
const profDir = path.join(work, 'prof');
mkdirSync(profDir);

function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

const floats = new Float32Array(items * 784);
for (let i = 0; i < floats.length; i += 1) floats[i] = images[i % images.length] / 255;
// PROFILE_DOOR=oip: the same items as one OIP binary request (/v2/models/<model>/infer) instead of GraphQL.
const DOOR = process.env.PROFILE_DOOR ?? 'graphql';
const bodyFile = path.join(work, 'body.json');
const oip = oipImageRequest(floats);
if (DOOR === 'oip') writeFileSync(bodyFile, oip.body);
else writeFileSync(bodyFile, JSON.stringify({
  query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
  variables: { input: { model: MODEL, inputs: [{ name: 'image', datatype: 'FP32', shape: [items, 1, 28, 28], dataBase64: Buffer.from(floats.buffer).toString('base64') }] } },
}));

const runId = Date.now().toString(36);
const dbName = `modelgate_profile_${runId}`;
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(ADMIN_DB);
dbUrl.pathname = `/${dbName}`;
const port = await freePort();
const env = {
  PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), GRPC_PORT: '0', LOG_LEVEL: 'warn', LOG_PRETTY: 'false',
  MODEL_REPOSITORY: process.env.PROFILE_MODEL_REPOSITORY ?? path.join(ROOT, 'models'), DATABASE_URL: dbUrl.toString(), DATA_DIR: path.join(work, 'data'),
  REDIS_URL, REDIS_KEY_PREFIX: `mgprofile:${runId}:`, SHUTDOWN_READINESS_GRACE_MS: '0',
  DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(INFERENCE_|GATEWAY_|RATE_LIMITS_|USAGE_)/.test(k))),
};
const boot = spawnSync(process.execPath, [path.join(DIST, 'cli/main.js'), 'admin', 'bootstrap', '--json'], { env, encoding: 'utf8' });
const key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
if (!key) throw new Error(`bootstrap failed: ${boot.stdout}${boot.stderr}`);

const child = spawn(process.execPath, [...(process.env.PROFILE_NODE_ARGS ?? '').split(' ').filter(Boolean), ...(process.env.PROFILE_OFF ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`]), path.join(DIST, 'main.js')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
for (let i = 0; ; i += 1) {
  try { if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break; } catch { /* starting */ }
  if (i > 600) throw new Error('gateway not ready');
  await new Promise((r) => setTimeout(r, 100));
}
const script = path.join(work, 'wrk.lua');
const contentHeaders = DOOR === 'oip'
  ? `wrk.headers["content-type"]="application/octet-stream"\nwrk.headers["inference-header-content-length"]="${oip.headerLength}"\n`
  : 'wrk.headers["content-type"]="application/json"\n';
writeFileSync(script, `wrk.method="POST"\nlocal f=io.open(${JSON.stringify(bodyFile)},"rb"); wrk.body=f:read("*a"); f:close()\n${contentHeaders}wrk.headers["authorization"]="Bearer ${key}"\n`);
const wrkArgs = ['-t', '1', '-c', String(concurrency), '--latency', '-s', script, DOOR === 'oip' ? `http://127.0.0.1:${port}/v2/models/${MODEL}/infer` : `http://127.0.0.1:${port}/graphql`];
spawnSync('wrk', [...wrkArgs.slice(0, 4), '-d', '2s', ...wrkArgs.slice(4)]); // warm-up (JIT, pools)
const cpu0 = cpuSeconds(child.pid);
// Profile timestamps are CLOCK_MONOTONIC microseconds, as process.hrtime is: only the load window counts.
const window0 = Number(process.hrtime.bigint() / 1000n);
const out = spawnSync('wrk', [...wrkArgs.slice(0, 4), '-d', `${seconds}s`, ...wrkArgs.slice(4)], { encoding: 'utf8' });
const cpu = cpuSeconds(child.pid) - cpu0;
const window1 = Number(process.hrtime.bigint() / 1000n);
const requests = Number(/(\d+) requests in/.exec(out.stdout)?.[1] ?? 0);
child.kill('SIGTERM');
const exit = await new Promise((r) => child.on('exit', (code, signal) => r(signal ?? code)));
if (exit !== 0) console.error(`gateway exited with ${exit}`);
await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
await admin.end();

/** Where a function's self time goes: a package, an area of dist/, node internals, or the VM's own buckets. */
function bucket(url, name) {
  if (!url) return `(${name || 'native'})`.replace(/^\(\((.*)\)\)$/, '($1)');
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[1] ?? url.slice(5)}`;
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `modelgate ${url.slice(dist + 6).split('/')[0]}`;
  return url;
}

function summarize(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  let at = prof.startTime;
  for (let i = 0; i < prof.samples.length; i += 1) {
    const dt = prof.timeDeltas[i] ?? 0;
    at += dt;
    if (at < window0 || at > window1) continue;
    total += dt / 1000;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt / 1000);
  }
  const buckets = new Map();
  const fns = new Map();
  const own = new Map();
  for (const [id, ms] of self) {
    const { callFrame: cf } = byId.get(id);
    const b = bucket(cf.url, cf.functionName);
    buckets.set(b, (buckets.get(b) ?? 0) + ms);
    const fn = `${cf.functionName || '(anonymous)'} ${cf.url ? `${bucket(cf.url)}:${path.basename(cf.url)}:${cf.lineNumber + 1}` : ''}`.trim();
    fns.set(fn, (fns.get(fn) ?? 0) + ms);
    if (b.startsWith('modelgate ')) own.set(fn, (own.get(fn) ?? 0) + ms);
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `  ${(100 * v / total).toFixed(1).padStart(5)} %  ${k}`);
  return {
    total,
    text: ['by area (self time):', ...top(buckets, 18), 'top functions (self time):', ...top(fns, 25), "the gateway's own code, top functions (self time):", ...top(own, 20)].join('\n'),
  };
}

const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f));
// The main thread's profile is the one with the most samples in fastify/graphql; workers hold onnxruntime only.
const summaries = files.map((f) => ({ f, ...summarize(f) })).sort((a, b) => Number(/fastify|graphql/.test(b.text)) - Number(/fastify|graphql/.test(a.text)));
console.log(`# ${path.relative(process.cwd(), DIST) || DIST}: ${MODEL} × ${items} items, c=${concurrency}, ${seconds} s: ${requests} requests, server CPU ${(cpu * 1000 / requests).toFixed(3)} ms/request (all threads)`);
console.log(out.stdout.split('\n').filter((l) => /Latency|50%|99%|Requests\/sec/.test(l)).join('\n'));
for (const [i, s] of summaries.entries()) {
  console.log(`\n## ${i === 0 ? 'main thread' : `thread ${i} (inference worker)`} — ${(s.total / 1000).toFixed(1)} s of samples in the load window`);
  console.log(i === 0 ? s.text : s.text.split('\n').slice(0, 8).join('\n'));
}
if (process.env.PROFILE_KEEP) cpSync(profDir, process.env.PROFILE_KEEP, { recursive: true });
rmSync(work, { recursive: true, force: true });
