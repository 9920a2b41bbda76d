#!/usr/bin/env node
// Where a lone request's latency goes, by taking parts away (issue #25, "concurrency-1 p50 ≤ 1 ms"):
// production gateways (`node dist/main.js`, NODE_ENV=production, Postgres, no tracing) started side by
// side, each with one part of the full path switched off, plus two bare servers that do only the
// protocol and the model; all answer the same fashion-cnn OIP binary request at concurrency 1, in
// interleaved rounds (every variant gets each round's machine), so the differences between rows are the
// parts' latency and CPU, not the machine's mood:
//   full          Redis limits (one EVALSHA), write-ahead usage log on disk (O_DSYNC), worker pool
//   no-limits     RATE_LIMITS_ENABLED=false: no Redis round trip
//   wal-in-memory the usage spool on tmpfs (/dev/shm): the durable write costs a syscall, not a disk flush
//   neither       both of the above: what the gateway costs beyond the limits and the disk
//   bare-worker   node:http, the OIP binary framing, onnxruntime in one worker thread (the gateway's shape)
//   bare-inline   node:http, the OIP binary framing, onnxruntime on the event loop (the floor)
// Server CPU per request is read from each process's /proc counters over its own windows.
//   npm run build:ts && node bench/lone-ablation.mjs [requests per round=200] [rounds=5]
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ROOT, addThreadCpu, bootstrapKey, cpuSeconds, threadCpu, fixtureImages, freePort, fullPathGateway, log, oipImageRequest, startGateway, waitReady } from './lib.mjs';

const PER_ROUND = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.argv[3] ?? 5);
const MODEL = process.env.BENCH_MODEL ?? 'fashion-cnn';
const DIST = path.resolve(process.env.BENCH_DIST ?? path.join(ROOT, 'dist'));
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const WARMUP = 200;

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-ablation-'));
const shm = mkdtempSync(path.join('/dev/shm', 'modelgate-ablation-'));
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();

const GATEWAYS = [
  { name: 'full', env: {} },
  { name: 'no-limits', env: { RATE_LIMITS_ENABLED: 'false' } },
  { name: 'wal-in-memory', env: { USAGE_SPOOL_DIR: path.join(shm, 'wal-in-memory') } },
  { name: 'neither', env: { RATE_LIMITS_ENABLED: 'false', USAGE_SPOOL_DIR: path.join(shm, 'neither') } },
];
const BARE = [
  { name: 'bare-worker', mode: 'worker' },
  { name: 'bare-inline', mode: 'inline' },
];

const { body, headerLength } = oipImageRequest(Float32Array.from(fixtureImages().subarray(16, 16 + 784), (b) => b / 255));

const variants = [];
const databases = [];
try {
  for (const g of GATEWAYS) {
    const { env, port } = await fullPathGateway(admin, databases, {
      adminUrl: ADMIN_DB, redisUrl: REDIS_URL, name: `ablation_${process.pid}_${g.name}`, dataDir: path.join(work, g.name), extra: g.env,
    });
    const key = bootstrapKey(env, DIST);
    log(`starting gateway ${g.name} on ${port}`);
    const { child } = await startGateway(env, { dist: DIST, what: g.name });
    variants.push({ name: g.name, port, child, headers: { authorization: `Bearer ${key}` } });
  }
  for (const b of BARE) {
    const port = await freePort();
    const child = spawn(process.execPath, [path.join(ROOT, 'bench/bare-oip-server.mjs'), path.join(ROOT, 'models', MODEL, '1', 'model.onnx'), String(port), b.mode], { stdio: ['ignore', 'inherit', 'inherit'] });
    await waitReady(`http://127.0.0.1:${port}/v2/health/ready`, child, b.name);
    variants.push({ name: b.name, port, child, headers: {} });
  }

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = (v) => new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port: v.port, path: `/v2/models/${MODEL}/infer`, method: 'POST', agent, headers: { ...v.headers, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength), 'content-length': String(body.length) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`${v.name}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });

  log(`${MODEL}, OIP binary, c=1; ${variants.length} variants; ${WARMUP} warm-up requests each, then ${ROUNDS} rounds × ${PER_ROUND}; ${os.availableParallelism()} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}`);
  for (const v of variants) {
    for (let i = 0; i < WARMUP; i += 1) await once(v);
    v.latencies = [];
    v.cpu = 0;
    v.threads = new Map();
  }
  for (let r = 1; r <= ROUNDS; r += 1) {
    // Alternate the order so no variant always runs just after the same neighbour.
    const order = r % 2 ? variants : [...variants].reverse();
    for (const v of order) {
      const before = cpuSeconds(v.child.pid);
      const threadsBefore = threadCpu(v.child.pid);
      for (let i = 0; i < PER_ROUND; i += 1) v.latencies.push(await once(v));
      v.cpu += cpuSeconds(v.child.pid) - before;
      addThreadCpu(v.threads, v.child.pid, threadsBefore);
    }
    log(`round ${r}/${ROUNDS} done, load ${os.loadavg()[0].toFixed(2)}`);
  }

  const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  const full = variants.find((v) => v.name === 'full');
  const fullP50 = pct(full.latencies, 0.5);
  console.log(`\nbench:lone-ablation ${new Date().toISOString().slice(0, 16)}Z, ${MODEL} over OIP binary, c=1, ${ROUNDS} rounds × ${PER_ROUND} requests per variant, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} at the end\n`);
  console.log('| variant | p50 ms | p90 ms | p99 ms | p50 − full ms | server CPU ms/request |\n|---|---|---|---|---|---|');
  for (const v of variants) {
    const p50 = pct(v.latencies, 0.5);
    console.log(`| ${v.name} | ${p50.toFixed(3)} | ${pct(v.latencies, 0.9).toFixed(3)} | ${pct(v.latencies, 0.99).toFixed(3)} | ${(p50 - fullP50).toFixed(3)} | ${((v.cpu * 1000) / v.latencies.length).toFixed(3)} |`);
  }
  // Which threads a lone request's CPU is spent on: the event loop's share bounds the latency from below.
  console.log('\nserver CPU ms/request by thread (threads under 0.01 ms/request left out):\n');
  for (const v of variants) {
    const shares = [...v.threads].map(([name, seconds]) => [name, (seconds * 1000) / v.latencies.length]).filter(([, ms]) => ms >= 0.01).sort((a, b) => b[1] - a[1]);
    console.log(`- ${v.name}: ${shares.map(([name, ms]) => `${name} ${ms.toFixed(3)}`).join(', ')}`);
  }
} finally {
  for (const v of variants) {
    v.child.kill('SIGTERM');
    await new Promise((r) => (v.child.exitCode !== null ? r() : v.child.once('exit', r)));
  }
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
}
