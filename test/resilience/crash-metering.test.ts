/**
 * Crash-safe metering, on the production build: `node dist/main.js` serves
 * inference under load and is killed with SIGKILL mid-stream. After a
 * restart on the same data directory, every request the client got a 200
 * for has exactly one usage record, and no record is stored twice.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { createTestKey, testKeyService } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { imageTensor } from '../inference/fixtures';

// Two starts (the first and the restart) plus the load between them.
jest.setTimeout(2 * STARTUP_TEST_TIMEOUT_MS);

const INFER = 'mutation($input: InferInput!) { infer(input: $input) { modelName } }';
const CLIENTS = 24;

interface LoadResult {
  /** Request ids answered with HTTP 200 and no GraphQL error. */
  answered: string[];
  /** Requests that got no HTTP response (connection reset or refused by the kill). */
  unanswered: number;
  /** Responses other than a clean 200 (none expected). */
  other: { status: number; text: string }[];
}

/** CLIENTS loops sending one-image infer requests back to back until `stop` says so (or the server is gone). */
async function load(gateway: ProductionGateway, key: string, result: LoadResult, stop: () => boolean): Promise<void> {
  const input = { model: 'fashion-cnn', inputs: [imageTensor([7])] };
  let n = 0;
  const client = async (c: number): Promise<void> => {
    while (!stop()) {
      const id = `crash-${c}-${n++}`;
      try {
        const res = await gateway.graphql<{ infer: { modelName: string } }>(INFER, { input }, { authorization: `Bearer ${key}`, 'x-request-id': id });
        if (res.status === 200 && res.body?.data?.infer?.modelName === 'fashion-cnn' && !res.body.errors) result.answered.push(id);
        else result.other.push({ status: res.status, text: res.text.slice(0, 300) });
      } catch {
        result.unanswered += 1;
        return; // the process is gone
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
}

async function metric(gateway: ProductionGateway, name: string): Promise<number> {
  const res = await gateway.request('GET', '/metrics');
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.split(' ')[1]);
}

describe('usage records survive kill -9 (production build)', () => {
  let gateway: ProductionGateway | undefined;
  afterAll(async () => {
    if (gateway?.running) await gateway.kill();
    await (await testKeyService()).db.close();
  });

  it('after kill -9 under load and a restart, every answered request has exactly one record', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'] });
    const env: Record<string, string> = { ...productionEnv(), RATE_LIMITS_ENABLED: 'false' };
    gateway = await ProductionGateway.start(env);
    const first = gateway;

    // Kill once a few hundred requests were answered, while CLIENTS more are in flight.
    const result: LoadResult = { answered: [], unanswered: 0, other: [] };
    const running = load(first, key, result, () => !first.running);
    await until('400 answered requests (or an unexpected answer)', () => ({ answered: result.answered.length, other: result.other.length, unanswered: result.unanswered }), {
      accept: (r) => r.answered >= 400 || r.other > 0,
      everyMs: 10,
      failIf: () => (first.running ? undefined : 'the gateway exited before the kill'),
    });
    await first.kill();
    await running;
    expect(result.other).toEqual([]);
    expect(result.answered.length).toBeGreaterThanOrEqual(400);

    gateway = await first.restart();
    // The restarted process adopts the dead one's log and replays it; wait until nothing is left uncommitted.
    const restarted = gateway;
    await until(
      'the restarted gateway to replay the log (0 uncommitted, 0 spooled)',
      async () => ({
        uncommitted: await metric(restarted, 'modelgate_usage_wal_uncommitted_records'),
        spooled: await metric(restarted, 'modelgate_usage_spooled_records'),
      }),
      { accept: (m) => m.uncommitted === 0 && m.spooled === 0, everyMs: 100, failIf: () => (restarted.running ? undefined : `exited:\n${restarted.output}`) },
    );

    const ready = await gateway.request<{ components: { usage: { detail: Record<string, number> } } }>('GET', '/readyz');
    expect(ready.body?.components.usage.detail).toMatchObject({ spooledRecords: 0, walUncommittedRecords: 0 });

    const client = new pg.Client({ connectionString: testEnv.databaseUrl });
    await client.connect();
    let rows: { id: string }[];
    try {
      rows = (await client.query<{ id: string }>('SELECT "id" FROM "UsageRecord" WHERE "tenantId" = $1', [tenantId])).rows;
    } finally {
      await client.end();
    }
    // Client-chosen request ids are stored as "<id>~<random suffix>".
    const perRequest = new Map<string, number>();
    for (const { id } of rows) {
      const requestId = id.split('~')[0]!;
      perRequest.set(requestId, (perRequest.get(requestId) ?? 0) + 1);
    }
    const missing = result.answered.filter((id) => !perRequest.has(id));
    const duplicated = [...perRequest].filter(([, n]) => n > 1);
    expect({ answered: result.answered.length, missing: missing.length, duplicated: duplicated.length }).toEqual({
      answered: result.answered.length,
      missing: 0,
      duplicated: 0,
    });
    if (process.env['MG_TEST_COUNTS']) process.stderr.write(`crash-metering: answered ${result.answered.length}, unanswered ${result.unanswered}, records ${rows.length}, missing ${missing.length}, duplicated ${duplicated.length}\n`);
    // Records beyond the answered ones can only be requests in flight at the kill (durable, never answered).
    const extra = rows.length - result.answered.length;
    expect(extra).toBeGreaterThanOrEqual(0);
    expect(extra).toBeLessThanOrEqual(result.unanswered);
    // Everything committed: the log keeps no segment behind.
    const spoolDir = path.join(env['DATA_DIR']!, 'usage-spool');
    expect(readdirSync(spoolDir).filter((f) => f.startsWith('usage-'))).toEqual([]);
  });
});
