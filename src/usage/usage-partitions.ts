/**
 * UsageRecord's monthly partitions: made ahead of time, split out of the
 * DEFAULT partition, and dropped past the retention.
 *
 * The table is RANGE-partitioned on "createdAt" by UTC month (migration
 * 20261206060000_usage_partitioned_by_month), one partition per month named
 * `UsageRecord_pYYYYMM`, plus `UsageRecord_default`, which holds the rows of
 * the table as it was before the migration and catches any insert for a month
 * that has no partition yet (so the hot path never fails for want of one).
 *
 * `maintain()` (at start and every USAGE_PARTITION_MAINTENANCE_INTERVAL_MS):
 * 1. each month that has rows in the default partition, and the current month
 *    and USAGE_PARTITION_MONTHS_AHEAD after it, gets its partition: in one
 *    transaction the rows of that month move out of the default partition
 *    into a new table (`DELETE … RETURNING` feeding the `INSERT`, so a row is
 *    never in both or neither) that is then attached;
 * 2. with USAGE_RETENTION_MONTHS = N, partitions of months before the
 *    current month minus N are dropped (and such rows still in the default
 *    partition deleted). UsageHourly/UsageDaily are untouched, so summaries,
 *    invoices and quota rebuilds of those months keep their totals (they read
 *    the rollups for whole hours, raw records only for partial hours).
 *
 * Each step is its own transaction behind one advisory lock (replicas take
 * turns) with a short lock_timeout: a DDL lock waiting on a long query would
 * otherwise queue every usage insert behind it. A step that cannot get its
 * lock is tried again at the next run.
 */
import type { Logger } from '../log/logger';
import type { PrismaClient } from '../db/database';
import type { Prisma } from '../db/generated/client';

/** pg_advisory_xact_lock key of partition maintenance (arbitrary, distinct from the others in src/). */
const MAINTENANCE_LOCK_KEY = 727_027;
const PARENT = 'UsageRecord';
const DEFAULT_PARTITION = 'UsageRecord_default';
const PARTITION_NAME = /^UsageRecord_p(\d{4})(\d{2})$/;
const COLUMNS = '"id","tenantId","apiKeyId","model","modelVersion","items","computeUnits","status","latencyMs","queueMs","computeMs","executionProvider","createdAt","protocol","cacheHit","traceId"';
/** A step moving a month of a large default partition can take minutes; it holds no lock the hot path needs meanwhile. */
const STEP_TIMEOUT_MS = 30 * 60_000;

/** A UTC month as the number of months since year 0 (y * 12 + m - 1). */
export type MonthIndex = number;

export function monthIndex(at: Date): MonthIndex {
  return at.getUTCFullYear() * 12 + at.getUTCMonth();
}

export function monthStart(m: MonthIndex): Date {
  return new Date(Date.UTC(Math.floor(m / 12), m % 12, 1));
}

export function partitionName(m: MonthIndex): string {
  return `UsageRecord_p${Math.floor(m / 12)}${String((m % 12) + 1).padStart(2, '0')}`;
}

export interface PartitionOptions {
  db: { readonly prisma: PrismaClient; whenReady?: () => Promise<void> };
  log: Logger;
  monthsAhead: number;
  /** Whole months kept before the current one; null: all. */
  retentionMonths: number | null;
  intervalMs: number;
}

export interface MaintenanceReport {
  /** Partitions made (names), with the rows moved into each from the default partition. */
  created: { name: string; movedRows: number }[];
  /** Partitions dropped past the retention. */
  dropped: string[];
  /** Rows past the retention deleted from the default partition. */
  deletedFromDefault: number;
  /** Steps that failed (a lock not had in time, an outage): tried again at the next run. */
  failed: { step: string; error: string }[];
}

export class UsagePartitions {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<MaintenanceReport> | null = null;
  private closed = false;

  constructor(private readonly options: PartitionOptions) {}

  /** Runs maintain() once the database is ready, then every intervalMs; failures are logged, never thrown. */
  start(): void {
    const run = (): void => {
      if (this.closed) return;
      void this.maintain().catch((error: unknown) => this.options.log.warn({ reason: String(error) }, 'usage partition maintenance failed'));
    };
    void (this.options.db.whenReady?.() ?? Promise.resolve()).then(run);
    this.timer = setInterval(run, this.options.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass (a pass already running is joined, not doubled). */
  maintain(now = new Date()): Promise<MaintenanceReport> {
    this.running ??= this.pass(now).finally(() => (this.running = null));
    return this.running;
  }

  /** Makes the partition of the month holding `at` if it is missing (what a pass does for the months it wants). */
  async ensureMonth(at: Date): Promise<void> {
    await this.createPartition(monthIndex(at));
  }

  /** The partitions that exist, by month. */
  async partitions(): Promise<Map<MonthIndex, string>> {
    const rows = await this.options.db.prisma.$queryRawUnsafe<{ name: string }[]>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '"${PARENT}"'::regclass`,
    );
    const out = new Map<MonthIndex, string>();
    for (const { name } of rows) {
      const m = PARTITION_NAME.exec(name);
      if (m) out.set(Number(m[1]) * 12 + Number(m[2]) - 1, name);
    }
    return out;
  }

  /** Months with rows in the default partition, walked along its createdAt index (one probe per month). */
  async monthsInDefault(): Promise<MonthIndex[]> {
    const months: MonthIndex[] = [];
    let from = new Date(0);
    for (;;) {
      const rows = await this.options.db.prisma.$queryRawUnsafe<{ at: Date | null }[]>(
        `SELECT min("createdAt") AS at FROM "${DEFAULT_PARTITION}" WHERE "createdAt" >= $1::timestamptz`,
        from.toISOString(),
      );
      const at = rows[0]?.at;
      if (!at) return months;
      const m = monthIndex(new Date(at));
      months.push(m);
      from = monthStart(m + 1);
    }
  }

  private async pass(now: Date): Promise<MaintenanceReport> {
    const { log, monthsAhead, retentionMonths } = this.options;
    const report: MaintenanceReport = { created: [], dropped: [], deletedFromDefault: 0, failed: [] };
    const current = monthIndex(now);
    const oldestKept = retentionMonths === null ? null : current - retentionMonths;
    const existing = await this.partitions();
    const inDefault = await this.monthsInDefault();

    const wanted = new Set<MonthIndex>(inDefault.filter((m) => oldestKept === null || m >= oldestKept));
    for (let m = current; m <= current + monthsAhead; m += 1) wanted.add(m);
    for (const m of [...wanted].sort((a, b) => a - b)) {
      if (existing.has(m)) continue;
      await this.step(report, `create ${partitionName(m)}`, async () => {
        const moved = await this.createPartition(m);
        if (moved !== null) report.created.push({ name: partitionName(m), movedRows: moved });
      });
    }

    if (oldestKept !== null) {
      for (const [m, name] of [...existing].sort(([a], [b]) => a - b)) {
        if (m >= oldestKept) continue;
        await this.step(report, `drop ${name}`, async () => {
          await this.locked(async (tx) => {
            await tx.$executeRawUnsafe(`DROP TABLE IF EXISTS "${name}"`);
          });
          report.dropped.push(name);
        });
      }
      if (inDefault.some((m) => m < oldestKept)) {
        await this.step(report, 'delete old rows from the default partition', async () => {
          report.deletedFromDefault = await this.locked((tx) =>
            tx.$executeRawUnsafe(`DELETE FROM "${DEFAULT_PARTITION}" WHERE "createdAt" < $1::timestamptz`, monthStart(oldestKept).toISOString()),
          );
        });
      }
    }

    if (report.created.length > 0 || report.dropped.length > 0 || report.deletedFromDefault > 0 || report.failed.length > 0) {
      log.info({ ...report, retentionMonths, monthsAhead }, 'usage partitions maintained');
    }
    return report;
  }

  /**
   * Makes month m's partition, moving its rows out of the default partition
   * in the same transaction; the rows moved, or null when another replica made it first.
   */
  private createPartition(m: MonthIndex): Promise<number | null> {
    const name = partitionName(m);
    const from = monthStart(m).toISOString();
    const to = monthStart(m + 1).toISOString();
    return this.locked(async (tx) => {
      const exists = await tx.$queryRawUnsafe<{ t: string | null }[]>(`SELECT to_regclass($1)::text AS t`, `"${name}"`);
      if (exists[0]?.t) return null;
      // Defaults and NOT NULLs come with LIKE; the parent's indexes are made on attach (after the rows are in: faster).
      await tx.$executeRawUnsafe(`CREATE TABLE "${name}" (LIKE "${PARENT}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
      const moved = await tx.$executeRawUnsafe(
        `WITH moved AS (DELETE FROM "${DEFAULT_PARTITION}" WHERE "createdAt" >= $1::timestamptz AND "createdAt" < $2::timestamptz RETURNING ${COLUMNS})
         INSERT INTO "${name}" (${COLUMNS}) SELECT ${COLUMNS} FROM moved`,
        from,
        to,
      );
      // Bounds as literals: DDL takes no parameters. They are ISO strings this code made.
      await tx.$executeRawUnsafe(`ALTER TABLE "${PARENT}" ATTACH PARTITION "${name}" FOR VALUES FROM ('${from}') TO ('${to}')`);
      return moved;
    });
  }

  private async locked<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    return this.options.db.prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = '3s'`);
        await tx.$queryRawUnsafe('SELECT pg_advisory_xact_lock($1)::text', MAINTENANCE_LOCK_KEY);
        return fn(tx);
      },
      { maxWait: 10_000, timeout: STEP_TIMEOUT_MS },
    );
  }

  private async step(report: MaintenanceReport, step: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (error) {
      report.failed.push({ step, error: error instanceof Error ? error.message : String(error) });
    }
  }
}
