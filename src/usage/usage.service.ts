/**
 * UsageService: the usage sink of the request path and the billing queries.
 *
 * Writing: `record(event)` appends the event to the usage write-ahead log
 * (wal.ts) and resolves once it is fsynced, grouped with every other record
 * that arrived meanwhile (one write + fdatasync per group). The request path
 * awaits it before answering, so an answered request's record survives
 * `kill -9`. The durable events then wait in memory for a single writer loop
 * that inserts batches (when USAGE_FLUSH_BATCH_SIZE records wait, else
 * every USAGE_FLUSH_INTERVAL_MS) with one multi-row
 * `INSERT … ON CONFLICT (id, createdAt) DO NOTHING RETURNING …` per batch, and in the
 * same statement adds exactly the inserted rows to the rollups — so a
 * retried or replayed record never counts twice. A log segment is deleted
 * once all its records are committed. When the database fails, or memory
 * holds more than USAGE_BUFFER_MAX_RECORDS, records are dropped from memory
 * (they are in the log already) and their segments are replayed from disk
 * once the database answers: the log is the spool. At start, segments left
 * by a dead process are replayed. `close()` (the lifecycle's flush phase)
 * writes everything out; what the database does not take stays in the log
 * for the next start.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import type { PrismaClient } from '../db/database';
import type { Prisma } from '../db/generated/client';
import { UnavailableError, isDependencyUnavailable } from '../errors';
import { NO_KEY, billsAsReserved, invalidReason, type UsageEvent, type UsageReservation, type UsageSink } from './usage-event';

export { invalidReason } from './usage-event';
import { ProvisionalRecord, UsageWal, type WalSegment } from './wal';
import { HIST_BUCKETS, bucketSql } from './latency-histogram';
import { UsageQueries } from './usage-queries';

export { NO_KEY };

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;
/** Batch inserts in flight at once (rollup rows are locked in key order, so they cannot deadlock). */
const WRITERS = 2;

const HIST_SUMS = Array.from({ length: HIST_BUCKETS }, (_, b) => `coalesce(sum(n) FILTER (WHERE b = ${b}), 0)`).join(', ');

/** The upsert of one rollup table from per_bucket, for a period column ("hour" or "day"). */
export function rollupUpsert(table: string, period: 'hour' | 'day'): string {
  const periodExpr = period === 'hour' ? 'hour' : `date_trunc('day', hour, 'UTC')`;
  return `INSERT INTO "${table}" AS h ("tenantId","apiKeyId","model","status","protocol","${period}","requests","items","computeUnits","latencySumMs","latencyHist")
  SELECT "tenantId", "apiKeyId", "model", "status", "protocol", ${periodExpr}, sum(n)::int, sum(it), sum(cu), sum(ls), ARRAY[${HIST_SUMS}]::int[]
  FROM per_bucket GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 6, 2, 3, 4, 5
  ON CONFLICT ("tenantId","${period}","apiKeyId","model","status","protocol") DO UPDATE SET
    "requests" = h."requests" + EXCLUDED."requests",
    "items" = h."items" + EXCLUDED."items",
    "computeUnits" = h."computeUnits" + EXCLUDED."computeUnits",
    "latencySumMs" = h."latencySumMs" + EXCLUDED."latencySumMs",
    "latencyHist" = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                          FROM unnest(h."latencyHist", EXCLUDED."latencyHist") WITH ORDINALITY AS t(a, b, i) ORDER BY i)
  RETURNING 1`;
}

/** Records of `source` grouped per rollup key, hour and latency bucket (the CTE the rollup upserts read). */
export function perBucketSql(source: string): string {
  return `SELECT "tenantId", coalesce("apiKeyId", '${NO_KEY}'::uuid) AS "apiKeyId", "model", "status", "protocol", date_trunc('hour', "createdAt", 'UTC') AS hour,
         ${bucketSql('"latencyMs"')} AS b, count(*) AS n, sum("items") AS it, sum("computeUnits") AS cu, sum("latencyMs") AS ls
  FROM ${source} GROUP BY 1, 2, 3, 4, 5, 6, 7`;
}

/**
 * One statement, so one round trip and one implicit transaction: insert the
 * batch, skip ids already stored, and add exactly the inserted rows (the
 * RETURNING set) to the hourly and daily rollups. Rollup rows are upserted
 * in key order so concurrent writers take row locks in the same order.
 */
export const INSERT_SQL = `
WITH ins AS (
  INSERT INTO "UsageRecord" ("id","tenantId","apiKeyId","model","modelVersion","items","computeUnits","status","latencyMs","queueMs","computeMs","executionProvider","protocol","createdAt","cacheHit","traceId")
  SELECT r."id", r."tenantId", r."apiKeyId", r."model", r."modelVersion", r."items", r."computeUnits", r."status"::"UsageStatus",
         r."latencyMs", r."queueMs", r."computeMs", r."executionProvider", r."protocol"::"UsageProtocol", r."createdAt", coalesce(r."cacheHit", false), r."traceId"
  FROM jsonb_to_recordset($1::jsonb) AS r("id" text, "tenantId" uuid, "apiKeyId" uuid, "model" text, "modelVersion" text, "items" int,
    "computeUnits" float8, "status" text, "latencyMs" float8, "queueMs" float8, "computeMs" float8, "executionProvider" text, "protocol" text, "createdAt" timestamptz, "cacheHit" boolean, "traceId" text)
  ON CONFLICT ("id", "createdAt") DO NOTHING
  RETURNING "tenantId", "apiKeyId", "model", "status", "protocol", "createdAt", "items", "computeUnits", "latencyMs"
), per_bucket AS (
  ${perBucketSql('ins')}
), hourly AS (
  ${rollupUpsert('UsageHourly', 'hour')}
), daily AS (
  ${rollupUpsert('UsageDaily', 'day')}
)
SELECT (SELECT count(*) FROM ins)::int AS inserted`;

/**
 * INSERT_SQL, also returning what the inserted rows added (per tenant, key
 * and UTC month) and the RATE_LIMITED records per key and UTC minute, for a
 * UsageCommitHook to act on in the same transaction.
 */
export const INSERT_WITH_ADDED_SQL = INSERT_SQL.replace(
  /SELECT \(SELECT count\(\*\) FROM ins\)::int AS inserted$/,
  `SELECT (SELECT count(*) FROM ins)::int AS inserted,
  (SELECT coalesce(json_agg(d), '[]'::json) FROM (SELECT "tenantId", "apiKeyId", to_char("createdAt" AT TIME ZONE 'UTC', 'YYYY-MM') AS month, sum("computeUnits")::float8 AS units
     FROM ins GROUP BY 1, 2, 3) d)::text AS deltas,
  (SELECT coalesce(json_agg(m), '[]'::json) FROM (SELECT "tenantId", "apiKeyId", to_char(date_trunc('minute', "createdAt", 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS minute, count(*)::int AS n
     FROM ins WHERE "status" = 'RATE_LIMITED' GROUP BY 1, 2, 3) m)::text AS limited`,
);

if (INSERT_WITH_ADDED_SQL === INSERT_SQL) throw new Error('INSERT_WITH_ADDED_SQL: INSERT_SQL no longer ends as expected');

/** What one batch insert added (only rows actually inserted, never a replayed duplicate). */
export interface UsageAdded {
  /** Compute units added per tenant, key and UTC month (YYYY-MM). */
  deltas: { tenantId: string; apiKeyId: string | null; month: string; units: number }[];
  /** RATE_LIMITED records added per tenant, key and UTC minute (ISO start of the minute). */
  rateLimited: { tenantId: string; apiKeyId: string | null; minute: string; n: number }[];
}

/**
 * Work that must commit with the usage it is about (the webhooks outbox:
 * threshold crossings, rate-limit bursts). afterInsert runs inside the
 * batch's transaction, behind a savepoint: if it fails for any reason but
 * the connection, its writes are rolled back, the error logged, and the
 * records still commit, so a bug there can never stop billing.
 */
export interface UsageCommitHook {
  /** Returns whether it wrote anything, handed to afterCommit. */
  afterInsert(tx: Prisma.TransactionClient, added: UsageAdded): Promise<boolean>;
  afterCommit(wrote: boolean): void;
}

export interface UsageStats {
  /** Durable records in memory waiting for a batch insert (or in one). */
  buffered: number;
  /** Durable records only in the log, waiting for a replay (the spool depth). */
  spooled: number;
  /** Records waiting for their group commit. */
  pending: number;
  /** Records in the log not yet committed to Postgres (the WAL lag). */
  walUncommitted: number;
  /** Age of the oldest log segment with uncommitted records; 0 when none. */
  walLagMs: number;
  walSegments: number;
  written: number;
  failures: number;
  rejected: number;
  /** Log lines that could not be read back as records (damage, a bug); kept in quarantined segments. */
  quarantinedLines: number;
  /** Segments renamed aside because they held unreadable lines. */
  quarantinedSegments: number;
  /** Segments whose replay fails for a reason other than the database being unreachable (each retried with backoff). */
  stuck: StuckSegment[];
}

/** A segment whose replay failed while the database answered: not a spool waiting for an outage to end. */
export interface StuckSegment {
  file: string;
  attempts: number;
  since: number;
  error: string;
}

export interface UsageServiceOptions {
  config: Config['usage'];
  /**
   * Anything with a `prisma` getter that throws while the database is
   * unavailable (Database does). With `whenReady`, no insert or replay is
   * tried before it resolves (a start after a crash does not log the
   * database it is still connecting to as an outage).
   */
  db: { readonly prisma: PrismaClient; whenReady?: () => Promise<void> };
  log: Logger;
  /** Where the usage metrics go; a private registry when omitted. */
  registry?: Registry;
  /** Runs in each batch's transaction (the webhooks outbox); absent: one plain statement per batch. */
  commitHook?: UsageCommitHook;
}

/** A durable event and the log segment that holds it. */
interface Entry {
  event: UsageEvent;
  segment: WalSegment;
  /** Stands for a provisional line of `segment` (no line of its own): spilled, that line is replayed instead. */
  provisional?: true;
}

export class UsageService implements UsageSink {
  readonly queries: UsageQueries;
  private buffer: Entry[] = [];
  private readonly wal: UsageWal;
  private readonly config: Config['usage'];
  private readonly log: Logger;
  private readonly db: UsageServiceOptions['db'];
  private readonly commitHook: UsageCommitHook | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private kickScheduled = false;
  private closed = false;
  private dbDown = false;
  private retryAt = 0;
  private retryDelay = RETRY_MIN_MS;
  private walFailing = false;
  /** False until the database first answers (when the db says when: whenReady). */
  private dbReady: boolean;
  private readonly stuck = new Map<WalSegment, StuckSegment & { retryAt: number }>();
  private readonly counters = { written: 0, failures: 0, rejected: 0, quarantinedLines: 0, quarantinedSegments: 0 };
  private readonly writtenTotal: Counter;
  private readonly computeUnitsTotal: Counter<'model'>;
  private readonly failuresTotal: Counter;
  private readonly rejectedTotal: Counter;
  private readonly walFailuresTotal: Counter;
  private readonly quarantinedLinesTotal: Counter;
  private readonly durableSeconds: Histogram;

  constructor(options: UsageServiceOptions) {
    this.config = options.config;
    this.db = options.db;
    this.log = options.log;
    this.commitHook = options.commitHook;
    this.dbReady = options.db.whenReady === undefined;
    this.wal = new UsageWal({
      dir: options.config.spoolDir,
      log: options.log,
      segmentMaxRecords: options.config.walSegmentMaxRecords,
      onDurable: (events, segment) => this.durable(events, segment),
      onWriteFailed: (events, error) => this.writeAround(events, error),
    });
    this.queries = new UsageQueries(options.db);
    const registers = [options.registry ?? new Registry()];
    const stats = () => this.stats();
    const gauge = (name: string, help: string, read: (s: UsageStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(stats()));
        },
      });
    gauge('modelgate_usage_buffered_records', 'Durable usage records in memory waiting for the next batch insert', (s) => s.buffered);
    gauge('modelgate_usage_spooled_records', 'Usage records only in the local log, waiting for the database (spool depth)', (s) => s.spooled);
    gauge('modelgate_usage_wal_uncommitted_records', 'Usage records in the local write-ahead log not yet committed to Postgres', (s) => s.walUncommitted);
    gauge('modelgate_usage_wal_lag_seconds', 'Age of the oldest write-ahead log segment holding records not yet in Postgres', (s) => s.walLagMs / 1000);
    gauge('modelgate_usage_wal_segments', 'Files in the usage write-ahead log', (s) => s.walSegments);
    this.writtenTotal = new Counter({ name: 'modelgate_usage_records_written_total', help: 'Usage records inserted into the database', registers });
    this.computeUnitsTotal = new Counter({
      name: 'modelgate_usage_compute_units_total',
      help: 'Compute units in usage records inserted into the database, by model (what billing prices; a replayed batch that was partly stored already is not counted)',
      labelNames: ['model'],
      registers,
    });
    this.failuresTotal = new Counter({ name: 'modelgate_usage_write_failures_total', help: 'Failed usage batch inserts (the records are replayed from the log)', registers });
    this.rejectedTotal = new Counter({ name: 'modelgate_usage_records_rejected_total', help: 'Usage events refused: malformed at record(), or refused by Postgres for their data (set aside in rejected-*.jsonl; logged)', registers });
    this.durableSeconds = new Histogram({
      name: 'modelgate_usage_record_durable_seconds',
      help: 'How long record() took to make a usage record durable: what each metered request waits before its answer',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    gauge('modelgate_usage_wal_stuck_segments', 'Usage log segments whose replay fails while the database answers (see /readyz usage.detail.stuckSegments and the log)', (s) => s.stuck.length);
    this.quarantinedLinesTotal = new Counter({
      name: 'modelgate_usage_wal_quarantined_lines_total',
      help: 'Usage log lines that could not be read back as records; their segments are renamed quarantined-* in the spool directory (logged)',
      registers,
    });
    this.walFailuresTotal = new Counter({ name: 'modelgate_usage_wal_write_failures_total', help: 'Group commits the write-ahead log could not write (the records went straight to Postgres instead)', registers });
  }

  /** Adopts log segments left by an earlier process and starts the interval flush. */
  async start(): Promise<void> {
    await this.wal.init();
    if (!this.dbReady) {
      void this.db.whenReady?.().then(() => {
        this.dbReady = true;
        if (!this.closed) void this.flush();
      });
    }
    this.timer = setInterval(() => {
      if (this.buffer.length > 0 || this.wal.needsReplay || this.wal.stats().segments > 0) void this.flush();
    }, this.config.flushIntervalMs);
    this.timer.unref();
  }

  /** Where the log (and the rejected-*.jsonl files) live. */
  get spoolDir(): string {
    return this.wal.dir;
  }

  stats(): UsageStats {
    const wal = this.wal.stats();
    return {
      buffered: this.buffer.length,
      spooled: wal.spooled,
      pending: wal.pending,
      walUncommitted: wal.uncommitted,
      walLagMs: wal.oldestUncommittedMs,
      walSegments: wal.segments,
      ...this.counters,
      stuck: [...this.stuck.values()].map(({ file, attempts, since, error }) => ({ file, attempts, since, error })),
    };
  }

  /**
   * Resolves once the event is durable: fsynced in the local log (grouped
   * with concurrent records), or, when the disk fails, committed to
   * Postgres. Rejects (UNAVAILABLE) only when neither worked; the request
   * must then not be answered as served. A malformed event is refused with
   * a logged error and resolves (a bug upstream must not fail requests).
   */
  record(event: UsageEvent, reservation?: UsageReservation): Promise<void> {
    const bad = invalidReason(event);
    if (bad) {
      this.counters.rejected += 1;
      this.rejectedTotal.inc();
      this.log.error({ field: bad, requestId: String(event.id) }, 'malformed usage event refused');
      return Promise.resolve();
    }
    const started = performance.now();
    const provisional = reservation instanceof ProvisionalRecord ? reservation : undefined;
    // The record keeps its provisional's createdAt: (id, createdAt) is the table's key (it is partitioned by
    // month), so a provisional line replayed after its record was stored must meet that row and be skipped.
    const final = provisional && event.createdAt !== provisional.event.createdAt ? { ...event, createdAt: provisional.event.createdAt } : event;
    if (!provisional || !billsAsReserved(final, provisional.event)) {
      return this.wal.append(final, provisional).then(() => {
        this.durableSeconds.observe((performance.now() - started) / 1000);
      });
    }
    // Served as reserved: the provisional line already makes the answer safe and bills exactly this
    // record, so this record gets no line of its own: it takes the provisional line's place in memory
    // (latencies and all go to Postgres from here; after a crash the line replays with latencies 0).
    return provisional.durable.then((durable) => {
      this.durableSeconds.observe((performance.now() - started) / 1000);
      if (durable && this.wal.handOver(provisional)) {
        this.buffered([{ event: final, segment: provisional.segment!, provisional: true }]);
        return undefined;
      }
      // Not durable (awaited), or its segment is being replayed from the file (appended, not awaited: it supersedes the line there).
      const stored = this.wal.append(final, provisional);
      if (!durable) return stored;
      stored.catch(() => undefined);
      return undefined;
    });
  }

  /** UsageSink.reserve: the provisional record goes to the log with the next group, while the call runs. */
  reserve(provisional: UsageEvent): UsageReservation {
    if (invalidReason(provisional) === null) return this.wal.appendProvisional(provisional);
    // Never written (it could not be replayed): record() then waits for the call's own record, which it validates.
    const unwritten = new ProvisionalRecord(provisional);
    unwritten.wrote(undefined);
    return unwritten;
  }

  /** A group is durable in `segment`: hand it to the writer (unless the segment is replayed from disk anyway). */
  private durable(events: UsageEvent[], segment: WalSegment): void {
    if (this.walFailing) {
      this.walFailing = false;
      this.log.info({ dir: this.wal.dir }, 'usage log writes succeed again');
    }
    if (segment.onDisk) return;
    this.buffered(events.map((event) => ({ event, segment })));
  }

  /** Records waiting in memory for the writer loop (each counted in its segment's inMemory). */
  private buffered(entries: Entry[]): void {
    for (const entry of entries) {
      entry.segment.inMemory += 1;
      this.buffer.push(entry);
    }
    if (this.buffer.length > this.config.bufferMaxRecords) {
      this.spill(this.buffer.splice(0));
    } else if (this.buffer.length >= this.config.flushBatchSize && !this.running && !this.kickScheduled && !this.closed) {
      this.kickScheduled = true;
      setImmediate(() => {
        this.kickScheduled = false;
        void this.flush();
      });
    }
  }

  /** The log could not take a group (disk full, I/O error): commit it to Postgres instead, or fail the requests. */
  private async writeAround(events: UsageEvent[], error: unknown): Promise<void> {
    this.walFailuresTotal.inc();
    if (!this.walFailing) this.log.error({ reason: describe(error), dir: this.wal.dir, records: events.length }, 'usage log write failed; writing records straight to the database');
    this.walFailing = true;
    try {
      await this.write(events);
    } catch (dbError) {
      this.log.error({ reason: describe(dbError), records: events.length }, 'usage records could be stored neither in the log nor in the database; their requests fail');
      throw new UnavailableError('Usage could not be recorded; the request was not billed. Retry shortly');
    }
  }

  /** Drops entries from memory: they are in the log, whose segments are now replayed from disk. */
  private spill(entries: Entry[]): void {
    const perSegment = new Map<WalSegment, number>();
    for (const { segment, event, provisional } of entries) {
      perSegment.set(segment, (perSegment.get(segment) ?? 0) + 1);
      // Its only line is the provisional one: the replay must include it.
      if (provisional) this.wal.replayProvisional(segment, event.id);
    }
    for (const [segment, n] of perSegment) this.wal.spilled(segment, n);
  }

  private committed(entries: Entry[]): void {
    const perSegment = new Map<WalSegment, number>();
    for (const { segment } of entries) perSegment.set(segment, (perSegment.get(segment) ?? 0) + 1);
    for (const [segment, n] of perSegment) this.wal.committed(segment, n);
  }

  /**
   * Writes everything durable so far (and replays the log, when the database
   * answers); what the database does not take stays in the log when this
   * resolves. Calls made during a flush share the next one.
   */
  flush(): Promise<void> {
    if (!this.running) {
      this.running = this.cycle()
        // A disk failure while replaying the log: logged; the records stay where they are for the next cycle.
        .catch((error: unknown) => this.log.error({ err: error, dir: this.wal.dir }, 'usage flush failed'))
        .finally(() => {
          this.running = null;
        });
      return this.running;
    }
    this.queued ??= this.running.then(() => {
      this.queued = null;
      return this.flush();
    });
    return this.queued;
  }

  /** Final flush for shutdown (lifecycle 'flush' phase). Later records stay in the log for the next start. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // Retry the database now even if the last attempt failed moments ago.
    this.retryAt = 0;
    await this.wal.settle();
    // A flush leaves what arrived while it wrote for the next interval; at shutdown there is none.
    do await this.flush();
    while (this.buffer.length > 0 && this.canTryDatabase());
    this.closed = true;
    await this.wal.close();
    const { spooled, written, walUncommitted } = this.stats();
    if (walUncommitted > 0) this.log.warn({ records: walUncommitted, dir: this.wal.dir }, 'usage records left in the log; the next start writes them');
    this.log.info({ written, spooled }, 'usage flushed');
  }

  private canTryDatabase(): boolean {
    return this.dbReady && (!this.dbDown || Date.now() >= this.retryAt);
  }

  private markDown(error: unknown, records: number): void {
    this.counters.failures += 1;
    this.failuresTotal.inc();
    if (!this.dbDown) this.log.error({ reason: describe(error), records }, 'usage insert failed; spooling records until the database answers');
    this.dbDown = true;
    this.retryAt = Date.now() + this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
  }

  private markUp(): void {
    if (this.dbDown) this.log.info('usage inserts succeed again');
    this.dbDown = false;
    this.retryDelay = RETRY_MIN_MS;
  }

  private async cycle(): Promise<void> {
    // flush() promises to write what record() was handed before it.
    await this.wal.settle();
    if (this.wal.needsReplay && this.canTryDatabase()) await this.replayLog();
    // What this cycle owes: the records handed to record() before it. Records that arrive while it
    // writes wait for the next interval unless they fill a batch, so under load there is one insert
    // per USAGE_FLUSH_INTERVAL_MS (or per full batch), not one per insert's round trip (which made
    // ~26 small transactions a second at 1,800 requests/s, each a Prisma transaction on the event loop).
    let owed = this.buffer.length;
    const due = () => this.buffer.length > 0 && (owed > 0 || this.buffer.length >= this.config.flushBatchSize);
    // Up to WRITERS batches in flight: the next batch is sent while the database works on the last.
    const inFlight = new Set<Promise<void>>();
    let failed = false;
    while ((due() && !failed) || inFlight.size > 0) {
      while (due() && !failed && inFlight.size < WRITERS && this.canTryDatabase()) {
        const batch = this.buffer.splice(0, this.config.flushBatchSize);
        owed = Math.max(0, owed - batch.length);
        const write: Promise<void> = this.write(batch.map((e) => e.event))
          .then(
            () => {
              this.markUp();
              this.committed(batch);
            },
            (error: unknown) => {
              this.markDown(error, batch.length);
              failed = true;
              this.spill(batch);
            },
          )
          .finally(() => inFlight.delete(write));
        inFlight.add(write);
      }
      if (inFlight.size === 0) break;
      await Promise.race(inFlight);
    }
    // The database is down: nothing more to hold in memory, the log has it all.
    if (failed || (this.buffer.length > 0 && !this.canTryDatabase())) this.spill(this.buffer.splice(0));
    await this.wal.retireCommitted();
  }

  /**
   * Writes the segments marked for replay, oldest first; each is deleted only
   * once all of it is committed (or quarantined, when some lines could not be
   * read). The database unreachable stops the replay (the log waits); any
   * other failure holds only that segment back (stuck: retried with backoff,
   * shown in /readyz and a metric) and the rest of the log goes on.
   */
  private async replayLog(): Promise<void> {
    for (const segment of await this.wal.replayable()) {
      const held = this.stuck.get(segment);
      if (held && Date.now() < held.retryAt) continue;
      const contents = await this.wal.read(segment);
      if (contents === null) {
        this.stuck.delete(segment);
        await this.wal.replayed(segment);
        continue;
      }
      const { events } = contents;
      try {
        for (let i = 0; i < events.length; i += this.config.flushBatchSize) {
          await this.write(events.slice(i, i + this.config.flushBatchSize));
        }
        this.markUp();
      } catch (error) {
        if (isDependencyUnavailable(error)) {
          this.markDown(error, events.length);
          return;
        }
        this.holdStuck(segment, error);
        continue;
      }
      this.stuck.delete(segment);
      if (contents.unreadable.length > 0 || contents.skippedBytes > 0) {
        const target = await this.wal.quarantine(segment);
        this.counters.quarantinedLines += contents.unreadable.length;
        this.counters.quarantinedSegments += 1;
        this.quarantinedLinesTotal.inc(contents.unreadable.length);
        this.log.warn(
          { file: target, records: events.length, unreadableLines: contents.unreadable.length, skippedBytes: contents.skippedBytes },
          'usage log segment quarantined: its readable records are in the database, the file is kept for a person to look at',
        );
        continue;
      }
      await this.wal.replayed(segment);
      this.log.info({ file: segment.file, records: events.length }, 'usage log segment written to the database');
    }
  }

  /** A segment's replay failed while the database answered: retried with backoff, logged once, shown in /readyz. */
  private holdStuck(segment: WalSegment, error: unknown): void {
    const now = Date.now();
    const previous = this.stuck.get(segment);
    const attempts = (previous?.attempts ?? 0) + 1;
    const delay = Math.min(RETRY_MIN_MS * 2 ** Math.min(attempts, 10), 60_000);
    this.stuck.set(segment, { file: segment.file, attempts, since: previous?.since ?? now, error: describe(error).slice(0, 300), retryAt: now + delay });
    if (!previous) this.log.error({ file: segment.file, reason: describe(error) }, 'usage log segment cannot be replayed (not a database outage); retrying it with backoff, the rest of the log goes on');
  }

  /**
   * insert(), but a record that Postgres refuses for its data (which would
   * fail every retry and block the log behind it) is isolated by halving
   * the batch and set aside in the spool directory's rejected-*.jsonl, with
   * an error logged. Connection failures propagate (the caller spools).
   */
  private async write(all: UsageEvent[]): Promise<void> {
    const events: UsageEvent[] = [];
    for (const event of all) {
      const bad = invalidReason(event);
      if (!bad) {
        events.push(event);
        continue;
      }
      // Never sent: a record that cannot be serialized would fail the batch for every record in it.
      this.counters.rejected += 1;
      this.rejectedTotal.inc();
      this.log.error({ requestId: String(event.id), field: bad }, 'malformed usage record; kept in the spool directory as rejected');
      await this.wal.reject([event]);
    }
    if (events.length === 0) return;
    try {
      await this.insert(events);
    } catch (error) {
      if (!isDataError(error)) throw error;
      if (events.length === 1) {
        const [event] = events as [UsageEvent];
        this.counters.rejected += 1;
        this.rejectedTotal.inc();
        this.log.error({ requestId: event.id, reason: describe(error) }, 'usage record refused by the database; kept in the spool directory as rejected');
        await this.wal.reject(events);
        return;
      }
      const half = Math.ceil(events.length / 2);
      await this.write(events.slice(0, half));
      await this.write(events.slice(half));
    }
  }

  /** One statement: insert the records and add exactly the inserted ones to the rollups. Returns the rows inserted. */
  private async insert(events: UsageEvent[]): Promise<number> {
    const prisma = this.db.prisma; // throws while the database is known to be down
    // Sorted by id so concurrent writers meet duplicate ids in the same order (no unique-index deadlock).
    const sorted = [...events].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const payload = JSON.stringify(sorted.map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })));
    const inserted = this.commitHook ? await this.insertWithHook(prisma, this.commitHook, payload) : Number((await prisma.$queryRawUnsafe<{ inserted: number }[]>(INSERT_SQL, payload))[0]?.inserted ?? 0);
    this.counters.written += inserted;
    this.writtenTotal.inc(inserted);
    // Off the request path (one pass per batch). Which rows of a partly stored replay were new is not returned, so only whole batches count.
    if (inserted === sorted.length) {
      const units = new Map<string, number>();
      for (const e of sorted) if (e.computeUnits > 0) units.set(e.model, (units.get(e.model) ?? 0) + e.computeUnits);
      for (const [model, n] of units) this.computeUnitsTotal.inc({ model }, n);
    }
    return inserted;
  }

  /** The insert and the hook's writes in one transaction (the hook behind a savepoint). */
  private async insertWithHook(prisma: PrismaClient, hook: UsageCommitHook, payload: string): Promise<number> {
    let wrote = false;
    const inserted = await prisma.$transaction(
      async (tx) => {
        const rows = await tx.$queryRawUnsafe<{ inserted: number; deltas: string; limited: string }[]>(INSERT_WITH_ADDED_SQL, payload);
        const row = rows[0];
        const count = Number(row?.inserted ?? 0);
        if (count === 0 || !row) return 0;
        const added: UsageAdded = {
          deltas: (JSON.parse(row.deltas) as UsageAdded['deltas']).map((d) => ({ ...d, apiKeyId: d.apiKeyId === NO_KEY ? null : d.apiKeyId })),
          rateLimited: JSON.parse(row.limited) as UsageAdded['rateLimited'],
        };
        await tx.$executeRawUnsafe('SAVEPOINT usage_hook');
        try {
          wrote = await hook.afterInsert(tx, added);
          await tx.$executeRawUnsafe('RELEASE SAVEPOINT usage_hook');
        } catch (error) {
          if (isDependencyUnavailable(error)) throw error;
          this.log.error({ err: error }, 'usage commit hook failed; its writes are rolled back, the usage records commit');
          await tx.$executeRawUnsafe('ROLLBACK TO SAVEPOINT usage_hook');
          wrote = false;
        }
        return count;
      },
      // A big batch under load may take a while; the default 5 s would abort a healthy insert.
      { maxWait: 30_000, timeout: 120_000 },
    );
    hook.afterCommit(wrote);
    return inserted;
  }
}

/** The Postgres SQLSTATE behind a Prisma raw-query error, when there is one. */
export function sqlState(error: unknown): string | undefined {
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown; code?: unknown } } } } | null)?.meta?.driverAdapterError?.cause;
  const code = cause?.originalCode ?? cause?.code ?? (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Errors caused by the data of some record (class 22 data exception, 23 integrity): retrying the same batch cannot help. */
function isDataError(error: unknown): boolean {
  const state = sqlState(error);
  // 22 data exception, 23 integrity violation, 54 program limit (e.g. an index row too large):
  // no retry can fix these, so the record is isolated instead of blocking the spool.
  return state !== undefined && (state.startsWith('22') || state.startsWith('23') || state.startsWith('54'));
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
