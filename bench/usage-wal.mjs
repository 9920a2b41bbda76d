#!/usr/bin/env node
// `npm run bench:wal`: what crash-safe metering costs per request. Drives the
// usage write-ahead log (dist/usage/wal.js, the code record() runs) with N
// closed-loop clients, each appending one record and awaiting its fsync
// before appending the next — what N concurrent inference requests do.
// Reports the latency each append waits for durability (the latency a
// request gains), records/s, and how many records share one write+fdatasync.
// The log lives in BENCH_WAL_DIR (default: a fresh directory under the
// system temp dir, i.e. the same disk as DATA_DIR here).
// Then the same inside a gateway: `node dist/main.js` (NODE_ENV=production,
// a child process) on a throwaway database serves one-image fashion-cnn infer
// requests from closed-loop HTTP clients in this process; its
// modelgate_usage_record_durable_seconds histogram gives the mean time each answer
// waited for its record's durability.
//   BENCH_WAL_RECORDS (default 20000 per concurrency level), BENCH_WAL_CONCURRENCY (default 1,16,64,256),
// With BENCH_WAL_BASELINE=<checkout of an earlier commit, built>, the same load runs against that
// build's gateway too (levels interleaved), so the added request latency can be read directly.
//   BENCH_WAL_REQUESTS (default 2000 per gateway level), TEST_ADMIN_DATABASE_URL
import os from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import pg from 'pg';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { UsageWal } = require(path.join(root, 'dist/usage/wal'));
const { createLogger } = require(path.join(root, 'dist/log/logger'));
require('reflect-metadata');
const { applyMigrations } = require(path.join(root, 'dist/db/migrate'));
const { Database } = require(path.join(root, 'dist/db/database'));
const { KeyService } = require(path.join(root, 'dist/keys/key.service'));

const RECORDS = Number(process.env.BENCH_WAL_RECORDS ?? 20000);
const LEVELS = (process.env.BENCH_WAL_CONCURRENCY ?? '1,16,64,256').split(',').map(Number);
const loadAtStart = os.loadavg().map((l) => l.toFixed(1)).join(' / ');
const log = createLogger({ level: 'warn', pretty: false });

function event(i) {
  return {
    id: `bench-${i}-${Math.random().toString(36).slice(2)}`,
    tenantId: '00000000-0000-4000-8000-000000000001',
    apiKeyId: '00000000-0000-4000-8000-000000000002',
    model: 'fashion-cnn',
    modelVersion: '1',
    items: 1,
    computeUnits: 1,
    status: 'OK',
    latencyMs: 1.234,
    queueMs: 0.2,
    computeMs: 0.4,
    executionProvider: 'cpu',
    protocol: 'GRAPHQL',
    createdAt: new Date(),
  };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

async function level(concurrency) {
  const dir = mkdtempSync(path.join(process.env.BENCH_WAL_DIR ?? os.tmpdir(), 'mg-bench-wal-'));
  let durable = 0;
  const wal = new UsageWal({
    dir,
    log,
    segmentMaxRecords: 50000,
    onDurable: (events) => {
      durable += events.length;
    },
    onWriteFailed: async (_events, error) => {
      throw error;
    },
  });
  await wal.init();
  const latencies = [];
  let next = 0;
  const started = process.hrtime.bigint();
  const client = async () => {
    while (next < RECORDS) {
      const e = event(next++);
      const t0 = process.hrtime.bigint();
      await wal.append(e);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { groupCommits } = wal.stats();
  await wal.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    records: durable,
    perSecond: durable / seconds,
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    mean: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    groupCommits,
    perGroup: durable / groupCommits,
  };
}

const rows = [];
for (const c of LEVELS) {
  const r = await level(c);
  rows.push(r);
  console.log(`concurrency ${c}: ${Math.round(r.perSecond)} records/s, p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms, mean ${r.mean.toFixed(3)} ms, ${r.groupCommits} group commits (${r.perGroup.toFixed(1)} records each)`);
}

// Inside a gateway: the wait as the request path sees it (event loop shared with GraphQL and the load clients).
const REQUESTS = Number(process.env.BENCH_WAL_REQUESTS ?? 2000);
// A checkout of an earlier build (its dist/ built) to run the same load against, e.g. one without the log.
const BASELINE = process.env.BENCH_WAL_BASELINE ? path.resolve(process.env.BENCH_WAL_BASELINE) : null;
const adminUrl = process.env.TEST_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `modelgate_bench_wal_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(adminUrl);
dbUrl.pathname = `/${dbName}`;
const gatewayRows = [];
try {
  await applyMigrations({ kind: 'postgres', url: dbUrl.toString() });
  const silent = createLogger({ level: 'silent', pretty: false });
  const db = new Database({ database: { mode: 'postgres', url: dbUrl.toString(), poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, silent);
  await db.start();
  const keys = new KeyService(db, { invalidate: async () => undefined }, silent, 'test');
  const tenant = await keys.createTenant({ principal: null, actor: 'bench' }, { name: 'bench-wal' });
  const { plaintext: key } = await keys.createApiKey({ principal: null, actor: 'bench' }, { tenant: tenant.id, name: 'bench', scopes: ['inference'] });
  await db.close();
  const started = [];
  const startGateway = async (distRoot, label) => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mg-bench-wal-gw-'));
    const child = spawn(process.execPath, [path.join(distRoot, 'dist/main.js')], {
      cwd: distRoot,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORT: String(port), GRPC_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_PRETTY: 'false',
        DATABASE_URL: dbUrl.toString(), MODEL_REPOSITORY: path.join(root, 'models'), MIGRATE_ON_START: 'false', RATE_LIMITS_ENABLED: 'false', DATA_DIR: dataDir,
      },
    });
    const url = `http://127.0.0.1:${port}`;
    started.push({ child, dataDir });
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${label} gateway exited (${child.exitCode})`);
      const res = await fetch(`${url}/readyz`).catch(() => null);
      if (res?.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { url, label };
  };
  const gateways = [await startGateway(root, 'this build')];
  if (BASELINE) gateways.push(await startGateway(BASELINE, 'baseline'));
  const pixels = Buffer.from(new Float32Array(28 * 28).fill(0.5).buffer).toString('base64');
  const body = JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { modelName } }',
    variables: { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: pixels }] } },
  });
  const histogram = async (url) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const read = (name) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
    return { sum: read('modelgate_usage_record_durable_seconds_sum'), count: read('modelgate_usage_record_durable_seconds_count') };
  };
  // Rounds alternate between the builds so the machine's drift hits both alike.
  const ROUNDS = 4;
  const runLoad = async (url, concurrency, count, latencies) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < count) {
          const t0 = performance.now();
          const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
          const text = await res.text();
          if (res.status !== 200 || text.includes('"errors"')) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
          latencies.push(performance.now() - t0);
        }
      }),
    );
  };
  for (const concurrency of [1, 16]) {
    const acc = gateways.map(() => ({ latencies: [], seconds: 0, before: null, after: null }));
    for (let i = 0; i < gateways.length; i += 1) acc[i].before = await histogram(gateways[i].url);
    for (let round = 0; round < ROUNDS; round += 1) {
      for (let i = 0; i < gateways.length; i += 1) {
        const t0 = performance.now();
        await runLoad(gateways[i].url, concurrency, Math.ceil(REQUESTS / ROUNDS), acc[i].latencies);
        acc[i].seconds += (performance.now() - t0) / 1000;
      }
    }
    for (let i = 0; i < gateways.length; i += 1) {
      const { label, url } = gateways[i];
      const { latencies, seconds, before } = acc[i];
      const after = await histogram(url);
      latencies.sort((a, b) => a - b);
      const row = {
        label,
        concurrency,
        perSecond: latencies.length / seconds,
        p50: pct(latencies, 0.5),
        p99: pct(latencies, 0.99),
        durableMeanMs: ((after.sum - before.sum) / (after.count - before.count)) * 1000,
        records: after.count - before.count,
      };
      gatewayRows.push(row);
      console.log(`${label}, ${concurrency} clients: ${Math.round(row.perSecond)} req/s, request p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, mean wait for durability ${row.durableMeanMs.toFixed(3)} ms over ${row.records} records`);
    }
  }
  for (const { child, dataDir } of started) {
    child.kill('SIGKILL');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
}

const text = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z, load average ${loadAtStart} at start, on ${os.availableParallelism()} cores, ${process.version}, the log on ext4 (the machine's one disk, same as DATA_DIR); ${RECORDS.toLocaleString()} records per row, each client appends one record and awaits its durable (O_DSYNC) write before the next. The machine is shared: the load average says how much.`,
  '',
  '| concurrent requests | records/s | added latency p50 ms | p99 ms | mean ms | group commits | records per write |',
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.concurrency} | ${Math.round(r.perSecond).toLocaleString()} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.mean.toFixed(3)} | ${r.groupCommits.toLocaleString()} | ${r.perGroup.toFixed(1)} |`),
  '',
  `Inside the gateway (\`node dist/main.js\`, NODE_ENV=production, local PostgreSQL, no Redis, rate limits off), ${REQUESTS.toLocaleString()} one-image \`fashion-cnn\` infer requests per row from closed-loop HTTP clients in the bench process, in 4 rounds alternating between the builds; the mean wait is \`modelgate_usage_record_durable_seconds\` (sum / count), the time each answer waited for its record to be durable:`,
  '',
  '| build | HTTP clients | requests/s | request p50 ms | request p99 ms | mean wait for durability ms |',
  '|---|---|---|---|---|---|',
  ...gatewayRows.map((r) => `| ${r.label} | ${r.concurrency} | ${Math.round(r.perSecond).toLocaleString()} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Number.isFinite(r.durableMeanMs) ? r.durableMeanMs.toFixed(3) : 'n/a (no log)'} |`),
  ...(BASELINE ? ['', `Baseline: ${process.env.BENCH_WAL_BASELINE_LABEL ?? path.basename(BASELINE)}. Command: \`BENCH_WAL_BASELINE=<that checkout, built with npm run build:ts> npm run bench:wal\`.`] : []),
].join('\n');

const results = path.join(root, 'bench', 'RESULTS.md');
const section = `<!-- usage-wal:begin -->\n## Crash-safe metering: the usage write-ahead log (\`npm run bench:wal\`)\n\n${text}\n<!-- usage-wal:end -->`;
const current = existsSync(results) ? readFileSync(results, 'utf8') : '# Benchmark results\n';
const updated = current.includes('<!-- usage-wal:begin -->')
  ? current.replace(/<!-- usage-wal:begin -->[\s\S]*<!-- usage-wal:end -->/, section)
  : `${current.trimEnd()}\n\n${section}\n`;
writeFileSync(results, updated);
console.log(`written to ${path.relative(process.cwd(), results)}`);
