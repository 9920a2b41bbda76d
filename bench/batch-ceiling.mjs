#!/usr/bin/env node
// How close 64-item batches can come to onnxruntime on this machine (issue #25, "64-item batches
// ≥ 0.8× in-process onnxruntime on every core"): side by side in alternating rounds, one model,
// 64-item OIP binary requests from wrk at 8 connections, to
//   gateway       the production gateway (`node dist/main.js`, Postgres, Redis limits, durable usage)
//   bare-http     node:http + the OIP binary framing + onnxruntime on the event loop with every core
//                 (no auth, limits, usage, batching): what HTTP alone leaves of the runtime here
//   onnxruntime   session.run on 64-item tensors in this process, every core, no HTTP (the target's 1.0)
// Items/s and server CPU per item; the ratios to onnxruntime are the figures. On a machine where wrk
// shares the cores with the server, bare-http is the ceiling the gateway can approach.
//   npm run build:ts && node bench/batch-ceiling.mjs        (BENCH_MODEL=fashion-hybrid, BENCH_SECONDS=4, BENCH_ROUNDS=3,
//   BENCH_GATEWAY_ENV='NAME=value,…' for the gateway, BENCH_WRK_NICE=19 for a load generator that yields the cores)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import * as ort from 'onnxruntime-node';
import { ROOT, addThreadCpu, bootstrapKey, cpuSeconds, threadCpu, fixtureImages, freePort, log, oipImageRequest, startGateway, waitReady } from './lib.mjs';

const MODEL = process.env.BENCH_MODEL ?? 'fashion-hybrid';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ITEMS = 64;
const WRK_NICE = Number(process.env.BENCH_WRK_NICE ?? 0);
const CONCURRENCY = 8;
const DIST = path.resolve(process.env.BENCH_DIST ?? path.join(ROOT, 'dist'));
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const MODEL_FILE = path.join(ROOT, 'models', MODEL, '1', 'model.onnx');

const images = fixtureImages();

const pixels = Float32Array.from(images.subarray(0, ITEMS * 784), (v) => v / 255);
const request = oipImageRequest(pixels);
const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-batch-ceiling-'));
const bodyFile = path.join(work, 'body.bin');
writeFileSync(bodyFile, request.body);

function wrk(url, headers) {
  const script = path.join(work, `${Object.keys(headers).length}.lua`);
  writeFileSync(script, [
    'wrk.method = "POST"',
    `local f = io.open(${JSON.stringify(bodyFile)}, "rb")`,
    'wrk.body = f:read("*a")',
    'f:close()',
    ...Object.entries({ ...headers, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(request.headerLength) }).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
  ].join('\n'));
  return new Promise((resolve, reject) => {
    // BENCH_WRK_NICE=19: the load generator yields the cores to the servers (a client on another host).
    const wrkArgs = ['-t1', `-c${CONCURRENCY}`, `-d${SECONDS}s`, '-s', script, url];
    const child = WRK_NICE ? spawn('nice', ['-n', String(WRK_NICE), 'wrk', ...wrkArgs], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn('wrk', wrkArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}`));
      const completed = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      resolve({ ok: completed - errors, errors });
    });
  });
}

const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const dbName = `modelgate_ceiling_${process.pid}`;
await admin.query(`CREATE DATABASE "${dbName}"`);
const children = [];
try {
  const dbUrl = new URL(ADMIN_DB);
  dbUrl.pathname = `/${dbName}`;
  const gwPort = await freePort();
  const env = {
    PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(gwPort), LOG_LEVEL: 'warn', LOG_PRETTY: 'false', GRPC_PORT: '0',
    MODEL_REPOSITORY: path.join(ROOT, 'models'), DATABASE_URL: dbUrl.toString(), DATA_DIR: path.join(work, 'data'),
    REDIS_URL, REDIS_KEY_PREFIX: `mgceiling:${process.pid}:`, SHUTDOWN_READINESS_GRACE_MS: '0',
    DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
    // BENCH_GATEWAY_ENV='NAME=value,NAME=value' tries a setting (e.g. INFERENCE_INTRA_OP_THREADS=2).
    ...Object.fromEntries((process.env.BENCH_GATEWAY_ENV ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
  };
  const key = bootstrapKey(env, DIST);
  const gateway = await startGateway(env, { dist: DIST });
  children.push(gateway.child);
  const barePort = await freePort();
  const bare = spawn(process.execPath, [path.join(ROOT, 'bench/bare-oip-server.mjs'), MODEL_FILE, String(barePort), 'inline', String(os.availableParallelism())], { stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(bare);
  await waitReady(`http://127.0.0.1:${barePort}/v2/health/ready`, bare, 'bare server');

  // onnxruntime alone: 64-item runs back to back for the same window, every core.
  const session = await ort.InferenceSession.create(MODEL_FILE, { executionProviders: ['cpu'], intraOpNumThreads: os.availableParallelism() });
  const feeds = { image: new ort.Tensor('float32', pixels, [ITEMS, 1, 28, 28]) };
  const runtimeAlone = async () => {
    const end = performance.now() + SECONDS * 1000;
    let runs = 0;
    while (performance.now() < end) {
      await session.run(feeds);
      runs += 1;
    }
    return runs * ITEMS / SECONDS;
  };
  await runtimeAlone();

  const cells = [
    { name: 'gateway', url: `${gateway.url}/v2/models/${MODEL}/infer`, headers: { authorization: `Bearer ${key}` }, pid: gateway.child.pid, items: [], cpu: [], threads: new Map() },
    { name: 'bare-http', url: `http://127.0.0.1:${barePort}/v2/models/${MODEL}/infer`, headers: {}, pid: bare.pid, items: [], cpu: [] },
  ];
  const runtime = [];
  log(`${MODEL}, ${ITEMS}-item OIP binary at ${CONCURRENCY} connections, ${SECONDS} s cells, ${ROUNDS} rounds; ${os.availableParallelism()} cores, load ${os.loadavg()[0].toFixed(2)}`);
  for (const c of cells) await wrk(c.url, c.headers); // warm-up
  for (let r = 1; r <= ROUNDS; r += 1) {
    for (const c of r % 2 ? cells : [...cells].reverse()) {
      const before = cpuSeconds(c.pid);
      const threadsBefore = threadCpu(c.pid);
      const { ok, errors } = await wrk(c.url, c.headers);
      if (c.name === 'gateway') addThreadCpu(c.threads, c.pid, threadsBefore);
      if (errors) throw new Error(`${c.name}: ${errors} failed requests`);
      c.items.push((ok * ITEMS) / SECONDS);
      c.cpu.push(((cpuSeconds(c.pid) - before) * 1000) / (ok * ITEMS));
    }
    runtime.push(await runtimeAlone());
    log(`round ${r}/${ROUNDS}: gateway ${Math.round(cells[0].items.at(-1))}, bare-http ${Math.round(cells[1].items.at(-1))}, onnxruntime ${Math.round(runtime.at(-1))} items/s; load ${os.loadavg()[0].toFixed(2)}`);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rt = median(runtime);
  console.log(`\nbench:batch-ceiling ${new Date().toISOString().slice(0, 16)}Z, ${MODEL}, ${ITEMS}-item OIP binary, c=${CONCURRENCY}, ${ROUNDS} rounds × ${SECONDS} s, node ${process.version}${WRK_NICE ? `, wrk at nice ${WRK_NICE}` : ''}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} at the end (medians)\n`);
  console.log('| path | items/s | ÷ onnxruntime alone | server CPU ms/item |\n|---|---|---|---|');
  for (const c of cells) console.log(`| ${c.name} | ${Math.round(median(c.items))} | ${(median(c.items) / rt).toFixed(2)} | ${median(c.cpu).toFixed(3)} |`);
  console.log(`| onnxruntime alone (every core, no HTTP) | ${Math.round(rt)} | 1.00 | — |`);
  const windows = ROUNDS * SECONDS;
  console.log(`\ngateway threads, share of one core over the load windows: ${[...cells[0].threads].filter(([, v]) => v / windows >= 0.01).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(100 * v / windows).toFixed(0)} %`).join(', ')}`);
} finally {
  for (const child of children) {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  }
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}
