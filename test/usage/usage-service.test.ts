import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Database } from '../../src/db/database';
import { UsageService } from '../../src/usage/usage.service';
import { serializeEvent } from '../../src/usage/wal';
import pg from 'pg';
import { until } from '../harness/until';
import { testEnv } from '../helpers/env';
import { drain, expectedTotals, makeEvent, openDatabase, quietLogger, startUsage, storedTotals, usageConfig } from './helpers';

describe('UsageService on PostgreSQL', () => {
  const { log, capture } = quietLogger();
  let db: Database;
  const services: UsageService[] = [];
  beforeAll(async () => {
    db = await openDatabase(testEnv.databaseUrl, log);
  });
  afterAll(async () => {
    for (const s of services) await s.close();
    await db.close();
  });
  async function usage(overrides: Parameters<typeof startUsage>[2] = {}): Promise<UsageService> {
    const s = await startUsage(db, log, overrides);
    services.push(s);
    return s;
  }

  it('stores N mixed records as exactly N rows with their statuses and units, and rollups that sum to them', async () => {
    const tenant = randomUUID();
    const svc = await usage({ flushBatchSize: 300 });
    const events = Array.from({ length: 2_345 }, (_, i) => makeEvent(tenant, i));
    for (const e of events) svc.record(e);
    await drain(svc);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    const want = expectedTotals(events);
    expect(stored.rows).toBe(want.rows);
    expect(stored.items).toBe(want.items);
    expect(stored.computeUnits).toBeCloseTo(want.computeUnits, 6);
    expect(stored.byStatus).toEqual(want.byStatus);
    expect(stored.rollupRequests).toBe(want.rows);
    expect(stored.rollupItems).toBe(want.items);
    expect(stored.rollupHistTotal).toBe(want.rows);
    expect(stored.dailyRequests).toBe(want.rows);
    expect(stored.dailyHistTotal).toBe(want.rows);

    // Summary totals equal the sums of the records, for aligned and unaligned ranges.
    const first = events[0]!.createdAt.getTime();
    const last = events.at(-1)!.createdAt.getTime();
    for (const [from, to] of [
      [first, last + 1],
      [first + 1_234_567, last - 2_345_678],
      [first + 600_000, first + 1_800_000], // inside one hour: raw records only
      [first - 3 * 86_400_000 + 1, last + 2 * 86_400_000 - 1], // whole days + hours + partial hours
    ] as const) {
      const inRange = events.filter((e) => e.createdAt.getTime() >= from && e.createdAt.getTime() < to);
      const [total] = await svc.queries.summary({ tenantId: tenant, from: new Date(from), to: new Date(to), groupBy: [] });
      expect(total).toMatchObject({ requests: inRange.length, items: expectedTotals(inRange).items, errors: inRange.filter((e) => e.status !== 'OK').length });
      expect(total!.computeUnits).toBeCloseTo(expectedTotals(inRange).computeUnits, 6);
      const byStatus = await svc.queries.summary({ tenantId: tenant, from: new Date(from), to: new Date(to), groupBy: ['STATUS', 'MODEL'] });
      expect(byStatus.reduce((a, r) => a + r.requests, 0)).toBe(inRange.length);
      for (const row of byStatus) {
        expect(row.requests).toBe(inRange.filter((e) => e.status === row.status && e.model === row.model).length);
      }
    }
  });

  it('groups by hour, day, model, key and status with percentiles inside the true bucket', async () => {
    const tenant = randomUUID();
    const svc = await usage();
    const events = Array.from({ length: 1_000 }, (_, i) => makeEvent(tenant, i));
    for (const e of events) svc.record(e);
    await drain(svc);
    const from = new Date(Date.UTC(2026, 10, 1));
    const to = new Date(Date.UTC(2026, 10, 2));
    expect(events.at(-1)!.createdAt.getTime()).toBeLessThan(to.getTime());
    const byHour = await svc.queries.summary({ tenantId: tenant, from, to, groupBy: ['HOUR'] });
    expect(byHour.length).toBe(new Set(events.map((e) => Math.floor(e.createdAt.getTime() / 3_600_000))).size);
    expect(byHour.every((r) => r.hour instanceof Date && r.model === null)).toBe(true);
    const [day] = await svc.queries.summary({ tenantId: tenant, from, to, groupBy: ['DAY'] });
    expect(day?.day?.toISOString()).toBe('2026-11-01T00:00:00.000Z');
    const byKey = await svc.queries.summary({ tenantId: tenant, from, to, groupBy: ['API_KEY'] });
    expect(byKey.map((r) => r.apiKeyId)).toEqual([
      '00000000-0000-4000-8000-000000000000',
      '00000000-0000-4000-8000-000000000001',
      '00000000-0000-4000-8000-000000000002',
      null,
    ]);
    const lat = events.map((e) => e.latencyMs).sort((a, b) => a - b);
    const trueP50 = lat[Math.ceil(0.5 * lat.length) - 1]!;
    const trueP95 = lat[Math.ceil(0.95 * lat.length) - 1]!;
    expect(day!.p50LatencyMs! / trueP50).toBeGreaterThan(1 / 1.26);
    expect(day!.p50LatencyMs! / trueP50).toBeLessThan(1.26);
    expect(day!.p95LatencyMs! / trueP95).toBeGreaterThan(1 / 1.26);
    expect(day!.p95LatencyMs! / trueP95).toBeLessThan(1.26);
    expect(day!.avgLatencyMs).toBeCloseTo(lat.reduce((a, b) => a + b, 0) / lat.length, 6);
  });

  it('never double counts a duplicate id: same batch, later batch, another process replaying', async () => {
    const tenant = randomUUID();
    const svc = await usage({ flushBatchSize: 100 });
    const events = Array.from({ length: 250 }, (_, i) => makeEvent(tenant, i));
    for (const e of events) svc.record(e);
    for (const e of events.slice(0, 50)) svc.record({ ...e }); // same batch
    await drain(svc);
    for (const e of events) svc.record({ ...e, items: e.items + 100 }); // retried with different values: first write wins
    await drain(svc);
    const other = await usage();
    for (const e of events.slice(100)) other.record(e);
    await drain(other);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    const want = expectedTotals(events);
    expect(stored).toMatchObject({ rows: 250, items: want.items, rollupRequests: 250, rollupItems: want.items, rollupHistTotal: 250, dailyRequests: 250 });
  });

  it('a flush writes what was recorded before it, plus full batches: records that arrive meanwhile wait for the next interval', async () => {
    const tenant = randomUUID();
    // No interval flush during the test (60 s): only the flush() calls below write.
    const svc = await usage({ flushBatchSize: 100, flushIntervalMs: 60_000 });
    const createdAt = new Date(Date.UTC(2026, 10, 3, 12, 0, 0));
    // One rollup row for every record (same hour, key, model, status, protocol, latency bucket), so a lock on it holds each insert.
    const event = () => makeEvent(tenant, 0, { createdAt, latencyMs: 1 });
    await svc.record(event());
    await svc.flush();
    const locker = new pg.Client({ connectionString: testEnv.databaseUrl });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      const locked = await locker.query(`SELECT 1 FROM "UsageHourly" WHERE "tenantId" = $1 FOR UPDATE`, [tenant]);
      expect(locked.rowCount).toBe(1);
      await Promise.all(Array.from({ length: 30 }, () => svc.record(event())));
      const first = svc.flush(); // its insert waits on the row lock
      await until('the flush to take the 30 records', async () => svc.stats().buffered, { accept: (n) => n === 0 });
      // 130 more arrive while it waits: one full batch of them is written by this flush, the other 30 are not.
      await Promise.all(Array.from({ length: 130 }, () => svc.record(event())));
      expect(svc.stats().buffered).toBe(130);
      await locker.query('COMMIT');
      await first;
      expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(1 + 30 + 100);
      expect(svc.stats().buffered).toBe(30);
      await svc.flush();
      expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(161);
      expect(svc.stats().buffered).toBe(0);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
  });

  it('spills to the spool past USAGE_BUFFER_MAX_RECORDS and replays it without loss', async () => {
    const tenant = randomUUID();
    const svc = await usage({ bufferMaxRecords: 100, flushBatchSize: 50_000, flushIntervalMs: 60_000 });
    const events = Array.from({ length: 1_050 }, (_, i) => makeEvent(tenant, i));
    for (const e of events) svc.record(e);
    // Never more than the cap in memory.
    expect(svc.stats().buffered).toBeLessThanOrEqual(100);
    await drain(svc);
    expect(svc.stats()).toMatchObject({ buffered: 0, spooled: 0 });
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    expect(stored.rows).toBe(1_050);
    expect(stored.rollupRequests).toBe(1_050);
  });

  it('refuses malformed events with a logged error instead of poisoning a batch', async () => {
    const tenant = randomUUID();
    const svc = await usage();
    svc.record(makeEvent('not-a-uuid', 1));
    svc.record(makeEvent(tenant, 2, { items: -1 }));
    svc.record(makeEvent(tenant, 3, { status: 'WHATEVER' as never }));
    svc.record(makeEvent(tenant, 4));
    await drain(svc);
    expect(svc.stats().rejected).toBe(3);
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(1);
    expect(capture.text).toContain('malformed usage event refused');
  });

  it('sets aside a record Postgres refuses for its data and writes the rest of its batch', async () => {
    const tenant = randomUUID();
    const svc = await usage({ flushBatchSize: 1000 });
    const events = Array.from({ length: 300 }, (_, i) => makeEvent(tenant, i));
    // A valid JS date that Postgres cannot store (before 4713 BC): passes record(), fails the insert.
    const poison = makeEvent(tenant, 300, { createdAt: new Date(-8.6e15) });
    for (const e of [...events.slice(0, 150), poison, ...events.slice(150)]) svc.record(e);
    await drain(svc);
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(300);
    expect(svc.stats()).toMatchObject({ rejected: 1, spooled: 0 });
    const spoolDir = svc.spoolDir;
    const rejected = readdirSync(spoolDir).filter((f) => f.startsWith('rejected-'));
    expect(rejected).toHaveLength(1);
    expect(readFileSync(`${spoolDir}/${rejected[0]}`, 'utf8')).toContain(poison.id);
    expect(capture.text).toContain('usage record refused by the database');
  });

  it('close() writes the buffer, and a record after close lands in the log for the next start', async () => {
    const tenant = randomUUID();
    const overrides = { flushIntervalMs: 60_000, flushBatchSize: 50_000 };
    const svc = new UsageService({ config: usageConfig(overrides), db, log });
    await svc.start();
    for (let i = 0; i < 120; i += 1) svc.record(makeEvent(tenant, i));
    await svc.close();
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(120);
    await svc.record(makeEvent(tenant, 500));
    const spoolDir = svc.spoolDir;
    expect(readdirSync(spoolDir).length).toBe(1);
    const next = await startUsage(db, log, { ...overrides, spoolDir });
    services.push(next);
    await drain(next);
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(121);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it("replays a dead process's log segment once: complete lines only, not a line torn by the crash or the zero-filled tail", async () => {
    const tenant = randomUUID();
    const events = Array.from({ length: 40 }, (_, i) => makeEvent(tenant, i));
    const torn = serializeEvent(makeEvent(tenant, 40));
    const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-torn-'));
    // A pid no process has: the log of a gateway killed mid-write.
    let deadPid = 4_194_000;
    while (isAlive(deadPid)) deadPid -= 1;
    const text = events.map(serializeEvent).join('\n') + '\n' + torn.slice(0, torn.length / 2);
    writeFileSync(path.join(spoolDir, `usage-${String(Date.now()).padStart(15, '0')}-${deadPid}-000000001.jsonl`), Buffer.concat([Buffer.from(text), Buffer.alloc(4096)]));
    const svc = await usage({ spoolDir });
    expect(svc.stats().spooled).toBe(41); // adopted: every line counts until it is read
    await drain(svc);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    expect(stored.rows).toBe(40);
    expect(stored.rollupRequests).toBe(40);
    expect(capture.text).toContain('usage log ends in a line torn by a crash');
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('a provisional record (reserve) answers a served call at once; only the call\'s own record is stored, and the log empties', async () => {
    const tenant = randomUUID();
    const svc = await usage();
    const ok = makeEvent(tenant, 0); // OK, 1 item, 1.5 units
    const failing = makeEvent(tenant, 0);
    const okReservation = svc.reserve({ ...ok, latencyMs: 0, queueMs: 0, computeMs: 0 });
    const failReservation = svc.reserve({ ...failing, latencyMs: 0, queueMs: 0, computeMs: 0 });
    await expect(okReservation.durable).resolves.toBe(true);
    // Served as reserved: record() resolves (the provisional line made the answer safe).
    await svc.record({ ...ok, latencyMs: 7.25 }, okReservation);
    // Billed otherwise than reserved (the run failed): record() waits for its own durable write.
    await svc.record({ ...failing, status: 'ERROR', items: 0, computeUnits: 0 }, failReservation);
    await drain(svc);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    expect({ rows: stored.rows, byStatus: stored.byStatus, computeUnits: stored.computeUnits, rollup: stored.rollupRequests }).toEqual({ rows: 2, byStatus: { OK: 1, ERROR: 1 }, computeUnits: 1.5, rollup: 2 });
    const client = new pg.Client({ connectionString: testEnv.databaseUrl });
    await client.connect();
    const latency = await client.query<{ latencyMs: number }>('SELECT "latencyMs" FROM "UsageRecord" WHERE id = $1', [ok.id]);
    await client.end();
    expect(latency.rows[0]?.latencyMs).toBeCloseTo(7.25, 6); // the final record's, not the provisional 0
    expect(svc.stats().walUncommitted).toBe(0);
    await until('the log retires its committed segment', () => readdirSync(svc.spoolDir).filter((f) => f.startsWith('usage-')).length === 0);
  });

  it('a served call\'s record held in memory in its provisional line\'s place, dropped from memory (spilled), is stored from that line', async () => {
    const tenant = randomUUID();
    const svc = await usage({ bufferMaxRecords: 0 }); // every record in memory spills at once
    const ok = makeEvent(tenant, 0);
    const reservation = svc.reserve({ ...ok, latencyMs: 0, queueMs: 0, computeMs: 0 });
    await svc.record({ ...ok, latencyMs: 9.5 }, reservation);
    await drain(svc);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    // One row, billed as served; its latency is the provisional line's (0): the record had no line of its own.
    expect({ rows: stored.rows, byStatus: stored.byStatus, computeUnits: stored.computeUnits }).toEqual({ rows: 1, byStatus: { OK: 1 }, computeUnits: 1.5 });
    expect(svc.stats().walUncommitted).toBe(0);
  });

  it("after a crash, a dead process's provisional records are stored only where no record of their call follows (in any of its files)", async () => {
    const tenant = randomUUID();
    const provisional = (e: ReturnType<typeof makeEvent>): string => serializeEvent({ ...e, latencyMs: 0, queueMs: 0, computeMs: 0 }).replace(/}$/, ',"provisional":true}');
    const answeredUnrecorded = makeEvent(tenant, 0); // crashed after its provisional line: stored as reserved
    const failed = makeEvent(tenant, 0); // its own record says ERROR: that one wins
    const acrossFiles = makeEvent(tenant, 0); // provisional in the first file, its record in the second
    const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-provisional-'));
    let deadPid = 4_194_000;
    while (isAlive(deadPid)) deadPid -= 1;
    const now = String(Date.now()).padStart(15, '0');
    const first = [provisional(answeredUnrecorded), provisional(failed), provisional(acrossFiles), serializeEvent({ ...failed, status: 'ERROR', items: 0, computeUnits: 0 })];
    writeFileSync(path.join(spoolDir, `usage-${now}-${deadPid}-000000001.jsonl`), first.join('\n') + '\n');
    writeFileSync(path.join(spoolDir, `usage-${now}-${deadPid}-000000002.jsonl`), serializeEvent({ ...acrossFiles, latencyMs: 3.5 }) + '\n');
    const svc = await usage({ spoolDir });
    await drain(svc);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    expect({ rows: stored.rows, byStatus: stored.byStatus, computeUnits: stored.computeUnits, rollup: stored.rollupRequests }).toEqual({ rows: 3, byStatus: { OK: 2, ERROR: 1 }, computeUnits: 3, rollup: 3 });
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('replays every record outside a zeroed 4 KiB page in the middle of a segment, and quarantines the segment instead of deleting it', async () => {
    const tenant = randomUUID();
    const events = Array.from({ length: 806 }, (_, i) => makeEvent(tenant, i));
    const lines = events.map((e) => serializeEvent(e) + '\n');
    const data = Buffer.concat([Buffer.from(lines.join('')), Buffer.alloc(8192)]);
    // A page the disk zeroed, in the middle of the records: lines wholly inside it are lost, the two it cuts are unreadable.
    const pageStart = 4096 * Math.floor(data.indexOf(Buffer.from(lines[400]!)) / 4096);
    data.fill(0, pageStart, pageStart + 4096);
    const pageEnd = pageStart + 4096;
    let offset = 0;
    let outside = 0;
    let cut = 0;
    for (const line of lines) {
      const textEnd = offset + Buffer.byteLength(line) - 1; // the record's bytes, without its newline
      if (textEnd <= pageStart || offset >= pageEnd) outside += 1;
      else if (offset < pageStart || textEnd > pageEnd) cut += 1; // part of it outside the page: an unreadable line
      offset = textEnd + 1;
    }
    const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-nul-'));
    const name = `usage-${String(Date.now()).padStart(15, '0')}-${deadPid()}-000000001.jsonl`;
    writeFileSync(path.join(spoolDir, name), data);
    const svc = await usage({ spoolDir });
    await drain(svc);
    const stored = await storedTotals(testEnv.databaseUrl, tenant);
    if (process.env['MG_TEST_COUNTS']) process.stderr.write(`zeroed page: ${events.length} records, ${outside} outside the page, ${stored.rows} replayed\n`);
    expect(outside).toBeGreaterThan(700);
    expect(cut).toBeGreaterThanOrEqual(1);
    expect(stored.rows).toBe(outside);
    expect(stored.rollupRequests).toBe(outside);
    expect(svc.stats()).toMatchObject({ quarantinedSegments: 1, quarantinedLines: cut, spooled: 0, walUncommitted: 0 });
    expect(readdirSync(spoolDir)).toEqual([`quarantined-${name}`]);
    expect(capture.text).toContain('usage log segment quarantined');
  });

  it('sets a WAL line that is no valid record aside (quarantined) and meters the rest without marking the database down', async () => {
    const tenant = randomUUID();
    const events = Array.from({ length: 30 }, (_, i) => makeEvent(tenant, i));
    const bad = serializeEvent(makeEvent(tenant, 99)).replace(/"createdAt":"[^"]*"/, '"createdAt":"not a date"');
    const text = [...events.slice(0, 10).map(serializeEvent), bad, ...events.slice(10).map(serializeEvent)].join('\n') + '\n';
    const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-bad-'));
    const name = `usage-${String(Date.now()).padStart(15, '0')}-${deadPid()}-000000001.jsonl`;
    writeFileSync(path.join(spoolDir, name), text);
    const svc = await usage({ spoolDir });
    await drain(svc);
    for (let i = 0; i < 25; i += 1) await svc.record(makeEvent(tenant, 100 + i));
    await drain(svc);
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(55);
    expect(svc.stats()).toMatchObject({ failures: 0, quarantinedLines: 1, quarantinedSegments: 1, stuck: [] });
    expect(readFileSync(path.join(spoolDir, `quarantined-${name}`), 'utf8')).toContain('"createdAt":"not a date"');
    expect(capture.text).not.toContain('spooling records until the database answers');
  });

  it('writes straight to Postgres when the log cannot be written, and fails the record (UNAVAILABLE) when neither can', async () => {
    const tenant = randomUUID();
    const svc = await usage();
    // The log cannot be written: its directory is now a plain file.
    rmSync(svc.spoolDir, { recursive: true, force: true });
    writeFileSync(svc.spoolDir, '');
    await svc.record(makeEvent(tenant, 1));
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(1);
    expect(capture.text).toContain('usage log write failed; writing records straight to the database');

    const closedDb = await openDatabase(testEnv.databaseUrl, log);
    const nowhere = new UsageService({ config: usageConfig(), db: closedDb, log });
    await nowhere.start();
    await closedDb.close();
    rmSync(nowhere.spoolDir, { recursive: true, force: true });
    writeFileSync(nowhere.spoolDir, '');
    await expect(nowhere.record(makeEvent(tenant, 2))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect((await storedTotals(testEnv.databaseUrl, tenant)).rows).toBe(1);
  });
});

/** A pid no process has: the log of a gateway that is gone. */
function deadPid(): number {
  let pid = 4_194_000;
  while (isAlive(pid)) pid -= 1;
  return pid;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
