/**
 * A damaged usage log on the production build (issue #28 items 2 and 12):
 * a gateway is killed (-9), a line that is no valid record (a createdAt that
 * is no date) is found in its log directory, and the restarted process must
 * still meter every request into Postgres, set the bad line aside
 * (quarantined), and log no error about a replay it started before the
 * database answered.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, sleep } from '../harness';
import { createTestKey, testKeyService } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { imageTensor } from '../inference/fixtures';
import { serializeEvent } from '../../src/usage/wal';
import { makeEvent } from './helpers';

jest.setTimeout(120_000);

const INFER = 'mutation($input: InferInput!) { infer(input: $input) { modelName } }';
const N = 300;
const INJECTED = 5;

async function metric(gateway: ProductionGateway, name: string): Promise<number> {
  const res = await gateway.request('GET', '/metrics');
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.split(' ')[1]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('a damaged usage log line (production build)', () => {
  let gateway: ProductionGateway | undefined;
  afterAll(async () => {
    if (gateway?.running) await gateway.kill();
    await (await testKeyService()).db.close();
  });

  it('after kill -9 and a bad WAL line, a restart meters all N new requests, quarantines the line and logs no replay error', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'] });
    const env: Record<string, string> = { ...productionEnv(), RATE_LIMITS_ENABLED: 'false' };
    const input = { model: 'fashion-cnn', inputs: [imageTensor([3])] };
    const send = async (id: string) => {
      const res = await gateway!.graphql<{ infer: { modelName: string } }>(INFER, { input }, { authorization: `Bearer ${key}`, 'x-request-id': id });
      expect({ status: res.status, errors: res.body?.errors }).toEqual({ status: 200, errors: undefined });
    };

    gateway = await ProductionGateway.start(env);
    for (let i = 0; i < 20; i += 1) await send(`before-crash-${i}`);
    await gateway.kill();

    // The log of a process that is gone: valid records around one whose createdAt is no date.
    const spoolDir = path.join(env['DATA_DIR']!, 'usage-spool');
    let deadPid = 4_194_000;
    while (isAlive(deadPid)) deadPid -= 1;
    const injected = Array.from({ length: INJECTED }, (_, i) => makeEvent(tenantId, i, { apiKeyId: null, createdAt: new Date() }));
    const bad = serializeEvent(makeEvent(tenantId, 99, { apiKeyId: null })).replace(/"createdAt":"[^"]*"/, '"createdAt":"2026-13-45T99:99:99Z"');
    const name = `usage-${String(Date.now()).padStart(15, '0')}-${deadPid}-000000001.jsonl`;
    // The last injected line is in the format of a build before usage records carried their protocol.
    const oldFormat = (e: (typeof injected)[number]) => serializeEvent(e).replace(/,"protocol":"[A-Z]+"/, '');
    expect(oldFormat(injected.at(-1)!)).not.toContain('protocol');
    writeFileSync(
      path.join(spoolDir, name),
      [serializeEvent(injected[0]!), bad, ...injected.slice(1, -1).map(serializeEvent), oldFormat(injected.at(-1)!)].join('\n') + '\n',
    );

    gateway = await gateway.restart();
    const ids = Array.from({ length: N }, (_, i) => `after-restart-${i}`);
    for (let i = 0; i < N; i += 10) await Promise.all(ids.slice(i, i + 10).map(send));
    for (let i = 0; ; i += 1) {
      if ((await metric(gateway, 'modelgate_usage_wal_uncommitted_records')) === 0 && (await metric(gateway, 'modelgate_usage_spooled_records')) === 0) break;
      if (i > 300) throw new Error(`usage not written:\n${gateway.output}`);
      await sleep(100);
    }

    const client = new pg.Client({ connectionString: testEnv.databaseUrl });
    await client.connect();
    let stored: string[];
    let protocols: Map<string, string>;
    try {
      const rows = (await client.query<{ id: string; protocol: string }>('SELECT "id", "protocol"::text FROM "UsageRecord" WHERE "tenantId" = $1', [tenantId])).rows;
      stored = rows.map((r) => r.id.split('~')[0]!);
      protocols = new Map(rows.map((r) => [r.id.split('~')[0]!, r.protocol]));
    } finally {
      await client.end();
    }
    const counts = {
      afterRestart: ids.filter((id) => stored.includes(id)).length,
      beforeCrash: stored.filter((id) => id.startsWith('before-crash-')).length,
      injected: injected.filter((e) => stored.includes(e.id)).length,
    };
    if (process.env['MG_TEST_COUNTS']) process.stderr.write(`wal-damage: ${JSON.stringify(counts)} of ${N} / 20 / ${INJECTED}\n`);
    expect(counts).toEqual({ afterRestart: N, beforeCrash: 20, injected: INJECTED });
    // Served through GraphQL, stored as such; the old-format line replays as UNKNOWN, the others keep theirs.
    expect(new Set(ids.map((id) => protocols.get(id)))).toEqual(new Set(['GRAPHQL']));
    expect(injected.map((e) => protocols.get(e.id))).toEqual([...injected.slice(0, -1).map((e) => e.protocol), 'UNKNOWN']);

    // The bad line is kept, in a quarantined segment, and counted.
    const files = readdirSync(spoolDir);
    // Every segment of the killed process and the damaged one were replayed (the live process may still hold its own).
    expect(files.filter((f) => f.startsWith('usage-') && !f.includes(`-${gateway!.pid}-`))).toEqual([]);
    expect(files).toContain(`quarantined-${name}`);
    expect(readFileSync(path.join(spoolDir, `quarantined-${name}`), 'utf8')).toContain('2026-13-45T99:99:99Z');
    expect(await metric(gateway, 'modelgate_usage_wal_quarantined_lines_total')).toBe(1);
    expect(await metric(gateway, 'modelgate_usage_wal_stuck_segments')).toBe(0);
    const ready = await gateway.request<{ components: { usage: { detail: Record<string, unknown> } } }>('GET', '/readyz');
    expect(ready.body?.components.usage.detail).toMatchObject({ quarantinedLines: 1, spooledRecords: 0 });

    // Item 12: the restart after the crash logs no error (the replay waits for the database).
    const errors = gateway.logLines().filter((l) => typeof l['level'] === 'number' && l['level'] >= 50);
    expect(errors.map((l) => l['msg'])).toEqual([]);
    expect(gateway.output).toContain('usage log segment quarantined');
  });
});
