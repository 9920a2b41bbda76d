/**
 * A log segment the database refuses for a reason that is neither the
 * connection nor the record's data (issue #28 item 2): on a private
 * Postgres, a trigger raises for one tenant's records. That segment is
 * held back as stuck (shown in stats, /readyz's source, and a metric) while
 * new records keep reaching Postgres, and it is written once the cause is
 * gone.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Registry } from 'prom-client';
import type { Database } from '../../src/db/database';
import { UsageService } from '../../src/usage/usage.service';
import { serializeEvent } from '../../src/usage/wal';
import { PrivatePostgres } from './private-postgres';
import { until } from '../harness/until';
import { makeEvent, openDatabase, quietLogger, storedTotals, usageConfig } from './helpers';

jest.setTimeout(120_000);

function deadPid(): number {
  let pid = 4_194_000;
  for (;;) {
    try {
      process.kill(pid, 0);
      pid -= 1;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') return pid;
      pid -= 1;
    }
  }
}

describe('a usage log segment the database refuses while it answers', () => {
  const server = new PrivatePostgres();
  const { log, capture } = quietLogger();
  let db: Database | undefined;
  let usage: UsageService | undefined;

  beforeAll(async () => {
    await server.init();
    await server.start();
  });
  afterAll(async () => {
    await usage?.close();
    await db?.close();
    await server.destroy();
  });

  it('is held back as stuck (stats, metric) while new records are written, and written once the cause is gone', async () => {
    db = await openDatabase(server.url, log);
    const stuckTenant = randomUUID();
    const okTenant = randomUUID();
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      await admin.query(`CREATE FUNCTION refuse_usage() RETURNS trigger AS $$
        BEGIN IF NEW."tenantId" = '${stuckTenant}' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
      await admin.query(`CREATE TRIGGER refuse_usage BEFORE INSERT ON "UsageRecord" FOR EACH ROW EXECUTE FUNCTION refuse_usage()`);

      const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-stuck-'));
      const held = Array.from({ length: 10 }, (_, i) => makeEvent(stuckTenant, i));
      const name = `usage-${String(Date.now()).padStart(15, '0')}-${deadPid()}-000000001.jsonl`;
      writeFileSync(path.join(spoolDir, name), held.map(serializeEvent).join('\n') + '\n');
      const registry = new Registry();
      usage = new UsageService({ config: usageConfig({ spoolDir }), db, log, registry });
      await usage.start();
      const svc = usage;

      for (let i = 0; i < 20; i += 1) await svc.record(makeEvent(okTenant, i));
      await until('the new records in Postgres and the segment stuck', async () => {
        await svc.flush();
        return (await storedTotals(server.url, okTenant)).rows === 20 && svc.stats().stuck.length === 1;
      });
      const stats = svc.stats();
      expect(stats.stuck[0]).toMatchObject({ file: path.join(spoolDir, name) });
      expect(stats.stuck[0]!.error).toContain('refused by a test trigger');
      expect(stats.failures).toBe(0); // never taken for a database outage
      const scrape = await registry.metrics();
      expect(scrape).toMatch(/^modelgate_usage_wal_stuck_segments 1$/m);
      expect(capture.text).toContain('usage log segment cannot be replayed');
      expect(capture.text).not.toContain('spooling records until the database answers');

      await admin.query('DROP TRIGGER refuse_usage ON "UsageRecord"');
      await until('the stuck segment written', async () => {
        await svc.flush();
        return svc.stats().stuck.length === 0 && svc.stats().spooled === 0;
      });
      expect((await storedTotals(server.url, stuckTenant)).rows).toBe(10);
      expect((await storedTotals(server.url, okTenant)).rows).toBe(20);
      expect(readdirSync(spoolDir).filter((f) => f.includes(name))).toEqual([]);
      expect(await registry.metrics()).toMatch(/^modelgate_usage_wal_stuck_segments 0$/m);
    } finally {
      await admin.end();
    }
  });
});
