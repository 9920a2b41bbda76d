/**
 * UsageRecord partitioned by month (issue #27 item 7), on PostgreSQL and on
 * embedded PGlite, which run the same migrations:
 * - the migration converts a table that already holds rows (three months of
 *   them) without losing, changing or duplicating one: same count, same
 *   checksum over every column, before and after, and after maintenance has
 *   split the months out of the default partition into monthly partitions;
 * - partitions are made ahead (current month + USAGE_PARTITION_MONTHS_AHEAD);
 * - a record for a month with no partition lands in the default partition
 *   and is moved out by the next pass;
 * - the batch insert stays idempotent on (id, createdAt);
 * - retention drops whole months of raw records while the month summary
 *   (the rollups) keeps its totals;
 * - a served call's record keeps its provisional record's createdAt, so the
 *   key (id, createdAt) still meets a provisional line replayed after a crash.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { PrismaClient } from '../../src/db/generated/client';
import { applyMigrations, MIGRATIONS_DIR, readMigrations, type MigrationTarget } from '../../src/db/migrate';
import { UsagePartitions, monthIndex, partitionName } from '../../src/usage/usage-partitions';
import { INSERT_SQL, UsageService } from '../../src/usage/usage.service';
import { UsageQueries } from '../../src/usage/usage-queries';
import { testEnv } from '../helpers/env';
import { drain, makeEvent, quietLogger, usageConfig } from './helpers';

// Applying every migration through the WebAssembly schema engine, twice per database: a liveness guard, not a speed bound.
jest.setTimeout(300_000);

const PARTITION_MIGRATION = '20261206060000_usage_partitioned_by_month';
const TRACE_ID_MIGRATION = '20261206085000_usage_record_trace_id';
/** The batch insert as the pre-partitioning gateway ran it: ON CONFLICT ("id"), and no trace id (a later column). */
const OLD_INSERT_SQL = INSERT_SQL.replace('ON CONFLICT ("id", "createdAt")', 'ON CONFLICT ("id")').replace(',"traceId")', ')').replace(', r."traceId"', '').replace(', "traceId" text)', ')');
if (OLD_INSERT_SQL.includes('traceId')) throw new Error('OLD_INSERT_SQL: INSERT_SQL no longer names traceId as expected');
const TENANT = '00000000-0000-4000-8000-0000000000aa';
const NOW = new Date(Date.UTC(2026, 11, 6, 12));
const ROWS_PER_MONTH = 700;
/** Every column, in a fixed text form, ordered by id: equal checksums mean the same rows. */
const CHECKSUM_SQL = `SELECT count(*)::int AS n, md5(coalesce(string_agg(concat_ws('|', "id","tenantId","apiKeyId","model","modelVersion","items","computeUnits","status","latencyMs","queueMs","computeMs","executionProvider","protocol","cacheHit", to_char("createdAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')), ',' ORDER BY "id"), '')) AS sum FROM "UsageRecord"`;

/** A migrations folder holding every migration before the partitioning one. */
async function migrationsBeforePartitioning(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-migrations-'));
  cpSync(path.join(MIGRATIONS_DIR, 'migration_lock.toml'), path.join(dir, 'migration_lock.toml'));
  const all = await readMigrations();
  expect(all.map((m) => m.name)).toContain(PARTITION_MIGRATION);
  for (const m of all.filter((x) => x.name < PARTITION_MIGRATION)) cpSync(path.join(MIGRATIONS_DIR, m.name), path.join(dir, m.name), { recursive: true });
  return dir;
}

/** Three months of records (October to December 2026), written the way the pre-partitioning gateway wrote them. */
function oldRows(): ReturnType<typeof makeEvent>[] {
  const rows: ReturnType<typeof makeEvent>[] = [];
  for (const [month, count] of [[9, ROWS_PER_MONTH], [10, ROWS_PER_MONTH], [11, ROWS_PER_MONTH]] as const) {
    for (let i = 0; i < count; i += 1) {
      rows.push(makeEvent(TENANT, i, { createdAt: new Date(Date.UTC(2026, month, 1) + i * 3_600_017), cacheHit: i % 7 === 0 }));
    }
  }
  return rows;
}

interface Target {
  migrationTarget: MigrationTarget;
  prisma: PrismaClient;
  query<T>(sql: string, ...args: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

async function postgresTarget(): Promise<Target> {
  const name = `${testEnv.databaseName}_partitions`;
  const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(testEnv.adminDatabaseUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    migrationTarget: { kind: 'postgres', url: url.toString() },
    prisma,
    query: async <T,>(sql: string, ...args: unknown[]) => (await pool.query(sql, args)).rows as T[],
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function pgliteTarget(): Promise<Target> {
  const db = new PGlite();
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(db) });
  return {
    migrationTarget: { kind: 'pglite', db },
    prisma,
    query: async <T,>(sql: string, ...args: unknown[]) => (await db.query<T>(sql, args)).rows,
    close: async () => {
      await prisma.$disconnect();
      await db.close();
    },
  };
}

async function checksum(t: Target): Promise<{ n: number; sum: string }> {
  const [row] = await t.query<{ n: number; sum: string }>(CHECKSUM_SQL);
  return row!;
}

/** The partitions of UsageRecord and the rows each holds. */
async function layout(t: Target): Promise<Record<string, number>> {
  const parts = await t.query<{ name: string }>(`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '"UsageRecord"'::regclass ORDER BY 1`);
  const out: Record<string, number> = {};
  for (const { name } of parts) out[name] = Number((await t.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${name}"`))[0]!.n);
  return out;
}

describe.each([
  ['PostgreSQL', postgresTarget],
  ['PGlite', pgliteTarget],
])('UsageRecord partitioned by month on %s', (_label, open) => {
  let t: Target;
  let partitions: UsagePartitions;
  const rows = oldRows();
  let before: { n: number; sum: string };

  beforeAll(async () => {
    t = await open();
    const oldDir = await migrationsBeforePartitioning();
    try {
      await applyMigrations(t.migrationTarget, oldDir);
    } finally {
      rmSync(oldDir, { recursive: true, force: true });
    }
    // The pre-partitioning table, filled as the old gateway filled it (the batch insert of that day, ON CONFLICT ("id")).
    for (let i = 0; i < rows.length; i += 500) {
      const payload = JSON.stringify(rows.slice(i, i + 500).map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })));
      await t.prisma.$queryRawUnsafe(OLD_INSERT_SQL, payload);
    }
    before = await checksum(t);
    const { log } = quietLogger();
    partitions = new UsagePartitions({ db: t, log, monthsAhead: 3, retentionMonths: null, intervalMs: 3_600_000 });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('converts the filled table: every row kept exactly, none doubled', async () => {
    expect(before.n).toBe(rows.length);
    const [kindBefore] = await t.query<{ kind: string }>(`SELECT relkind::text AS kind FROM pg_class WHERE relname = 'UsageRecord'`);
    expect(kindBefore!.kind).toBe('r');

    // The partitioning, then the later ones (the trace id column among them), in order.
    const applied = await applyMigrations(t.migrationTarget);
    expect(applied[0]).toBe(PARTITION_MIGRATION);
    expect(applied).toContain(TRACE_ID_MIGRATION);
    const [kind] = await t.query<{ kind: string }>(`SELECT relkind::text AS kind FROM pg_class WHERE relname = 'UsageRecord'`);
    expect(kind!.kind).toBe('p');
    expect(await layout(t)).toEqual({ UsageRecord_default: rows.length });
    expect(await checksum(t)).toEqual(before);
  });

  it('splits the months out of the default partition and makes the coming months', async () => {
    const report = await partitions.maintain(NOW);
    expect(report.failed).toEqual([]);
    expect(report.created).toEqual([
      { name: 'UsageRecord_p202610', movedRows: ROWS_PER_MONTH },
      { name: 'UsageRecord_p202611', movedRows: ROWS_PER_MONTH },
      { name: 'UsageRecord_p202612', movedRows: ROWS_PER_MONTH },
      { name: 'UsageRecord_p202701', movedRows: 0 },
      { name: 'UsageRecord_p202702', movedRows: 0 },
      { name: 'UsageRecord_p202703', movedRows: 0 },
    ]);
    expect(await layout(t)).toEqual({
      UsageRecord_default: 0,
      UsageRecord_p202610: ROWS_PER_MONTH,
      UsageRecord_p202611: ROWS_PER_MONTH,
      UsageRecord_p202612: ROWS_PER_MONTH,
      UsageRecord_p202701: 0,
      UsageRecord_p202702: 0,
      UsageRecord_p202703: 0,
    });
    expect(await checksum(t)).toEqual(before);
    // A second pass has nothing to do.
    expect(await partitions.maintain(NOW)).toEqual({ created: [], dropped: [], deletedFromDefault: 0, failed: [] });
  });

  it('keeps the batch insert idempotent on (id, createdAt) and finds a record by id alone', async () => {
    const replay = JSON.stringify(rows.slice(0, 50).map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })));
    const [again] = await t.prisma.$queryRawUnsafe<{ inserted: number }[]>(INSERT_SQL, replay);
    expect(again!.inserted).toBe(0);
    expect(await checksum(t)).toEqual(before);
    const queries = new UsageQueries({ prisma: t.prisma });
    const one = rows[ROWS_PER_MONTH + 3]!;
    expect((await queries.recordById(TENANT, one.id))?.createdAt).toEqual(one.createdAt);
  });

  it('has the trace id column on the parent and every partition: a traced record is stored and read back with it, older rows without', async () => {
    const traced = makeEvent(TENANT, 9_001, { createdAt: new Date(Date.UTC(2026, 10, 20, 9)), traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect((await t.prisma.$queryRawUnsafe<{ inserted: number }[]>(INSERT_SQL, JSON.stringify([{ ...traced, createdAt: traced.createdAt.toISOString() }])))[0]!.inserted).toBe(1);
    const parts = Object.keys(await layout(t));
    const withColumn = await t.query<{ table_name: string }>(`SELECT table_name FROM information_schema.columns WHERE column_name = 'traceId' AND table_name LIKE 'UsageRecord%' ORDER BY 1`);
    expect(withColumn.map((r) => r.table_name)).toEqual(['UsageRecord', ...parts].sort());
    const [where] = await t.query<{ part: string; traceId: string }>(`SELECT tableoid::regclass::text AS part, "traceId" FROM "UsageRecord" WHERE "id" = $1`, traced.id);
    expect(where).toEqual({ part: '"UsageRecord_p202611"', traceId: traced.traceId });
    const queries = new UsageQueries({ prisma: t.prisma });
    expect((await queries.recordById(TENANT, traced.id))?.traceId).toBe(traced.traceId);
    expect((await queries.recordById(TENANT, rows[0]!.id))?.traceId).toBeNull();
    await t.query(`DELETE FROM "UsageRecord" WHERE "id" = $1`, traced.id);
  });

  it('catches a record for a month with no partition in the default partition, and the next pass moves it out', async () => {
    const far = makeEvent(TENANT, 1, { createdAt: new Date(Date.UTC(2029, 4, 17, 8)) });
    await t.prisma.$queryRawUnsafe(INSERT_SQL, JSON.stringify([{ ...far, createdAt: far.createdAt.toISOString() }]));
    expect((await layout(t))['UsageRecord_default']).toBe(1);
    const report = await partitions.maintain(NOW);
    expect(report.created).toEqual([{ name: partitionName(monthIndex(far.createdAt)), movedRows: 1 }]);
    const after = await layout(t);
    expect(after['UsageRecord_default']).toBe(0);
    expect(after['UsageRecord_p202905']).toBe(1);
  });

  it('drops raw months past USAGE_RETENTION_MONTHS while the month summary keeps its totals', async () => {
    const queries = new UsageQueries({ prisma: t.prisma });
    const october = { tenantId: TENANT, from: new Date(Date.UTC(2026, 9, 1)), to: new Date(Date.UTC(2026, 10, 1)), groupBy: [] };
    const summaryBefore = await queries.summary(october);
    expect(summaryBefore[0]!.requests).toBe(ROWS_PER_MONTH);

    // December 2026 with one month kept before it: October goes, November stays.
    const retention = new UsagePartitions({ db: t, log: quietLogger().log, monthsAhead: 3, retentionMonths: 1, intervalMs: 3_600_000 });
    const report = await retention.maintain(NOW);
    expect(report).toEqual({ created: [], dropped: ['UsageRecord_p202610'], deletedFromDefault: 0, failed: [] });
    const after = await layout(t);
    expect(after['UsageRecord_p202610']).toBeUndefined();
    expect(after['UsageRecord_p202611']).toBe(ROWS_PER_MONTH);
    expect((await checksum(t)).n).toBe(rows.length - ROWS_PER_MONTH + 1);

    const summaryAfter = await queries.summary(october);
    expect(summaryAfter).toEqual(summaryBefore);
  });

  it("stores a served call under its provisional record's createdAt, so a provisional line replayed after a crash meets that row", async () => {
    const usage = new UsageService({ config: usageConfig(), db: t, log: quietLogger().log });
    await usage.start();
    const reserved = makeEvent(TENANT, 0, { status: 'OK', items: 2, computeUnits: 3, createdAt: new Date(NOW.getTime() - 5_000) });
    const reservation = usage.reserve(reserved);
    // The call's own record is made when it ends, later, with its latencies.
    await usage.record({ ...reserved, latencyMs: 12.5, computeMs: 9, createdAt: new Date(reserved.createdAt.getTime() + 40) }, reservation);
    await drain(usage);
    await usage.close();
    const stored = await t.query<{ createdAt: Date; latencyMs: number }>(`SELECT "createdAt", "latencyMs" FROM "UsageRecord" WHERE "id" = $1`, reserved.id);
    expect(stored.map((r) => [new Date(r.createdAt).getTime(), r.latencyMs])).toEqual([[reserved.createdAt.getTime(), 12.5]]);
    const replay = JSON.stringify([{ ...reserved, createdAt: reserved.createdAt.toISOString() }]);
    expect((await t.prisma.$queryRawUnsafe<{ inserted: number }[]>(INSERT_SQL, replay))[0]!.inserted).toBe(0);
  });
});
