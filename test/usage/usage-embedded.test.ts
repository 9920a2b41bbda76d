/** The same writer and queries on the embedded database (PGlite), the zero-setup default. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Database } from '../../src/db/database';
import { UsageService } from '../../src/usage/usage.service';
import { drain, expectedTotals, makeEvent, quietLogger, usageConfig } from './helpers';

it('writes records and rollups idempotently and summarises them on PGlite', async () => {
  const { log } = quietLogger();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-pglite-'));
  const db = new Database({ database: { mode: 'embedded', dataDir }, databaseConnectRetryMaxMs: 500, migrateOnStart: true }, log);
  void db.start();
  await db.whenReady();
  const usage = new UsageService({ config: usageConfig({ flushBatchSize: 100 }), db, log });
  await usage.start();
  try {
    const tenant = randomUUID();
    const events = Array.from({ length: 450 }, (_, i) => makeEvent(tenant, i));
    for (const e of [...events, ...events.slice(0, 100)]) usage.record(e);
    await drain(usage);
    expect(usage.stats().written).toBe(450);
    const [total] = await usage.queries.summary({ tenantId: tenant, from: new Date('2026-10-30T00:00:00Z'), to: new Date('2026-11-05T00:00:00Z'), groupBy: [] });
    const want = expectedTotals(events);
    expect(total).toMatchObject({ requests: 450, items: want.items, errors: events.filter((e) => e.status !== 'OK').length });
    const page = await usage.queries.records({ tenantId: tenant }, 1000, null);
    expect(page.records).toHaveLength(450);
  } finally {
    await usage.close();
    await db.close();
  }
});
