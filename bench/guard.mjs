#!/usr/bin/env node
// Watch the sum (README, Contributing): this working tree against the merge base with main (or
// BENCH_GUARD_BASE=<commit>), side by side in one run, on the full path (Postgres + Redis limits +
// durable usage, `node dist/main.js`, NODE_ENV=production). The base is built in a temporary git
// worktree beside this one (node_modules symlinked, Prisma client generated, tsc), then both builds
// serve from their own database and rows alternate base/current, several rounds, so the machine's
// load swings hit both alike. Reported per model (BENCH_MODELS, default fashion-hybrid,fashion-cnn):
//   single-item requests at c=1: p50, p99 and server CPU ms per request;
//   single-item requests at c=BENCH_CONCURRENCY_SINGLE (64): server CPU ms per request;
// the medians over the rounds, and current ÷ base. CPU is utime+stime of the server process, all
// threads (/proc/<pid>/stat): the figure that holds on a busy machine; throughput does not.
//   npm run bench:guard
//   BENCH_GUARD_BASE=<commit>    base to compare with (default: git merge-base HEAD main)
//   BENCH_GUARD_BASE_DIST=<dir>  an already built base dist/ (skips the worktree build)
//   BENCH_GUARD_KEEP=1           keep the base worktree (its path is printed) for a later run
//   BENCH_SECONDS=5 per row, BENCH_ROUNDS=3, BENCH_CONCURRENCY_SINGLE=64, BENCH_MODELS=...
// Needs wrk (apt-get install wrk), Postgres and Redis as bench:inference does. Does not touch
// bench/RESULTS.md: paste its table into the change's description.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ROOT, cpuSeconds, fixtureImages, freePort, log, waitReady } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MODELS = (process.env.BENCH_MODELS ?? 'fashion-hybrid,fashion-cnn').split(',');
const C_SINGLE = Number(process.env.BENCH_CONCURRENCY_SINGLE ?? 64);
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

if (spawnSync('wrk', ['--version']).error) {
  console.error('bench:guard needs wrk (apt-get install wrk)');
  process.exit(2);
}

const git = (...args) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
const run = (what, cmd, args, cwd) => {
  log(what);
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status})`);
};

// ---- the two builds -------------------------------------------------------------------------
const head = git('rev-parse', '--short', 'HEAD');
const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
const currentDist = path.join(ROOT, 'dist');
run('building the working tree (npm run build:ts)', 'npm', ['run', '--silent', 'build:ts'], ROOT);

let baseDist = process.env.BENCH_GUARD_BASE_DIST ? path.resolve(process.env.BENCH_GUARD_BASE_DIST) : null;
let baseLabel = baseDist ?? '';
let worktree = null;
if (!baseDist) {
  const base = process.env.BENCH_GUARD_BASE ?? git('merge-base', 'HEAD', 'main');
  const short = git('rev-parse', '--short', base);
  baseLabel = short;
  worktree = mkdtempSync(path.join(os.tmpdir(), `modelgate-guard-${short}-`));
  rmSync(worktree, { recursive: true, force: true });
  run(`base ${short}: git worktree add ${worktree}`, 'git', ['worktree', 'add', '--detach', worktree, base], ROOT);
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(worktree, 'node_modules'));
  if (existsSync(path.join(worktree, 'scripts/prisma-generate.js'))) run(`base ${short}: prisma generate`, process.execPath, ['scripts/prisma-generate.js'], worktree);
  run(`base ${short}: tsc`, process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], worktree);
  baseDist = path.join(worktree, 'dist');
}
const removeWorktree = () => {
  if (!worktree) return;
  if (process.env.BENCH_GUARD_KEEP) {
    log(`base worktree kept: ${worktree} (BENCH_GUARD_BASE_DIST=${baseDist}; git worktree remove --force ${worktree} when done)`);
    return;
  }
  spawnSync('git', ['worktree', 'remove', '--force', worktree], { cwd: ROOT, stdio: 'ignore' });
  rmSync(worktree, { recursive: true, force: true });
};

// ---- load --------------------------------------------------------------------------------------
const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-guard-run-'));
const images = fixtureImages();
function bodyFile(model) {
  const f = new Float32Array(784);
  for (let i = 0; i < f.length; i += 1) f[i] = images[i] / 255;
  const file = path.join(work, `${model}.json`);
  writeFileSync(file, JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
    variables: { input: { model, inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: Buffer.from(f.buffer).toString('base64') }] } },
  }));
  return file;
}

function wrk(url, body, authorization, concurrency, seconds, pid) {
  const script = path.join(work, `wrk-${concurrency}.lua`);
  writeFileSync(script, `
wrk.method = "POST"
local f = io.open(${JSON.stringify(body)}, "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = ${JSON.stringify(authorization)}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
`);
  const before = cpuSeconds(pid);
  const out = spawnSync('wrk', ['-t', '1', '-c', String(concurrency), '-d', `${seconds}s`, '--timeout', '10s', '-s', script, url], { encoding: 'utf8' });
  const cpu = cpuSeconds(pid) - before;
  const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+)/.exec(out.stdout);
  if (!m) throw new Error(`wrk failed: ${out.stdout}${out.stderr}`);
  const requests = Number(m[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out.stdout)?.[1] ?? 0);
  return { requests, errors: Number(m[2]) + non2xx, p50: Number(m[3]), p99: Number(m[4]), cpuMsPerRequest: (cpu * 1000) / Math.max(1, requests) };
}

// ---- gateways: one database each ---------------------------------------------------------------
const runId = Date.now().toString(36);
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const databases = [];
async function gateway(name, dist) {
  const dbName = `modelgate_guard_${runId}_${name}`;
  await admin.query(`CREATE DATABASE "${dbName}"`);
  databases.push(dbName);
  const dbUrl = new URL(ADMIN_DB);
  dbUrl.pathname = `/${dbName}`;
  const env = {
    PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_PRETTY: 'false', GRPC_PORT: '0',
    MODEL_REPOSITORY: path.join(ROOT, 'models'), DATABASE_URL: dbUrl.toString(), DATA_DIR: path.join(work, `data-${name}`),
    REDIS_URL, REDIS_KEY_PREFIX: `mgguard:${runId}:${name}:`, SHUTDOWN_READINESS_GRACE_MS: '0',
    DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
  };
  const boot = spawnSync(process.execPath, [path.join(dist, 'cli/main.js'), 'admin', 'bootstrap', '--json'], { env, encoding: 'utf8' });
  const key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
  if (!key) throw new Error(`${name}: admin bootstrap failed: ${boot.stdout}${boot.stderr}`);
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(dist, 'main.js')], { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] });
  await waitReady(`http://127.0.0.1:${port}/readyz`, child, name, 900);
  return { name, child, url: `http://127.0.0.1:${port}/graphql`, authorization: `Bearer ${key}` };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

const results = {}; // model -> row -> build -> [results]
let gateways = [];
try {
  log(`gateways: base ${baseLabel} and current ${head}${dirty ? ' (+ uncommitted changes)' : ''}; ${os.availableParallelism()} cores, load ${os.loadavg()[0].toFixed(2)}`);
  gateways = [await gateway('base', baseDist), await gateway('current', currentDist)];
  const rows = [{ label: 'c=1', concurrency: 1 }, { label: `c=${C_SINGLE}`, concurrency: C_SINGLE }];
  for (const model of MODELS) {
    const body = bodyFile(model);
    results[model] = {};
    for (const row of rows) {
      results[model][row.label] = { base: [], current: [] };
      for (const gw of gateways) wrk(gw.url, body, gw.authorization, row.concurrency, 2, gw.child.pid); // warm-up
      for (let round = 0; round < ROUNDS; round += 1) {
        // Alternate which build goes first, so a load swing does not favour one.
        const order = round % 2 === 0 ? gateways : [...gateways].reverse();
        for (const gw of order) {
          const r = wrk(gw.url, body, gw.authorization, row.concurrency, SECONDS, gw.child.pid);
          results[model][row.label][gw.name].push(r);
          log(`${model} × 1, ${row.label}, round ${round + 1}/${ROUNDS}, ${gw.name}: ${r.cpuMsPerRequest.toFixed(3)} ms CPU/req, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.requests} requests${r.errors ? `, ${r.errors} ERRORS` : ''}`);
        }
      }
    }
  }
} finally {
  for (const gw of gateways) gw.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 2000));
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
  removeWorktree();
}

// ---- the table ---------------------------------------------------------------------------------
const f = (x, d = 3) => x.toFixed(d);
const ratio = (a, b) => `**${(b / a).toFixed(2)}×**`;
const lines = [
  `bench:guard ${new Date().toISOString().slice(0, 16)}Z, ${os.availableParallelism()} cores, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end; base ${baseLabel}, current ${head}${dirty ? '+changes' : ''}; single-item requests, ${ROUNDS} alternating rounds × ${SECONDS} s per cell, medians.`,
  '',
  '| model | measure | base | current | current ÷ base |',
  '|---|---|---|---|---|',
];
let errors = 0;
for (const model of MODELS) {
  for (const [label, byBuild] of Object.entries(results[model] ?? {})) {
    for (const b of ['base', 'current']) errors += byBuild[b].reduce((n, r) => n + r.errors, 0);
    const m = (b, k) => median(byBuild[b].map((r) => r[k]));
    lines.push(`| ${model} | CPU ms/req, ${label} | ${f(m('base', 'cpuMsPerRequest'))} | ${f(m('current', 'cpuMsPerRequest'))} | ${ratio(m('base', 'cpuMsPerRequest'), m('current', 'cpuMsPerRequest'))} |`);
    if (label === 'c=1') {
      lines.push(`| ${model} | p50 ms, c=1 | ${f(m('base', 'p50'), 2)} | ${f(m('current', 'p50'), 2)} | ${ratio(m('base', 'p50'), m('current', 'p50'))} |`);
      lines.push(`| ${model} | p99 ms, c=1 | ${f(m('base', 'p99'), 2)} | ${f(m('current', 'p99'), 2)} | ${ratio(m('base', 'p99'), m('current', 'p99'))} |`);
    }
  }
}
if (errors) lines.push('', `**${errors} requests failed** (see the log above).`);
console.log(lines.join('\n'));
if (errors) process.exitCode = 1;
