#!/usr/bin/env node
// `npm run bench:wal`: what crash-safe metering costs per request. Drives the
// usage write-ahead log (dist/usage/wal.js, the code record() runs) with N
// closed-loop clients, each appending one record and awaiting its fsync
// before appending the next — what N concurrent inference requests do.
// Reports the latency each append waits for durability (the latency a
// request gains), records/s, and how many records share one write+fdatasync.
// The log lives in BENCH_WAL_DIR (default: a fresh directory under the
// system temp dir, i.e. the same disk as DATA_DIR here).
//   BENCH_WAL_RECORDS (default 20000 per concurrency level), BENCH_WAL_CONCURRENCY (default 1,16,64,256)
import os from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { UsageWal } = require(path.join(root, 'dist/usage/wal'));
const { createLogger } = require(path.join(root, 'dist/log/logger'));

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
    groupCommits,
    perGroup: durable / groupCommits,
  };
}

const rows = [];
for (const c of LEVELS) {
  const r = await level(c);
  rows.push(r);
  console.log(`concurrency ${c}: ${Math.round(r.perSecond)} records/s, p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms, ${r.groupCommits} group commits (${r.perGroup.toFixed(1)} records each)`);
}

const text = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z, load average ${loadAtStart} at start, on ${os.availableParallelism()} cores, ${process.version}, the log on ext4 (the machine's one disk, same as DATA_DIR); ${RECORDS.toLocaleString()} records per row, each client appends one record and awaits its write + fdatasync before the next.`,
  '',
  '| concurrent requests | records/s | added latency p50 ms | p99 ms | group commits | records per fdatasync |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.concurrency} | ${Math.round(r.perSecond).toLocaleString()} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.groupCommits.toLocaleString()} | ${r.perGroup.toFixed(1)} |`),
].join('\n');

const results = path.join(root, 'bench', 'RESULTS.md');
const section = `<!-- usage-wal:begin -->\n## Crash-safe metering: the usage write-ahead log (\`npm run bench:wal\`)\n\n${text}\n<!-- usage-wal:end -->`;
const current = existsSync(results) ? readFileSync(results, 'utf8') : '# Benchmark results\n';
const updated = current.includes('<!-- usage-wal:begin -->')
  ? current.replace(/<!-- usage-wal:begin -->[\s\S]*<!-- usage-wal:end -->/, section)
  : `${current.trimEnd()}\n\n${section}\n`;
writeFileSync(results, updated);
console.log(`written to ${path.relative(process.cwd(), results)}`);
