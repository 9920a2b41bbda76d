#!/usr/bin/env node
// The usage batch insert (INSERT_SQL: insert + hourly and daily rollups, one statement) side by side on the
// table before partitioning and on the partitioned one, same server, batches alternating, so the machine's
// load hits both alike. Two fresh databases: one migrated up to the migration before
// 20261206060000_usage_partitioned_by_month, one migrated fully with the current month's partition made.
//   npm run build:ts && node bench/usage-partition-ab.mjs      (AB_BATCHES=40, AB_BATCH_SIZE=4000)
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import pg from 'pg';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { applyMigrations, readMigrations, MIGRATIONS_DIR } = require(path.join(ROOT, 'dist/db/migrate.js'));
const { INSERT_SQL } = require(path.join(ROOT, 'dist/usage/usage.service.js'));
const { UsagePartitions } = require(path.join(ROOT, 'dist/usage/usage-partitions.js'));
const { PrismaClient } = require(path.join(ROOT, 'dist/db/generated/client.js'));
const { PrismaPg } = require('@prisma/adapter-pg');

const ADMIN = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const BATCHES = Number(process.env.AB_BATCHES ?? 40);
const SIZE = Number(process.env.AB_BATCH_SIZE ?? 4000);
const PARTITIONING = '20261206060000_usage_partitioned_by_month';

async function database(name) {
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  return url.toString();
}

const before = await database('modelgate_bench_ab_plain');
const after = await database('modelgate_bench_ab_partitioned');
const oldDir = mkdtempSync(path.join(os.tmpdir(), 'mg-ab-migrations-'));
cpSync(path.join(MIGRATIONS_DIR, 'migration_lock.toml'), path.join(oldDir, 'migration_lock.toml'));
for (const m of await readMigrations()) if (m.name < PARTITIONING) cpSync(path.join(MIGRATIONS_DIR, m.name), path.join(oldDir, m.name), { recursive: true });
await applyMigrations({ kind: 'postgres', url: before }, oldDir);
await applyMigrations({ kind: 'postgres', url: after });
const pools = { plain: new pg.Pool({ connectionString: before, max: 2 }), partitioned: new pg.Pool({ connectionString: after, max: 2 }) };
const prisma = new PrismaClient({ adapter: new PrismaPg(pools.partitioned) });
const quiet = { info() {}, warn() {}, error() {}, child() { return quiet; } };
await new UsagePartitions({ db: { prisma }, log: quiet, monthsAhead: 1, retentionMonths: null, intervalMs: 1 }).maintain();
const sql = { plain: INSERT_SQL.replace('ON CONFLICT ("id", "createdAt")', 'ON CONFLICT ("id")'), partitioned: INSERT_SQL };

const tenants = Array.from({ length: 20 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
let seq = 0;
function batch() {
  const now = Date.now();
  return JSON.stringify(Array.from({ length: SIZE }, (_, i) => {
    seq += 1;
    return { id: `ab-${seq}`, tenantId: tenants[seq % 20], apiKeyId: null, model: ['fashion-cnn', 'fashion-lstm'][seq % 2], modelVersion: '1', items: 1, computeUnits: 1,
      status: 'OK', latencyMs: 1 + (seq % 50), queueMs: 0.1, computeMs: 0.5, executionProvider: 'cpu', protocol: 'REST', createdAt: new Date(now - (SIZE - i)).toISOString(), cacheHit: false };
  }));
}
const times = { plain: [], partitioned: [] };
for (let b = 0; b < BATCHES; b += 1) {
  const order = b % 2 === 0 ? ['plain', 'partitioned'] : ['partitioned', 'plain'];
  for (const which of order) {
    const payload = batch();
    const t0 = process.hrtime.bigint();
    await pools[which].query(sql[which], [payload]);
    times[which].push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const report = (w) => `${w}: median ${median(times[w]).toFixed(1)} ms per ${SIZE}-record batch → ${Math.round(SIZE / (median(times[w]) / 1000)).toLocaleString('en-US')} records/s`;
console.log(`${BATCHES} batches each, alternating, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
console.log(report('plain'));
console.log(report('partitioned'));
console.log(`partitioned ÷ plain: ${(median(times.partitioned) / median(times.plain)).toFixed(3)}`);
await prisma.$disconnect();
await pools.plain.end();
await pools.partitioned.end();
