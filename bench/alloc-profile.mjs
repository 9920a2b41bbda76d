#!/usr/bin/env node
// Where the event loop allocates per request (issue #25: a scavenge's pause grows with what the
// requests in flight keep alive, and its frequency with what each request allocates). Starts the
// full-path gateway (`node dist/main.js`, NODE_ENV=production, Postgres, Redis limits, durable
// usage) with the inspector on a spare port, loads it with wrk (BENCH_CONCURRENCY connections of a
// 1-item GraphQL infer on BENCH_MODEL), and samples the main isolate's allocations with V8's
// sampling heap profiler, counting objects the scavenger and the mark-compactor collected too (so
// the figure is what was allocated, not what survived). Prints KB allocated per request and the
// top allocating functions and packages.
//   npm run build:ts && node bench/alloc-profile.mjs [seconds=8]
//   BENCH_DIST=/other/dist profiles another build (e.g. a base kept by BENCH_GUARD_KEEP=1 npm run bench:guard)
//   BENCH_CALLERS=sort,all also prints who calls those functions (their three nearest callers)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { bootstrapKey, fixturePixels, freePort, fullPathGateway, graphqlImageInfer, log, startGateway } from './lib.mjs';

const SECONDS = Number(process.argv[2] ?? 8);
const MODEL = process.env.BENCH_MODEL ?? 'fashion-hybrid';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const DIST = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : undefined;
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-alloc-'));
const inferFile = path.join(work, 'infer.json');
writeFileSync(inferFile, graphqlImageInfer(MODEL, fixturePixels(1)));

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function inspector(port) {
  const [{ webSocketDebuggerUrl }] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  let next = 1;
  const pending = new Map();
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  };
  return {
    send: (method, params = {}) => new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    }),
    close: () => ws.close(),
  };
}

function areaOf(url) {
  if (!url) return '(native or V8)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  const own = /\/dist\/([^/]+)/.exec(url);
  if (own) return `modelgate ${own[1]}`;
  return url.startsWith('node:') ? url : 'other';
}

const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const databases = [];
let gateway;
try {
  const { env } = await fullPathGateway(admin, databases, { adminUrl: ADMIN_DB, redisUrl: REDIS_URL, name: `alloc_${process.pid}`, dataDir: path.join(work, 'data') });
  const key = bootstrapKey(env, DIST);
  const inspectPort = await freePort();
  gateway = await startGateway(env, { dist: DIST, nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`], what: 'gateway' });
  const cdp = await inspector(inspectPort);
  const lua = path.join(work, 'load.lua');
  writeFileSync(lua, `wrk.method = "POST"
local f = io.open(${JSON.stringify(inferFile)}, "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = ${JSON.stringify(`Bearer ${key}`)}
done = function(summary) io.write(string.format("RESULT %d %d\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout)) end
`);
  const runWrk = (seconds) => new Promise((resolve) => {
    const wrk = spawn('wrk', ['-t', '1', '-c', String(CONCURRENCY), '-d', `${seconds}s`, '--timeout', '10s', '-s', lua, `${gateway.url}/graphql`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    wrk.stdout.on('data', (d) => { out += d; });
    wrk.on('exit', () => {
      const m = /RESULT (\d+) (\d+)/.exec(out);
      resolve({ requests: Number(m?.[1] ?? 0), errors: Number(m?.[2] ?? 0) });
    });
  });
  log('warming up (3 s)');
  await runWrk(3);
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  log(`sampling allocations for ${SECONDS} s at c=${CONCURRENCY}`);
  const load = await runWrk(SECONDS);
  const { profile } = await cdp.send('HeapProfiler.stopSampling');
  cdp.close();
  const byFunction = new Map();
  const byArea = new Map();
  let total = 0;
  const CALLERS = (process.env.BENCH_CALLERS ?? '').split(',').filter(Boolean);
  const callers = new Map();
  const frameName = (f) => `${f.functionName || '(anonymous)'} ${areaOf(f.url)}${f.url ? `:${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`;
  const walk = (node, stack = []) => {
    const bytes = node.selfSize;
    if (bytes > 0 && CALLERS.includes(node.callFrame.functionName)) {
      const chain = `${node.callFrame.functionName} < ${stack.slice(-3).reverse().map(frameName).join(' < ')}`;
      callers.set(chain, (callers.get(chain) ?? 0) + bytes);
    }
    if (bytes > 0) {
      const f = node.callFrame;
      const name = `${f.functionName || '(anonymous)'} ${areaOf(f.url)}${f.url ? `:${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`;
      byFunction.set(name, (byFunction.get(name) ?? 0) + bytes);
      byArea.set(areaOf(f.url), (byArea.get(areaOf(f.url)) ?? 0) + bytes);
      total += bytes;
    }
    for (const child of node.children) walk(child, [...stack, node.callFrame]);
  };
  walk(profile.head);
  const pct = (v) => `${((100 * v) / total).toFixed(1).padStart(5)} %`;
  console.log(`\n# ${DIST ?? 'dist'}: ${MODEL} × 1 GraphQL infer, c=${CONCURRENCY}, ${SECONDS} s: ${load.requests} requests (${load.errors} errors), ` +
    `main isolate allocated ${(total / 1024 / 1024).toFixed(1)} MB = ${(total / 1024 / Math.max(1, load.requests)).toFixed(1)} KB per request (sampled every 1 KB)`);
  console.log('by area:');
  for (const [area, bytes] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(bytes)}  ${area}`);
  console.log('top allocating functions (self):');
  for (const [name, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${pct(bytes)}  ${name}`);
  console.log("the gateway's own functions (self):");
  for (const [name, bytes] of [...byFunction].filter(([name]) => name.includes(' modelgate ')).sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(bytes)}  ${name}`);
  if (CALLERS.length > 0) console.log(`callers of ${CALLERS.join(', ')}:`);
  for (const [chain, bytes] of [...callers].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(bytes)}  ${chain}`);
} finally {
  if (gateway && gateway.child.exitCode === null) {
    const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
    gateway.child.kill('SIGTERM');
    await exited;
  }
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}
