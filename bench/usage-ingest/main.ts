/**
 * `npm run bench:usage` — usage ingest rate and billing summary latency.
 *
 *  1. Ingest: N synthetic records through UsageService.record() as fast as
 *     the event loop allows (the real path: buffer → batched idempotent
 *     inserts + rollups); the rate counts until the last row is committed.
 *  2. Summary: fills the bench database server-side (INSERT … SELECT
 *     generate_series, 1M rows per transaction, rollups built from the same
 *     rows) up to each size, then times one tenant's month summary
 *     (the tenant holding half of all records) for several groupings.
 *
 * Uses a dedicated database (default modelgate_bench_usage on the local
 * server, dropped and re-created). Results: stdout, bench/out/usage-ingest.json
 * and the Usage section of bench/RESULTS.md. `--ingest-only` repeats step 1
 * (e.g. with USAGE_FLUSH_BATCH_SIZE=5000) and adds it to the last full run.
 */
import { loadConfig } from '../../src/config';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { Command } from 'commander';
import pg from 'pg';
import { Database } from '../../src/db/database';
import { createLogger } from '../../src/log/logger';
import { UsageService } from '../../src/usage/usage.service';
import { UsagePartitions } from '../../src/usage/usage-partitions';
import type { UsageGroupBy } from '../../src/usage/usage-queries';
import { BIG_TENANT, MONTH_END, MONTH_START, SyntheticUsage, bulkSql } from './generator';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..', '..'); // bench/out/build/bench/usage-ingest → repo
const program = new Command('bench-usage')
  .option('--admin-url <url>', 'server to create the bench database on', process.env['BENCH_ADMIN_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres')
  .option('--database <name>', 'bench database (dropped and re-created)', 'modelgate_bench_usage')
  .option('--ingest <n>', 'records through the ingest path', '200000')
  .option('--sizes <list>', 'total record counts at which to time summaries', '1000000,10000000')
  .option('--runs <n>', 'timed runs per summary query (after one warm-up)', '7')
  .option('--keep', 'keep the bench database afterwards')
  .option('--ingest-only', 'measure ingest only; added to the ingest samples of the last full run (JSON and RESULTS.md)')
  .option('--from-json', 'only re-render the bench/RESULTS.md section from bench/out/usage-ingest.json')
  .parse();
const opts = program.opts<{ adminUrl: string; database: string; ingest: string; sizes: string; runs: string; keep?: boolean; fromJson?: boolean; ingestOnly?: boolean }>();

/** The gateway default unless USAGE_FLUSH_BATCH_SIZE says otherwise (as in production). */
const BATCH_SIZE = loadConfig(process.env).usage.flushBatchSize;

function log(line: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function createBenchDatabase(): Promise<string> {
  const admin = new pg.Client({ connectionString: opts.adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${opts.database}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${opts.database}"`);
  await admin.end();
  const url = new URL(opts.adminUrl);
  url.pathname = `/${opts.database}`;
  // The schema straight from the migration files (no _prisma_migrations bookkeeping needed here).
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const dir = path.join(ROOT, 'prisma', 'migrations');
  for (const name of readdirSync(dir).filter((n) => /^\d/.test(n)).sort()) {
    await client.query(readFileSync(path.join(dir, name, 'migration.sql'), 'utf8'));
  }
  await client.end();
  return url.toString();
}

/** What a gateway does at start: this month's and the coming months' partitions, and the generated month's (October 2026). */
async function makePartitions(url: string): Promise<void> {
  const logger = createLogger({ level: 'warn', pretty: false });
  const db = new Database({ database: { mode: 'postgres', url, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, logger);
  void db.start();
  await db.whenReady();
  const partitions = new UsagePartitions({ db, log: logger, monthsAhead: 3, retentionMonths: null, intervalMs: 3_600_000 });
  await partitions.maintain();
  await partitions.ensureMonth(MONTH_START);
  log(`UsageRecord partitions: ${[...(await partitions.partitions()).values()].sort().join(', ')} (+ default)`);
  await db.close();
}

async function ingest(url: string, count: number): Promise<{ records: number; seconds: number; perSecond: number; failures: number }> {
  const logger = createLogger({ level: 'warn', pretty: false });
  const db = new Database({ database: { mode: 'postgres', url, poolSize: 4 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, logger);
  void db.start();
  await db.whenReady();
  const usage = new UsageService({
    config: { flushIntervalMs: 250, flushBatchSize: BATCH_SIZE, bufferMaxRecords: 100_000, spoolDir: path.join(os.tmpdir(), `mg-bench-spool-${process.pid}`), walSegmentMaxRecords: 50_000, partitionMonthsAhead: 3, partitionMaintenanceIntervalMs: 3_600_000, retentionMonths: null },
    db,
    log: logger,
  });
  await usage.start();
  const gen = new SyntheticUsage('ingest', true);
  const events = Array.from({ length: count }, (_, i) => gen.event(i)); // generated up front: time only the sink
  log(`ingest: ${count.toLocaleString()} records through UsageService.record() …`);
  const started = process.hrtime.bigint();
  let i = 0;
  let lastReport = Date.now();
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      // Feed in slices so the writer loop gets the event loop between them, like request traffic.
      const end = Math.min(count, i + 2000);
      for (; i < end; i += 1) usage.record(events[i] as (typeof events)[number]);
      if (Date.now() - lastReport > 1000) {
        lastReport = Date.now();
        const s = usage.stats();
        log(`  recorded ${i.toLocaleString()}, written ${s.written.toLocaleString()}, buffered ${s.buffered}, spooled ${s.spooled}`);
      }
      if (i < count) setImmediate(pump);
      else resolve();
    };
    pump();
  });
  for (;;) {
    await usage.flush();
    const s = usage.stats();
    if (s.buffered === 0 && s.spooled === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const s = usage.stats();
  await usage.close();
  await db.close();
  log(`ingest: ${s.written.toLocaleString()} rows committed in ${seconds.toFixed(2)} s → ${Math.round(s.written / seconds).toLocaleString()} records/s (failures ${s.failures})`);
  return { records: s.written, seconds, perSecond: s.written / seconds, failures: s.failures };
}

async function fill(url: string, from: number, to: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const chunk = 1_000_000;
  for (let a = from; a < to; a += chunk) {
    const b = Math.min(to, a + chunk);
    const started = Date.now();
    await client.query('BEGIN');
    await client.query(`SET LOCAL work_mem = '256MB'`);
    for (const sql of bulkSql('bulk', a, b)) await client.query(sql);
    await client.query('COMMIT');
    log(`  filled ${b.toLocaleString()} / ${to.toLocaleString()} (${((Date.now() - started) / 1000).toFixed(1)} s for this million)`);
  }
  await client.query('VACUUM ANALYZE "UsageRecord"');
  await client.query('VACUUM ANALYZE "UsageHourly"');
  await client.end();
}

interface Timing {
  groupBy: string;
  rows: number;
  medianMs: number;
  p90Ms: number;
  requests: number;
}

async function timeSummaries(url: string, runs: number): Promise<Timing[]> {
  const logger = createLogger({ level: 'warn', pretty: false });
  const db = new Database({ database: { mode: 'postgres', url, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, logger);
  void db.start();
  await db.whenReady();
  const usage = new UsageService({ config: { flushIntervalMs: 1000, flushBatchSize: 1000, bufferMaxRecords: 1000, spoolDir: os.tmpdir(), walSegmentMaxRecords: 50_000, partitionMonthsAhead: 3, partitionMaintenanceIntervalMs: 3_600_000, retentionMonths: null }, db, log: logger });
  const groupings: UsageGroupBy[][] = [[], ['DAY'], ['MODEL', 'STATUS'], ['DAY', 'API_KEY', 'MODEL']];
  // A month, with unaligned ends so both the rollups and the raw-record edges are read.
  const from = new Date(MONTH_START.getTime() + 17 * 60_000);
  const to = new Date(MONTH_END.getTime() - 23 * 60_000);
  const out: Timing[] = [];
  for (const groupBy of groupings) {
    const times: number[] = [];
    let rows = 0;
    let requests = 0;
    for (let r = 0; r <= runs; r += 1) {
      const started = process.hrtime.bigint();
      const result = await usage.queries.summary({ tenantId: BIG_TENANT, from, to, groupBy });
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (r > 0) times.push(ms);
      rows = result.length;
      requests = result.reduce((a, x) => a + x.requests, 0);
    }
    times.sort((a, b) => a - b);
    const t = { groupBy: groupBy.join('+') || '(total)', rows, requests, medianMs: times[Math.floor(times.length / 2)] ?? NaN, p90Ms: times[Math.ceil(times.length * 0.9) - 1] ?? NaN };
    log(`  summary ${t.groupBy.padEnd(20)} rows ${String(rows).padStart(6)}  requests ${requests.toLocaleString().padStart(11)}  median ${t.medianMs.toFixed(1)} ms  p90 ${t.p90Ms.toFixed(1)} ms`);
    out.push(t);
  }
  await db.close();
  return out;
}

interface BenchResult {
  when: string;
  cpus: number;
  node: string;
  load: number[];
  ingest: { records: number; seconds: number; perSecond: number; failures: number };
  summaries: { totalRecords: number; rollupRows: number; fillSeconds: number; timings: Timing[] }[];
  /** Later `--ingest-only` runs. */
  ingestSamples?: { when: string; load: number[]; batchSize: number; records: number; perSecond: number }[];
}

/** Replaces (or appends) the Usage section of bench/RESULTS.md; other sections belong to other benchmarks. */
function writeResultsSection(result: BenchResult): void {
  const file = path.join(ROOT, 'bench', 'RESULTS.md');
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    '<!-- usage:begin -->',
    '## Usage (`npm run bench:usage`)',
    '',
    `Measured ${result.when.slice(0, 16)}Z on ${result.cpus} cores, ${result.node}, local PostgreSQL 15 (default settings), dedicated bench database; ${result.load.length ? `load average at start ${result.load.map((l) => l.toFixed(1)).join(' / ')}` : 'load average not recorded by this run'} (the machine is shared with other builds and tests, so these figures are pessimistic).`,
    '',
    `**Ingest** (UsageService.record() → batches of ${n(BATCH_SIZE)}, 2 writers, one INSERT … ON CONFLICT + hourly and daily rollup upserts per batch; timed until the last row is committed): **${n(result.ingest.perSecond)} records/s** (${n(result.ingest.records)} records in ${result.ingest.seconds.toFixed(1)} s, ${result.ingest.failures} failures). Target ≥ 20,000/s.`,
    '',
    '**One tenant\'s month summary** (the tenant holding half of all records; range 00:17 on the 1st to 23:37 on the last day, so daily + hourly rollups and raw-record edges are all read; median of the runs after one warm-up, p90 in brackets). Target < 200 ms at 10M:',
    '',
    '| records in table | tenant\'s records in month | rollup rows (hourly, all tenants) | total | DAY | MODEL+STATUS | DAY+API_KEY+MODEL |',
    '|---|---|---|---|---|---|---|',
    ...result.summaries.map((s) => {
      const t = (g: string) => {
        const x = s.timings.find((y) => y.groupBy === g);
        return x ? `${x.medianMs.toFixed(0)} ms (${x.p90Ms.toFixed(0)})` : '–';
      };
      return `| ${n(s.totalRecords)} | ${n(s.timings[0]?.requests ?? 0)} | ${n(s.rollupRows)} | ${t('(total)')} | ${t('DAY')} | ${t('MODEL+STATUS')} | ${t('DAY+API_KEY+MODEL')} |`;
    }),
    '',
    ...(result.ingestSamples?.length
      ? [
          'Later ingest-only runs (`npm run bench:usage -- --ingest-only`, `USAGE_FLUSH_BATCH_SIZE` as shown):',
          '',
          ...result.ingestSamples.map((x) => `- ${x.when.slice(0, 16)}Z, load average ${x.load.map((l) => l.toFixed(1)).join(' / ')}, batch ${n(x.batchSize)}: **${n(x.perSecond)} records/s** (${n(x.records)} records)`),
          '',
        ]
      : []),
    `Data beyond the ingest phase is generated server-side (\`INSERT … SELECT generate_series\` into a staging table, 1M rows per transaction, rollups built from the same rows): ${result.summaries.map((s) => `${n(s.totalRecords)} reached after ${s.fillSeconds.toFixed(0)} s`).join(', ')}.`,
    '<!-- usage:end -->',
  ].join('\n');
  let text = '# Benchmark results\n\nEach section is written by its benchmark script; numbers are from the last run on the machine named in it.\n';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // First benchmark to write the file.
  }
  const re = /<!-- usage:begin -->[\s\S]*<!-- usage:end -->/;
  text = re.test(text) ? text.replace(re, lines) : `${text.trimEnd()}\n\n${lines}\n`;
  writeFileSync(file, text);
  log(`wrote the Usage section of ${file}`);
}

async function main(): Promise<void> {
  if (opts.fromJson) {
    writeResultsSection(JSON.parse(readFileSync(path.join(ROOT, 'bench', 'out', 'usage-ingest.json'), 'utf8')) as BenchResult);
    return;
  }
  const load = os.loadavg();
  const sizes = opts.sizes.split(',').map(Number).filter((n) => n > 0).sort((a, b) => a - b);
  log(`cpus ${os.cpus().length}, node ${process.version}; database ${opts.database}`);
  const url = await createBenchDatabase();
  await makePartitions(url);
  const ingestResult = await ingest(url, Number(opts.ingest));
  if (opts.ingestOnly) {
    log(`load average at start ${load.map((l) => l.toFixed(1)).join(' / ')}`);
    await dropBenchDatabase();
    const jsonFile = path.join(ROOT, 'bench', 'out', 'usage-ingest.json');
    let last: BenchResult | undefined;
    try {
      last = JSON.parse(readFileSync(jsonFile, 'utf8')) as BenchResult;
    } catch {
      log('no full run recorded in bench/out/usage-ingest.json; nothing written');
      return;
    }
    last.ingestSamples = [...(last.ingestSamples ?? []), { when: new Date().toISOString(), load, batchSize: BATCH_SIZE, records: ingestResult.records, perSecond: ingestResult.perSecond }];
    writeFileSync(jsonFile, JSON.stringify(last, null, 2));
    writeResultsSection(last);
    return;
  }
  let total = ingestResult.records;
  const summaries: { totalRecords: number; rollupRows: number; fillSeconds: number; timings: Timing[] }[] = [];
  for (const size of sizes) {
    log(`filling to ${size.toLocaleString()} records (server-side generate_series) …`);
    const started = Date.now();
    await fill(url, total, size);
    const fillSeconds = (Date.now() - started) / 1000;
    total = Math.max(total, size);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const rollupRows = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM "UsageHourly"`)).rows[0]?.n);
    const bigRows = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM "UsageHourly" WHERE "tenantId" = $1`, [BIG_TENANT])).rows[0]?.n);
    await client.end();
    log(`at ${total.toLocaleString()} records: ${rollupRows.toLocaleString()} rollup rows (${bigRows.toLocaleString()} for the timed tenant)`);
    summaries.push({ totalRecords: total, rollupRows, fillSeconds, timings: await timeSummaries(url, Number(opts.runs)) });
  }
  mkdirSync(path.join(ROOT, 'bench', 'out'), { recursive: true });
  const result: BenchResult = { when: new Date().toISOString(), cpus: os.cpus().length, node: process.version, load, ingest: ingestResult, summaries };
  writeFileSync(path.join(ROOT, 'bench', 'out', 'usage-ingest.json'), JSON.stringify(result, null, 2));
  writeResultsSection(result);
  log('summary');
  log(`  ingest: ${Math.round(ingestResult.perSecond).toLocaleString()} records/s (${ingestResult.records.toLocaleString()} in ${ingestResult.seconds.toFixed(1)} s; target ≥ 20,000)`);
  for (const s of summaries) {
    const worst = Math.max(...s.timings.map((t) => t.medianMs));
    log(`  ${s.totalRecords.toLocaleString()} records: month summary median ${s.timings.map((t) => `${t.groupBy} ${t.medianMs.toFixed(0)} ms`).join(', ')} (worst ${worst.toFixed(0)} ms; target < 200)`);
  }
  await dropBenchDatabase();
}

async function dropBenchDatabase(): Promise<void> {
  if (opts.keep) return;
  const admin = new pg.Client({ connectionString: opts.adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${opts.database}" WITH (FORCE)`);
  await admin.end();
}

main()
  .then(() => process.exit(0))
  .catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
