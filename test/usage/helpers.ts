/** Shared bits of the usage tests: events, a Database on a given URL, row counts. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Database } from '../../src/db/database';
import { createLogger, type Logger } from '../../src/log/logger';
import { USAGE_STATUSES, type UsageEvent, type UsageStatusName } from '../../src/usage/usage-event';
import { UsageService } from '../../src/usage/usage.service';
import type { Config } from '../../src/config';
import { LogCapture, freePort } from '../helpers/capture';
import { until, WAIT_TIMEOUT_MS } from '../harness/until';

export { LogCapture, freePort };



export function quietLogger(): { log: Logger; capture: LogCapture } {
  const capture = new LogCapture();
  return { log: createLogger({ level: 'info', pretty: false, destination: capture }), capture };
}

let seq = 0;
/** A deterministic mix: statuses round-robin, units and latencies derived from the index. */
export function makeEvent(tenantId: string, i: number, overrides: Partial<UsageEvent> = {}): UsageEvent {
  seq += 1;
  const status = USAGE_STATUSES[i % USAGE_STATUSES.length] as UsageStatusName;
  const items = status === 'OK' ? 1 + (i % 5) : 0;
  return {
    id: `req-${randomUUID()}-${seq}`,
    tenantId,
    apiKeyId: i % 4 === 3 ? null : `00000000-0000-4000-8000-00000000000${i % 3}`,
    model: i % 2 === 0 ? 'fashion-cnn' : 'fashion-lstm',
    modelVersion: '1',
    items,
    computeUnits: items * 1.5,
    status,
    latencyMs: 0.5 + (i % 200) * 0.75,
    queueMs: 0.1,
    computeMs: status === 'OK' ? 0.3 : 0,
    executionProvider: status === 'OK' ? 'cpu' : null,
    protocol: (['GRAPHQL', 'REST', 'GRPC'] as const)[i % 3] ?? 'REST',
    createdAt: new Date(Date.UTC(2026, 10, 1, 0, 0, 0) + i * 61_919), // ~17 h per 1000 events: crosses hours and a day boundary, never aligned
    ...overrides,
  };
}

export function usageConfig(overrides: Partial<Config['usage']> = {}): Config['usage'] {
  return {
    flushIntervalMs: 50,
    flushBatchSize: 500,
    bufferMaxRecords: 100_000,
    spoolDir: mkdtempSync(path.join(os.tmpdir(), 'mg-usage-spool-')),
    walSegmentMaxRecords: 50_000,
    partitionMonthsAhead: 3,
    partitionMaintenanceIntervalMs: 3_600_000,
    retentionMonths: null,
    ...overrides,
  };
}

export async function openDatabase(url: string, log: Logger, retryMaxMs = 500): Promise<Database> {
  const db = new Database({ database: { mode: 'postgres', url, poolSize: 4 }, databaseConnectRetryMaxMs: retryMaxMs, migrateOnStart: true }, log);
  void db.start();
  await db.whenReady();
  return db;
}

export async function startUsage(db: Database, log: Logger, overrides: Partial<Config['usage']> = {}): Promise<UsageService> {
  const usage = new UsageService({ config: usageConfig(overrides), db, log });
  await usage.start();
  return usage;
}

/** Flushes until nothing is buffered or spooled. */
export async function drain(usage: UsageService, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
  await until(
    'usage to drain (nothing buffered or spooled)',
    async () => {
      await usage.flush();
      return usage.stats();
    },
    { accept: (s) => s.buffered === 0 && s.spooled === 0, timeoutMs, everyMs: 100 },
  );
}

export interface TenantTotals {
  rows: number;
  items: number;
  computeUnits: number;
  byStatus: Record<string, number>;
  rollupRequests: number;
  rollupItems: number;
  rollupHistTotal: number;
  dailyRequests: number;
  dailyHistTotal: number;
}

/** Reads what is stored for a tenant straight from SQL (not through the code under test). */
export async function storedTotals(url: string, tenantId: string): Promise<TenantTotals> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ rows: string; items: string | null; cu: number | null }>(
      `SELECT count(*) AS rows, sum(items) AS items, sum("computeUnits") AS cu FROM "UsageRecord" WHERE "tenantId" = $1`,
      [tenantId],
    );
    const s = await client.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM "UsageRecord" WHERE "tenantId" = $1 GROUP BY status`, [tenantId]);
    const h = await client.query<{ req: string | null; items: string | null; hist: string | null }>(
      `SELECT sum(requests) AS req, sum(items) AS items, sum((SELECT sum(x) FROM unnest("latencyHist") x)) AS hist FROM "UsageHourly" WHERE "tenantId" = $1`,
      [tenantId],
    );
    const d = await client.query<{ req: string | null; hist: string | null }>(
      `SELECT sum(requests) AS req, sum((SELECT sum(x) FROM unnest("latencyHist") x)) AS hist FROM "UsageDaily" WHERE "tenantId" = $1`,
      [tenantId],
    );
    return {
      dailyRequests: Number(d.rows[0]?.req ?? 0),
      dailyHistTotal: Number(d.rows[0]?.hist ?? 0),
      rows: Number(r.rows[0]?.rows ?? 0),
      items: Number(r.rows[0]?.items ?? 0),
      computeUnits: Number(r.rows[0]?.cu ?? 0),
      byStatus: Object.fromEntries(s.rows.map((x) => [x.status, Number(x.n)])),
      rollupRequests: Number(h.rows[0]?.req ?? 0),
      rollupItems: Number(h.rows[0]?.items ?? 0),
      rollupHistTotal: Number(h.rows[0]?.hist ?? 0),
    };
  } finally {
    await client.end();
  }
}

export function expectedTotals(events: UsageEvent[]): { rows: number; items: number; computeUnits: number; byStatus: Record<string, number> } {
  const byStatus: Record<string, number> = {};
  for (const e of events) byStatus[e.status] = (byStatus[e.status] ?? 0) + 1;
  return {
    rows: events.length,
    items: events.reduce((a, e) => a + e.items, 0),
    computeUnits: events.reduce((a, e) => a + e.computeUnits, 0),
    byStatus,
  };
}
