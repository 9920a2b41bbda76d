/**
 * Metering of real inference calls: N mixed requests (served, bad input,
 * unknown model, rate-limited, quota-exceeded) through infer/classify on a
 * gateway → exactly N usage records with the right statuses, items and units,
 * and usageSummary totals equal to the sums of those records.
 */
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { imagePng, imageTensor, INFER } from '../inference/fixtures';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

interface RecordNode {
  id: string;
  status: string;
  model: string;
  modelVersion: string | null;
  items: number;
  computeUnits: number;
  executionProvider: string | null;
  apiKeyId: string;
  latencyMs: number;
  protocol: string;
}

describe('usage records of inference calls', () => {
  let gw: TestGateway;
  let caller: TestKey;
  let reader: TestKey;
  let quotaCaller: TestKey;

  beforeAll(async () => {
    gw = await startGateway();
    // 13 compute units a minute: fashion-cnn costs 1.0 per item.
    caller = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 1000, computeUnitsPerMinute: 13 } });
    reader = await createTestKey({ scopes: ['admin'] });
    quotaCaller = await createTestKey({ scopes: ['inference'], tenantLimits: { monthlyComputeUnitQuota: 3 } });
  });
  afterAll(async () => {
    await gw.close();
    await closeTestKeys();
  });

  it('writes exactly one record per call with its status and units, and the summary adds up', async () => {
    const cnn = (n: number) => ({ input: { model: 'fashion-cnn', inputs: [imageTensor(Array.from({ length: n }, (_, i) => i))] } });
    const sent: { id: string; status: string; items: number; units: number }[] = [];
    const call = async (id: string, query: string, variables: Record<string, unknown>, key: string, expected: { status: string; items: number; units: number }) => {
      const res = await graphql(gw.url, query, variables, { ...authHeaders(key), 'x-request-id': id });
      sent.push({ id, ...expected });
      return res;
    };
    const run = `${Date.now().toString(36)}`;
    expect((await call(`${run}-ok-1`, INFER, cnn(4), caller.key, { status: 'OK', items: 4, units: 4 })).body.errors).toBeUndefined();
    const png = await imagePng(0);
    expect(
      (await call(`${run}-ok-2`, 'mutation($i: [ImageInput!]!) { classify(model: "fashion-cnn", images: $i) { modelName } }', { i: [{ png }, { png }] }, caller.key, { status: 'OK', items: 2, units: 2 })).body.errors,
    ).toBeUndefined();
    const bad = await call(`${run}-bad`, INFER, { input: { model: 'fashion-cnn', inputs: [{ ...imageTensor([0]), shape: [1, 28, 28] }] } }, caller.key, { status: 'BAD_INPUT', items: 1, units: 0 });
    expect(bad.body.errors![0]!.extensions?.['code']).toBe('BAD_USER_INPUT');
    const unknown = await call(`${run}-unknown`, INFER, { input: { model: 'no-such-model', inputs: [imageTensor([0])] } }, caller.key, { status: 'BAD_INPUT', items: 0, units: 0 });
    expect(unknown.body.errors![0]!.extensions?.['code']).toBe('NOT_FOUND');
    // 4 + 2 + 1 units consumed so far (the bad input was admitted before validation); 8 more do not fit in 13.
    const limited = await call(`${run}-limited`, INFER, cnn(8), caller.key, { status: 'RATE_LIMITED', items: 8, units: 0 });
    expect(limited.body.errors![0]!.extensions?.['code']).toBe('RATE_LIMITED');
    expect((await call(`${run}-ok-3`, INFER, cnn(5), caller.key, { status: 'OK', items: 5, units: 5 })).body.errors).toBeUndefined();
    expect((await call(`${run}-quota-ok`, INFER, cnn(3), quotaCaller.key, { status: 'OK', items: 3, units: 3 })).body.errors).toBeUndefined();
    const quota = await call(`${run}-quota`, INFER, cnn(1), quotaCaller.key, { status: 'QUOTA_EXCEEDED', items: 1, units: 0 });
    expect(quota.body.errors![0]!.extensions?.['code']).toBe('QUOTA_EXCEEDED');

    // The same client request id used twice is still two billed requests.
    expect((await graphql(gw.url, INFER, cnn(1), { ...authHeaders(caller.key), 'x-request-id': `${run}-ok-3` })).body.errors).toBeUndefined();
    const reused = { id: `${run}-ok-3`, status: 'OK', items: 1, units: 1 };

    await gw.gateway.services.usage.flush();

    const records: RecordNode[] = [];
    let after: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof graphql<{ usageRecords: { edges: { node: RecordNode }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>>> = await graphql(
        gw.url,
        `query($after: String) { usageRecords(first: 100, after: $after) { edges { node { id status model modelVersion items computeUnits executionProvider apiKeyId latencyMs protocol } } pageInfo { hasNextPage endCursor } } }`,
        { after },
        authHeaders(reader.key),
      );
      expect(page.body.errors).toBeUndefined();
      // A client-chosen request id is kept as the prefix, with a random suffix after "~".
      for (const edge of page.body.data!.usageRecords.edges) {
        if (!edge.node.id.startsWith(run)) continue;
        expect(edge.node.id).toMatch(/~[0-9a-f]{12}$/);
        records.push({ ...edge.node, id: edge.node.id.split('~')[0]! });
      }
      after = page.body.data!.usageRecords.pageInfo.hasNextPage ? page.body.data!.usageRecords.pageInfo.endCursor : null;
    } while (after);

    const expected = [...sent, reused];
    const key = (r: { id: string; status: string; items: number; units: number }) => `${r.id}|${r.status}|${r.items}|${r.units}`;
    expect(records.map((r) => key({ id: r.id, status: r.status, items: r.items, units: r.computeUnits })).sort()).toEqual(expected.map(key).sort());
    for (const r of records) {
      expect(r.latencyMs).toBeGreaterThan(0);
      expect(r.protocol).toBe('GRAPHQL');
      if (r.status === 'OK') expect(r).toMatchObject({ modelVersion: '1', executionProvider: 'cpu' });
    }
    expect(records.find((r) => r.id === `${run}-ok-1`)!.apiKeyId).toBe(caller.apiKeyId);

    // The caller's tenant summary equals the sums of its records.
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const summary = await graphql<{ usageSummary: { status: string; requests: number; items: number; computeUnits: number; errors: number }[] }>(
      gw.url,
      'query($t: ID, $from: DateTimeISO!, $to: DateTimeISO!) { usageSummary(tenantId: $t, from: $from, to: $to, groupBy: [STATUS]) { status requests items computeUnits errors } }',
      { t: caller.tenantId, from, to },
      authHeaders(reader.key),
    );
    const mine = expected.filter((s) => !s.id.includes('quota'));
    const byStatus = new Map<string, { requests: number; items: number; computeUnits: number }>();
    for (const s of mine) {
      const row = byStatus.get(s.status) ?? { requests: 0, items: 0, computeUnits: 0 };
      byStatus.set(s.status, { requests: row.requests + 1, items: row.items + s.items, computeUnits: row.computeUnits + s.units });
    }
    const rows = summary.body.data!.usageSummary;
    expect(Object.fromEntries(rows.map((r) => [r.status, { requests: r.requests, items: r.items, computeUnits: r.computeUnits }]))).toEqual(Object.fromEntries(byStatus));
    expect(rows.reduce((n, r) => n + r.errors, 0)).toBe(mine.filter((s) => s.status !== 'OK').length);
  });
});
