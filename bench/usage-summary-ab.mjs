#!/usr/bin/env node
// The month summary side by side on the partitioned UsageRecord and a plain (unpartitioned) copy of the same
// rows, in the database `npm run bench:usage -- --keep` left (modelgate_bench_usage). The copy is made once
// (UsageRecord_plain, the pre-partitioning key and indexes); rounds then swap the two names and time
// UsageQueries.summary for the bench's four groupings on each, alternating, so the machine's load hits both alike.
//   npm run build:ts && node bench/usage-summary-ab.mjs      (AB_ROUNDS=5)
import path from 'node:path';
import os from 'node:os';
import { createRequire } from 'node:module';
import pg from 'pg';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { UsageQueries } = require(path.join(ROOT, 'dist/usage/usage-queries.js'));
const { PrismaClient } = require(path.join(ROOT, 'dist/db/generated/client.js'));
const { PrismaPg } = require('@prisma/adapter-pg');

const URL_ = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/modelgate_bench_usage';
const ROUNDS = Number(process.env.AB_ROUNDS ?? 5);
const MONTH_START = Date.UTC(2026, 9, 1);
const MONTH_END = Date.UTC(2026, 10, 1);
const log = (s) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const pool = new pg.Pool({ connectionString: URL_, max: 3 });
const q = (sql, args) => pool.query(sql, args);
if (!(await q(`SELECT to_regclass('"UsageRecord_plain"') AS t`)).rows[0].t) {
  log('copying UsageRecord into UsageRecord_plain (the pre-partitioning table) …');
  await q(`CREATE TABLE "UsageRecord_plain" (LIKE "UsageRecord" INCLUDING DEFAULTS)`);
  await q(`INSERT INTO "UsageRecord_plain" SELECT * FROM "UsageRecord"`);
  await q(`ALTER TABLE "UsageRecord_plain" ADD CONSTRAINT "UsageRecord_plain_pkey" PRIMARY KEY ("id")`);
  await q(`CREATE INDEX "UsageRecord_plain_t_idx" ON "UsageRecord_plain"("tenantId", "createdAt" DESC, "id" DESC)`);
  await q(`CREATE INDEX "UsageRecord_plain_c_idx" ON "UsageRecord_plain"("createdAt")`);
  await q(`VACUUM ANALYZE "UsageRecord_plain"`);
  log('copied');
}
await q(`VACUUM ANALYZE "UsageRecord"`);
await q(`ANALYZE "UsageDaily"`);
const kind = async () => (await q(`SELECT relkind::text AS k FROM pg_class WHERE relname = 'UsageRecord'`)).rows[0].k === 'p' ? 'partitioned' : 'plain';
async function use(which) {
  if ((await kind()) === which) return;
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`ALTER TABLE "UsageRecord" RENAME TO "UsageRecord_swap"`);
    await c.query(`ALTER TABLE "UsageRecord_plain" RENAME TO "UsageRecord"`);
    await c.query(`ALTER TABLE "UsageRecord_swap" RENAME TO "UsageRecord_plain"`);
    await c.query('COMMIT');
  } finally {
    c.release();
  }
}
const tenant = (await q(`SELECT "tenantId" FROM "UsageDaily" GROUP BY 1 ORDER BY sum("requests") DESC LIMIT 1`)).rows[0].tenantId;
const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
const queries = new UsageQueries({ prisma });
const groupings = [[], ['DAY'], ['MODEL', 'STATUS'], ['DAY', 'API_KEY', 'MODEL']];
const from = new Date(MONTH_START + 17 * 60_000);
const to = new Date(MONTH_END - 23 * 60_000);
const times = {};
const totals = {};
for (let r = 0; r <= ROUNDS; r += 1) {
  for (const which of r % 2 === 0 ? ['partitioned', 'plain'] : ['plain', 'partitioned']) {
    await use(which);
    for (const g of groupings) {
      const key = `${which} ${g.join('+') || '(total)'}`;
      const t0 = process.hrtime.bigint();
      const rows = await queries.summary({ tenantId: tenant, from, to, groupBy: g });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r > 0) (times[key] ??= []).push(ms); // round 0 warms both
      totals[key] = rows.reduce((a, x) => a + x.requests, 0);
    }
  }
}
await use('partitioned');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
log(`${ROUNDS} rounds, alternating; ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}; ${(await q(`SELECT count(*)::int AS n FROM "UsageRecord"`)).rows[0].n.toLocaleString('en-US')} records`);
for (const g of groupings) {
  const name = g.join('+') || '(total)';
  const a = median(times[`plain ${name}`]);
  const b = median(times[`partitioned ${name}`]);
  if (totals[`plain ${name}`] !== totals[`partitioned ${name}`]) throw new Error(`${name}: totals differ`);
  log(`  ${name.padEnd(20)} plain ${a.toFixed(1)} ms  partitioned ${b.toFixed(1)} ms  ratio ${(b / a).toFixed(2)}  (requests ${totals[`plain ${name}`].toLocaleString('en-US')})`);
}
await prisma.$disconnect();
await pool.end();
