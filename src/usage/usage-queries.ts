/**
 * Billing reads: summaries, the record list (keyset pages) and the CSV export.
 *
 * Summaries split [from, to) into whole UTC days (daily rollups), whole
 * hours at the ends (hourly rollups) and partial hours at the very ends (raw
 * records, an index range on tenantId, createdAt), so totals are exact for
 * any range and a month of one tenant reads about 31 + 46 rollup rows per
 * (key, model, status). HOUR grouping reads hourly rollups only.
 * Percentiles come from the merged latency histograms of both parts — the
 * same estimator whatever the range, so a dashboard's numbers do not change
 * method when it zooms (accuracy: see latency-histogram.ts).
 */
import { BadInputError } from '../errors';
import { afterPosition, decodeCursor, encodeCursor } from '../ids/cursor';
import type { PrismaClient } from '../db/database';
import { NO_KEY, type UsageEvent, type UsageProtocolName, type UsageStatusName } from './usage-event';
import { HIST_BUCKETS, bucketSql, emptyHistogram, percentile } from './latency-histogram';
import { amountMicrosSql, priceInEffect, priceLateral } from '../billing/price-book';

export const USAGE_GROUP_BY = ['HOUR', 'DAY', 'MODEL', 'API_KEY', 'STATUS', 'PROTOCOL'] as const;
export type UsageGroupBy = (typeof USAGE_GROUP_BY)[number];

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
export const MAX_RANGE_DAYS = 400;
export const MAX_HOURLY_RANGE_DAYS = 93;
export const MAX_PAGE_SIZE = 1000;

export interface UsageSummaryRow {
  hour: Date | null;
  day: Date | null;
  model: string | null;
  apiKeyId: string | null;
  status: UsageStatusName | null;
  protocol: UsageProtocolName | null;
  requests: number;
  items: number;
  computeUnits: number;
  errors: number;
  avgLatencyMs: number | null;
  p50LatencyMs: number | null;
  p95LatencyMs: number | null;
  /** Priced spend per currency (integer micro-units), from the price in effect at each hour. */
  spend: { currency: string; amountMicros: bigint }[];
  /** Compute units with no price in effect (not in spend). */
  unpricedComputeUnits: number;
}

export interface SummaryParams {
  /** null: every tenant (admin only; the resolver decides). */
  tenantId: string | null;
  from: Date;
  to: Date;
  groupBy: UsageGroupBy[];
}

export interface RecordFilter {
  tenantId: string | null;
  from?: Date | null;
  to?: Date | null;
  apiKeyId?: string | null;
  model?: string | null;
  status?: UsageStatusName | null;
  protocol?: UsageProtocolName | null;
}

/** A stored record: the event the request path handed over; the trace id column reads null where the event had none. */
export type UsageRecordRow = Omit<UsageEvent, 'traceId'> & { traceId: string | null };

export interface RecordPage {
  records: { cursor: string; node: UsageRecordRow }[];
  hasNextPage: boolean;
  endCursor: string | null;
}

/** Validates a [from, to) range: both valid, from < to, at most maxDays long. */
export function checkRange(from: Date, to: Date, maxDays = MAX_RANGE_DAYS): void {
  if (Number.isNaN(from.getTime())) throw new BadInputError('from is not a valid date-time', 'from');
  if (Number.isNaN(to.getTime())) throw new BadInputError('to is not a valid date-time', 'to');
  if (from.getTime() >= to.getTime()) throw new BadInputError('from must be before to', 'from');
  if (to.getTime() - from.getTime() > maxDays * DAY_MS) throw new BadInputError(`the range from..to may span at most ${maxDays} days`, 'to');
}

interface RawAggregate {
  [group: string]: unknown;
  requests: number | null;
  items: number | null;
  computeUnits: number | null;
  errors: number | null;
  latencySumMs: number | null;
}

type Source = 'day' | 'hour' | 'record';
type GroupColumn = { alias: string } & Record<Source, string>;
const GROUP_COLUMNS: Record<UsageGroupBy, GroupColumn> = {
  HOUR: { alias: 'hour', day: 'NULL', hour: `"hour"`, record: `date_trunc('hour', "createdAt", 'UTC')` },
  DAY: { alias: 'day', day: `"day"`, hour: `date_trunc('day', "hour", 'UTC')`, record: `date_trunc('day', "createdAt", 'UTC')` },
  MODEL: { alias: 'model', day: `"model"`, hour: `"model"`, record: `"model"` },
  API_KEY: { alias: 'apiKeyId', day: `NULLIF("apiKeyId", '${NO_KEY}')::text`, hour: `NULLIF("apiKeyId", '${NO_KEY}')::text`, record: `"apiKeyId"::text` },
  STATUS: { alias: 'status', day: `"status"::text`, hour: `"status"::text`, record: `"status"::text` },
  PROTOCOL: { alias: 'protocol', day: `"protocol"::text`, hour: `"protocol"::text`, record: `"protocol"::text` },
};

/** Splits [from, to) into whole days, whole hours and partial hours (ms since epoch). */
export function segments(from: number, to: number, useDays: boolean): { source: Source; from: number; to: number }[] {
  const h0 = Math.ceil(from / HOUR_MS) * HOUR_MS;
  const h1 = Math.floor(to / HOUR_MS) * HOUR_MS;
  if (h0 >= h1) return [{ source: 'record', from, to }];
  const out: { source: Source; from: number; to: number }[] = [];
  if (from < h0) out.push({ source: 'record', from, to: h0 });
  if (h1 < to) out.push({ source: 'record', from: h1, to });
  const d0 = Math.ceil(h0 / DAY_MS) * DAY_MS;
  const d1 = Math.floor(h1 / DAY_MS) * DAY_MS;
  if (!useDays || d0 >= d1) {
    out.push({ source: 'hour', from: h0, to: h1 });
    return out;
  }
  out.push({ source: 'day', from: d0, to: d1 });
  if (h0 < d0) out.push({ source: 'hour', from: h0, to: d0 });
  if (d1 < h1) out.push({ source: 'hour', from: d1, to: h1 });
  return out;
}

export class UsageQueries {
  constructor(private readonly db: { readonly prisma: PrismaClient }) {}

  async summary(params: SummaryParams): Promise<UsageSummaryRow[]> {
    const groupBy = USAGE_GROUP_BY.filter((g) => params.groupBy.includes(g));
    checkRange(params.from, params.to, groupBy.includes('HOUR') ? MAX_HOURLY_RANGE_DAYS : MAX_RANGE_DAYS);
    const prisma = this.db.prisma;
    const cols = groupBy.map((g) => GROUP_COLUMNS[g]);
    const parts = segments(params.from.getTime(), params.to.getTime(), !groupBy.includes('HOUR')).map((seg) =>
      seg.source === 'record'
        ? this.recordPart(prisma, params.tenantId, new Date(seg.from), new Date(seg.to), cols)
        : this.rollupPart(prisma, seg.source, params.tenantId, new Date(seg.from), new Date(seg.to), cols),
    );

    // Spend needs the price of each hour, so it reads hours (and records at partial ends), never days.
    const spendParts = segments(params.from.getTime(), params.to.getTime(), false).map((seg) =>
      this.spendPart(prisma, seg.source === 'record' ? 'record' : 'hour', params.tenantId, new Date(seg.from), new Date(seg.to), cols),
    );
    const spend = new Map<string, { byCurrency: Map<string, bigint>; unpriced: number }>();
    for (const part of await Promise.all(spendParts)) {
      for (const r of part) {
        const key = JSON.stringify(r.groups);
        let s = spend.get(key);
        if (!s) spend.set(key, (s = { byCurrency: new Map(), unpriced: 0 }));
        if (r.currency === null) s.unpriced += r.units;
        else s.byCurrency.set(r.currency, (s.byCurrency.get(r.currency) ?? 0n) + r.amount);
      }
    }

    const merged = new Map<string, { groups: unknown[]; requests: number; items: number; computeUnits: number; errors: number; latencySumMs: number; hist: number[] }>();
    for (const part of await Promise.all(parts)) {
      for (const { groups, agg, hist } of part) {
        const key = JSON.stringify(groups);
        let m = merged.get(key);
        if (!m) {
          m = { groups, requests: 0, items: 0, computeUnits: 0, errors: 0, latencySumMs: 0, hist: emptyHistogram() };
          merged.set(key, m);
        }
        m.requests += Number(agg.requests ?? 0);
        m.items += Number(agg.items ?? 0);
        m.computeUnits += Number(agg.computeUnits ?? 0);
        m.errors += Number(agg.errors ?? 0);
        m.latencySumMs += Number(agg.latencySumMs ?? 0);
        hist.forEach((c, i) => (m.hist[i] = (m.hist[i] ?? 0) + c));
      }
    }

    const rows: UsageSummaryRow[] = [];
    for (const [key, m] of merged) {
      if (m.requests === 0 && groupBy.length > 0) continue;
      const s = spend.get(key);
      const row: UsageSummaryRow = {
        hour: null,
        day: null,
        model: null,
        apiKeyId: null,
        status: null,
        protocol: null,
        requests: m.requests,
        items: m.items,
        computeUnits: m.computeUnits,
        errors: m.errors,
        avgLatencyMs: m.requests > 0 ? m.latencySumMs / m.requests : null,
        p50LatencyMs: percentile(m.hist, 0.5),
        p95LatencyMs: percentile(m.hist, 0.95),
        spend: s ? [...s.byCurrency].sort(([a], [b]) => (a < b ? -1 : 1)).map(([currency, amountMicros]) => ({ currency, amountMicros })) : [],
        unpricedComputeUnits: s?.unpriced ?? 0,
      };
      cols.forEach((c, i) => {
        const v = m.groups[i];
        if (c.alias === 'hour' || c.alias === 'day') (row as unknown as Record<string, unknown>)[c.alias] = v === null ? null : new Date(v as string);
        else (row as unknown as Record<string, unknown>)[c.alias] = v ?? null;
      });
      rows.push(row);
    }
    if (rows.length === 0 && groupBy.length === 0) {
      rows.push({ hour: null, day: null, model: null, apiKeyId: null, status: null, protocol: null, requests: 0, items: 0, computeUnits: 0, errors: 0, avgLatencyMs: null, p50LatencyMs: null, p95LatencyMs: null, spend: [], unpricedComputeUnits: 0 });
    }
    rows.sort((a, b) => compareRows(a, b));
    return rows;
  }

  private async rollupPart(prisma: PrismaClient, period: 'day' | 'hour', tenantId: string | null, from: Date, to: Date, cols: GroupColumn[]) {
    const args: unknown[] = [from, to];
    let where = `"${period}" >= $1 AND "${period}" < $2`;
    if (tenantId !== null) {
      args.push(tenantId);
      where += ` AND "tenantId" = $3::uuid`;
    }
    const histSums = Array.from({ length: HIST_BUCKETS }, (_, i) => `sum("latencyHist"[${i + 1}])`).join(',');
    const select = cols.map((c, i) => `${c[period]} AS g${i}`);
    const sql = `SELECT ${[...select,
      `sum("requests")::float8 AS requests`,
      `sum("items")::float8 AS items`,
      `sum("computeUnits") AS "computeUnits"`,
      `coalesce(sum("requests") FILTER (WHERE "status" <> 'OK'), 0)::float8 AS errors`,
      `sum("latencySumMs") AS "latencySumMs"`,
      `ARRAY[${histSums}]::float8[] AS hist`].join(', ')}
      FROM "${period === 'day' ? 'UsageDaily' : 'UsageHourly'}" WHERE ${where}
      ${cols.length ? `GROUP BY ${cols.map((_, i) => i + 1).join(', ')}` : ''}`;
    const rows = await prisma.$queryRawUnsafe<(RawAggregate & { hist: (number | null)[] })[]>(sql, ...args);
    return rows.map((r) => ({ groups: cols.map((_, i) => normalizeGroup(r[`g${i}`])), agg: r, hist: r.hist.map((v) => Number(v ?? 0)) }));
  }

  /** Units × the price in effect at each hour, per group and currency (currency null: unpriced). */
  private async spendPart(prisma: PrismaClient, source: 'hour' | 'record', tenantId: string | null, from: Date, to: Date, cols: GroupColumn[]) {
    const time = source === 'hour' ? '"hour"' : '"createdAt"';
    const args: unknown[] = [from, to];
    let where = `src.${time} >= $1 AND src.${time} < $2 AND src."status" = 'OK' AND src."computeUnits" > 0`;
    if (tenantId !== null) {
      args.push(tenantId);
      where += ` AND src."tenantId" = $3::uuid`;
    }
    const hourExpr = source === 'hour' ? 'src."hour"' : `date_trunc('hour', src."createdAt", 'UTC')`;
    const select = cols.map((c, i) => `${c[source]} AS g${i}`);
    const sql = `SELECT ${[...select,
      'price.p_currency AS currency',
      'sum(round(src."computeUnits"))::float8 AS units',
      `${amountMicrosSql('src')}::text AS amount`].join(', ')}
      FROM "${source === 'hour' ? 'UsageHourly' : 'UsageRecord'}" src ${priceLateral('src', hourExpr)}
      WHERE ${where}
      GROUP BY ${[...cols.map((_, i) => i + 1), cols.length + 1].join(', ')}`;
    const rows = await prisma.$queryRawUnsafe<{ [g: string]: unknown; currency: string | null; units: number; amount: string }[]>(sql, ...args);
    return rows.map((r) => ({ groups: cols.map((_, i) => normalizeGroup(r[`g${i}`])), currency: r.currency, units: Number(r.units), amount: BigInt(r.amount) }));
  }

  private async recordPart(prisma: PrismaClient, tenantId: string | null, from: Date, to: Date, cols: GroupColumn[]) {
    const args: unknown[] = [from, to];
    let where = `"createdAt" >= $1 AND "createdAt" < $2`;
    if (tenantId !== null) {
      args.push(tenantId);
      where += ` AND "tenantId" = $3::uuid`;
    }
    const select = cols.map((c, i) => `${c.record} AS g${i}`);
    const sql = `SELECT ${[...select,
      `${bucketSql('"latencyMs"')} AS bucket`,
      `count(*)::float8 AS requests`,
      `sum("items")::float8 AS items`,
      `sum("computeUnits") AS "computeUnits"`,
      `(count(*) FILTER (WHERE "status" <> 'OK'))::float8 AS errors`,
      `sum("latencyMs") AS "latencySumMs"`].join(', ')}
      FROM "UsageRecord" WHERE ${where}
      GROUP BY ${[...cols.map((_, i) => i + 1), cols.length + 1].join(', ')}`;
    const rows = await prisma.$queryRawUnsafe<(RawAggregate & { bucket: number })[]>(sql, ...args);
    return rows.map((r) => {
      const hist = emptyHistogram();
      hist[Number(r.bucket)] = Number(r.requests ?? 0);
      return { groups: cols.map((_, i) => normalizeGroup(r[`g${i}`])), agg: r, hist };
    });
  }

  /** One record by its id (the request id) within a tenant (null: any tenant, for admin); null when absent or elsewhere. */
  async recordById(tenantId: string | null, id: string): Promise<UsageRecordRow | null> {
    // The key is (id, createdAt) since the table is partitioned by month: each partition's index answers the id.
    const row = await this.db.prisma.usageRecord.findFirst({ where: { id } });
    if (!row || (tenantId !== null && row.tenantId !== tenantId)) return null;
    return row as UsageRecordRow;
  }

  /** One page of records, newest first, after a keyset cursor (createdAt, id). */
  async records(filter: RecordFilter, first: number, after: string | null | undefined): Promise<RecordPage> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) throw new BadInputError(`first must be between 1 and ${MAX_PAGE_SIZE}`, 'first');
    if (filter.from && filter.to) checkRange(filter.from, filter.to, Number.MAX_SAFE_INTEGER / DAY_MS);
    const cursor = after ? decodeCursor(after) : null;
    const rows = await this.db.prisma.usageRecord.findMany({
      where: {
        ...(filter.tenantId !== null ? { tenantId: filter.tenantId } : {}),
        ...(filter.apiKeyId ? { apiKeyId: filter.apiKeyId } : {}),
        ...(filter.model ? { model: filter.model } : {}),
        ...(filter.status ? { status: filter.status } : {}),
        ...(filter.protocol ? { protocol: filter.protocol } : {}),
        AND: [
          filter.from ? { createdAt: { gte: filter.from } } : {},
          filter.to ? { createdAt: { lt: filter.to } } : {},
          cursor ? afterPosition(cursor) : {},
        ],
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: first + 1,
    });
    const page = rows.slice(0, first).map((r) => ({ cursor: encodeCursor(r), node: r as UsageRecordRow }));
    return { records: page, hasNextPage: rows.length > first, endCursor: page.at(-1)?.cursor ?? null };
  }

  /**
   * The CSV export: a header line, then records oldest first, read in keyset
   * batches so memory holds one batch whatever the range.
   */
  async *csv(tenantId: string | null, from: Date, to: Date, batchSize = 5000): AsyncGenerator<string> {
    checkRange(from, to);
    yield CSV_HEADER.join(',') + '\n';
    // The price book is small: read it once, price each record at its hour in memory.
    const prices = await this.db.prisma.price.findMany({
      where: tenantId !== null ? { OR: [{ tenantId }, { tenantId: null }] } : {},
      orderBy: [{ effectiveFrom: 'desc' }],
    });
    const priced = (row: UsageRecordRow): string => {
      const price = row.status === 'OK' && row.computeUnits > 0 ? priceInEffect(prices, row.tenantId, row.model, row.createdAt) : null;
      if (!price) return csvLine(row, ',,');
      const amount = BigInt(Math.round(row.computeUnits)) * price.microsPerUnit;
      return csvLine(row, `,${price.currency},${price.microsPerUnit},${amount}`);
    };
    let cursor: { createdAt: Date; id: string } | null = null;
    for (;;) {
      const c: { createdAt: Date; id: string } | null = cursor;
      const rows: UsageRecordRow[] = (await this.db.prisma.usageRecord.findMany({
        where: {
          ...(tenantId !== null ? { tenantId } : {}),
          AND: [
            { createdAt: { gte: from } },
            { createdAt: { lt: to } },
            c ? { OR: [{ createdAt: { gt: c.createdAt } }, { createdAt: c.createdAt, id: { gt: c.id } }] } : {},
          ],
        },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        take: batchSize,
      })) as UsageRecordRow[];
      if (rows.length === 0) return;
      yield rows.map(priced).join('');
      const last = rows[rows.length - 1] as UsageRecordRow;
      cursor = { createdAt: last.createdAt, id: last.id };
      if (rows.length < batchSize) return;
    }
  }
}

export const CSV_COLUMNS = ['id', 'tenantId', 'apiKeyId', 'model', 'modelVersion', 'items', 'computeUnits', 'status', 'latencyMs', 'queueMs', 'computeMs', 'executionProvider', 'createdAt', 'protocol'] as const;

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = value instanceof Date ? value.toISOString() : String(value);
  // Quote when needed, and defuse spreadsheet formulas in free-text fields.
  const safe = /^[=+\-@\t\r]/.test(text) && typeof value === 'string' ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** Appended after CSV_COLUMNS: the record's price at its hour and its amount (integer micro-units); empty when unpriced. */
export const CSV_PRICE_COLUMNS = ['currency', 'unitPriceMicros', 'amountMicros'] as const;

/** Every CSV column: the record's (protocol, the front door, last of them), then the price columns, which stay last. */
export const CSV_HEADER = [...CSV_COLUMNS, ...CSV_PRICE_COLUMNS] as const;

function csvLine(row: UsageRecordRow, suffix = ''): string {
  return CSV_COLUMNS.map((c) => csvField(row[c])).join(',') + suffix + '\n';
}

function normalizeGroup(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  return v ?? null;
}

function compareRows(a: UsageSummaryRow, b: UsageSummaryRow): number {
  const keys: (keyof UsageSummaryRow)[] = ['hour', 'day', 'model', 'apiKeyId', 'status', 'protocol'];
  for (const k of keys) {
    const x = a[k] instanceof Date ? (a[k] as Date).getTime() : (a[k] as string | null);
    const y = b[k] instanceof Date ? (b[k] as Date).getTime() : (b[k] as string | null);
    if (x === y) continue;
    if (x === null) return 1;
    if (y === null) return -1;
    return x < y ? -1 : 1;
  }
  return 0;
}
