/**
 * Postgres unavailable for a while: records keep arriving, go to the durable
 * spool, and every one of them is written once the database returns.
 * Uses its own PostgreSQL instance on a spare port (never the machine's own).
 */
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type { Database } from '../../src/db/database';
import type { UsageService } from '../../src/usage/usage.service';
import { drain, expectedTotals, makeEvent, openDatabase, quietLogger, startUsage, storedTotals } from './helpers';
import { PrivatePostgres } from './private-postgres';

jest.setTimeout(90_000);

describe('usage through a database outage', () => {
  const server = new PrivatePostgres();
  const { log, capture } = quietLogger();
  let db: Database | undefined;
  let usage: UsageService | undefined;

  beforeAll(async () => {
    await server.init();
    await server.start();
  });
  afterAll(async () => {
    await usage?.close().catch(() => undefined);
    await db?.close().catch(() => undefined);
    await server.destroy();
  });

  it('loses no record while Postgres is down and writes each exactly once after it returns', async () => {
    db = await openDatabase(server.url, log, 300);
    usage = await startUsage(db, log, { flushIntervalMs: 50, flushBatchSize: 200 });
    const spoolDir = usage.spoolDir;
    const tenant = randomUUID();
    const events = Array.from({ length: 3_000 }, (_, i) => makeEvent(tenant, i));

    for (const e of events.slice(0, 1_000)) usage.record(e);
    await drain(usage);
    expect((await storedTotals(server.url, tenant)).rows).toBe(1_000);

    await server.stop('immediate');
    // Records keep coming while the database is gone, across several flush intervals.
    for (let i = 1_000; i < 2_500; i += 100) {
      for (const e of events.slice(i, i + 100)) usage.record(e);
      await new Promise((r) => setTimeout(r, 40));
    }
    await usage.flush();
    const during = usage.stats();
    expect(during.failures).toBeGreaterThan(0);
    expect(during.buffered).toBe(0);
    expect(during.spooled).toBe(1_500); // durable on disk, nothing only in memory
    expect(readdirSync(spoolDir).length).toBeGreaterThan(0);
    expect(capture.text).toContain('spooling records until the database answers');

    await server.start();
    for (const e of events.slice(2_500)) usage.record(e);
    await drain(usage, 60_000);

    const stored = await storedTotals(server.url, tenant);
    const want = expectedTotals(events);
    expect(stored.rows).toBe(3_000);
    expect(stored.byStatus).toEqual(want.byStatus);
    expect(stored.items).toBe(want.items);
    expect(stored.rollupRequests).toBe(3_000);
    expect(stored.rollupHistTotal).toBe(3_000);
    expect(usage.stats()).toMatchObject({ spooled: 0, walUncommitted: 0 });
    // Every log file is deleted once its records are committed (the active one at close, or when idle).
    await usage.close();
    usage = undefined;
    expect(readdirSync(spoolDir)).toEqual([]);
  });
});
