/**
 * The billing API end to end on a real gateway: usageSummary, usageRecords and
 * GET /usage.csv with real API keys (usage:read, admin, inference-only),
 * records fed through services.usage.record() the way the inference path does.
 */
import { randomUUID } from 'node:crypto';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import type { UsageEvent } from '../../src/usage/usage-event';
import { drain, expectedTotals, makeEvent } from './helpers';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const SUMMARY = `query($from: DateTimeISO!, $to: DateTimeISO!, $groupBy: [UsageGroupBy!]! = [], $tenantId: ID) {
  usageSummary(from: $from, to: $to, groupBy: $groupBy, tenantId: $tenantId) {
    hour day model apiKeyId status protocol requests items computeUnits errors avgLatencyMs p50LatencyMs p95LatencyMs
  }
}`;
const RECORDS = `query($filter: UsageRecordFilter, $first: Int! = 50, $after: String) {
  usageRecords(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id tenantId apiKeyId model modelVersion items computeUnits status latencyMs queueMs computeMs executionProvider createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface Row {
  requests: number;
  items: number;
  computeUnits: number;
  errors: number;
  status: string | null;
  protocol: string | null;
  model: string | null;
}
interface RecordsData {
  usageRecords: { edges: { cursor: string; node: { id: string; tenantId: string; status: string; items: number; createdAt: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

const FROM = '2026-10-25T00:00:00.000Z';
const TO = '2026-11-10T00:00:00.000Z';

describe('usage API', () => {
  let gw: TestGateway;
  let readerA: TestKey;
  let inferenceA: TestKey;
  let readerB: TestKey;
  let admin: TestKey;
  let eventsA: UsageEvent[];
  let eventsB: UsageEvent[];

  beforeAll(async () => {
    gw = await startGateway();
    const tenantA = `usage-a-${randomUUID().slice(0, 8)}`;
    readerA = await createTestKey({ tenantName: tenantA, scopes: ['usage:read'] });
    inferenceA = await createTestKey({ tenantName: tenantA, scopes: ['inference'] });
    readerB = await createTestKey({ scopes: ['usage:read'] });
    admin = await createTestKey({ scopes: ['admin'] });
    const usage = gw.gateway.services.usage;
    eventsA = Array.from({ length: 1_401 }, (_, i) => makeEvent(readerA.tenantId, i, i % 5 === 0 ? { apiKeyId: readerA.apiKeyId } : {}));
    eventsB = Array.from({ length: 377 }, (_, i) => makeEvent(readerB.tenantId, i));
    for (const e of [...eventsA, ...eventsB]) usage.record(e);
    await drain(usage);
  });
  afterAll(async () => {
    await gw.close();
    await closeTestKeys();
  });

  const q = <T = Record<string, unknown>>(key: TestKey | null, query: string, variables: Record<string, unknown> = {}) =>
    graphql<T>(gw.url, query, variables, key ? authHeaders(key.key) : {});

  it('summary totals equal the sums of the records, overall and per status', async () => {
    const res = await q<{ usageSummary: Row[] }>(readerA, SUMMARY, { from: FROM, to: TO, groupBy: ['STATUS'] });
    expect(res.body.errors).toBeUndefined();
    const rows = res.body.data!.usageSummary;
    const want = expectedTotals(eventsA);
    expect(rows.reduce((a, r) => a + r.requests, 0)).toBe(want.rows);
    expect(rows.reduce((a, r) => a + r.items, 0)).toBe(want.items);
    expect(rows.reduce((a, r) => a + r.computeUnits, 0)).toBeCloseTo(want.computeUnits, 6);
    expect(Object.fromEntries(rows.map((r) => [r.status, r.requests]))).toEqual(want.byStatus);
    for (const r of rows) expect(r.errors).toBe(r.status === 'OK' ? 0 : r.requests);
  });

  it('groups by protocol (records, hourly and daily rollups alike), filters records by it, and exports it in the CSV', async () => {
    const count = (events: UsageEvent[]) => events.reduce<Record<string, number>>((acc, e) => ({ ...acc, [e.protocol]: (acc[e.protocol] ?? 0) + 1 }), {});
    const want = count(eventsA);
    expect(Object.keys(want).sort()).toEqual(['GRAPHQL', 'GRPC', 'REST']);
    const res = await q<{ usageSummary: Row[] }>(readerA, SUMMARY, { from: FROM, to: TO, groupBy: ['PROTOCOL'] });
    expect(res.body.errors).toBeUndefined();
    expect(Object.fromEntries(res.body.data!.usageSummary.map((r) => [r.protocol, r.requests]))).toEqual(want);
    for (const r of res.body.data!.usageSummary) expect(r.status).toBeNull();
    // Combined with another dimension, the cells still add up per protocol.
    const both = await q<{ usageSummary: Row[] }>(readerA, SUMMARY, { from: FROM, to: TO, groupBy: ['PROTOCOL', 'STATUS'] });
    const perProtocol: Record<string, number> = {};
    for (const r of both.body.data!.usageSummary) perProtocol[r.protocol!] = (perProtocol[r.protocol!] ?? 0) + r.requests;
    expect(perProtocol).toEqual(want);

    const grpcOnly = await q<{ usageRecords: { edges: { node: { protocol: string } }[] } }>(readerA, `query($filter: UsageRecordFilter) { usageRecords(filter: $filter, first: 1000) { edges { node { protocol } } } }`, { filter: { protocol: 'GRPC' } });
    expect(grpcOnly.body.errors).toBeUndefined();
    expect(grpcOnly.body.data!.usageRecords.edges).toHaveLength(want['GRPC']!);
    expect(new Set(grpcOnly.body.data!.usageRecords.edges.map((e) => e.node.protocol))).toEqual(new Set(['GRPC']));

    const csv = await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}`, { headers: authHeaders(readerA.key) });
    const byId = new Map(eventsA.map((e) => [e.id, e.protocol]));
    const [header, ...lines] = (await csv.text()).trim().split('\n');
    const column = header!.split(',').indexOf('protocol');
    expect(column).toBeGreaterThan(0);
    expect(lines).toHaveLength(eventsA.length);
    for (const line of lines) {
      const cells = line.split(',');
      expect(cells[column]).toBe(byId.get(cells[0]!));
    }
  });

  it('usage:read sees only its own tenant on every usage field; another tenantId is FORBIDDEN', async () => {
    const own = await q<{ usageSummary: Row[] }>(readerB, SUMMARY, { from: FROM, to: TO });
    expect(own.body.data!.usageSummary[0]!.requests).toBe(eventsB.length);

    const foreignSummary = await q(readerB, SUMMARY, { from: FROM, to: TO, tenantId: readerA.tenantId });
    expect(foreignSummary.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', field: 'tenantId' });
    expect(foreignSummary.body.data).toBeNull();

    const foreignRecords = await q(readerB, RECORDS, { filter: { tenantId: readerA.tenantId } });
    expect(foreignRecords.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');

    // Filtering B's records by one of A's keys finds nothing of A's.
    const byForeignKey = await q<RecordsData>(readerB, RECORDS, { filter: { apiKeyId: readerA.apiKeyId }, first: 1000 });
    expect(byForeignKey.body.data!.usageRecords.edges).toEqual([]);

    const ownRecords = await q<RecordsData>(readerB, RECORDS, { first: 1000 });
    const nodes = ownRecords.body.data!.usageRecords.edges.map((e) => e.node);
    expect(nodes).toHaveLength(eventsB.length);
    expect(new Set(nodes.map((n) => n.tenantId))).toEqual(new Set([readerB.tenantId]));

    const csvOwn = await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}`, { headers: authHeaders(readerB.key) });
    const lines = (await csvOwn.text()).trim().split('\n');
    expect(lines).toHaveLength(eventsB.length + 1);
    expect(lines.slice(1).every((l) => l.split(',')[1] === readerB.tenantId)).toBe(true);
    const csvForeign = await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}&tenantId=${readerA.tenantId}`, { headers: authHeaders(readerB.key) });
    expect(csvForeign.status).toBe(403);
    expect(await csvForeign.json()).toMatchObject({ errors: [{ extensions: { code: 'FORBIDDEN' } }] });
  });

  it('admin reads any tenant, and all tenants without a tenantId', async () => {
    const a = await q<{ usageSummary: Row[] }>(admin, SUMMARY, { from: FROM, to: TO, tenantId: readerA.tenantId });
    expect(a.body.data!.usageSummary[0]!.requests).toBe(eventsA.length);
    const all = await q<{ usageSummary: Row[] }>(admin, SUMMARY, { from: FROM, to: TO });
    expect(all.body.data!.usageSummary[0]!.requests).toBeGreaterThanOrEqual(eventsA.length + eventsB.length);
    const csv = await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}&tenantId=${readerA.tenantId}`, { headers: authHeaders(admin.key) });
    expect(csv.status).toBe(200);
    expect((await csv.text()).trim().split('\n')).toHaveLength(eventsA.length + 1);
  });

  it('refuses keys without usage:read and calls without a key', async () => {
    const noScope = await q(inferenceA, SUMMARY, { from: FROM, to: TO });
    expect(noScope.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    const anonymous = await q(null, RECORDS);
    expect(anonymous.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    expect((await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}`)).status).toBe(401);
    expect((await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}`, { headers: authHeaders(inferenceA.key) })).status).toBe(403);
  });

  it('answers bad input with BAD_USER_INPUT naming the field', async () => {
    const cases: [string, Record<string, unknown>, string][] = [
      [SUMMARY, { from: TO, to: FROM }, 'from'],
      [SUMMARY, { from: '2020-01-01T00:00:00Z', to: TO }, 'to'],
      [SUMMARY, { from: FROM, to: TO, groupBy: ['HOUR'], tenantId: readerA.tenantId.slice(0, 8) }, 'tenantId'],
      [SUMMARY, { from: '2026-01-01T00:00:00Z', to: TO, groupBy: ['HOUR'] }, 'to'],
      [RECORDS, { first: 0 }, 'first'],
      [RECORDS, { first: 1001 }, 'first'],
      [RECORDS, { after: 'bm90IGEgY3Vyc29y' }, 'after'],
      [RECORDS, { filter: { apiKeyId: 'nope' } }, 'filter.apiKeyId'],
    ];
    for (const [query, variables, field] of cases) {
      const res = await q(readerA, query, variables);
      expect({ field, ext: res.body.errors?.[0]?.extensions }).toMatchObject({ field, ext: { code: 'BAD_USER_INPUT', field } });
    }
    const csv = await fetch(`${gw.url}/usage.csv?to=${TO}`, { headers: authHeaders(readerA.key) });
    expect(csv.status).toBe(400);
    expect(await csv.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_USER_INPUT', field: 'from' } }] });
  });

  it('streams the CSV with a header and every record of the range once', async () => {
    const res = await fetch(`${gw.url}/usage.csv?from=${FROM}&to=${TO}`, { headers: authHeaders(readerA.key) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await res.text()).trim().split('\n');
    expect(lines[0]).toBe('id,tenantId,apiKeyId,model,modelVersion,items,computeUnits,status,latencyMs,queueMs,computeMs,executionProvider,createdAt,protocol,currency,unitPriceMicros,amountMicros');
    const ids = lines.slice(1).map((l) => l.split(',')[0]);
    expect(new Set(ids).size).toBe(eventsA.length);
    expect(new Set(ids)).toEqual(new Set(eventsA.map((e) => e.id)));
    // Every batch boundary of the keyset walk is crossed without loss or repeat.
    const chunks: string[] = [];
    for await (const chunk of gw.gateway.services.usage.queries.csv(readerA.tenantId, new Date(FROM), new Date(TO), 97)) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.join('').trim().split('\n')).toHaveLength(eventsA.length + 1);
  });

  it('pages every record exactly once, newest first, while inserts continue', async () => {
    const usage = gw.gateway.services.usage;
    const seen: string[] = [];
    let after: string | null = null;
    let lastCreated = Infinity;
    let extra = 0;
    for (let page = 0; page < 100; page += 1) {
      const res: Awaited<ReturnType<typeof q<RecordsData>>> = await q<RecordsData>(readerA, RECORDS, { first: 100, after });
      expect(res.body.errors).toBeUndefined();
      const { edges, pageInfo } = res.body.data!.usageRecords;
      for (const { node } of edges) {
        const t = Date.parse(node.createdAt);
        expect(t).toBeLessThanOrEqual(lastCreated);
        lastCreated = t;
        seen.push(node.id);
      }
      // New traffic lands between pages: both live records and late ones (a spool replay) older than the page.
      for (let i = 0; i < 20; i += 1) {
        usage.record(makeEvent(readerA.tenantId, 10_000 + extra++, { createdAt: new Date() }));
        if (Number.isFinite(lastCreated)) usage.record(makeEvent(readerA.tenantId, 10_000 + extra++, { createdAt: new Date(lastCreated - 1 - i) }));
      }
      await drain(usage);
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    const original = new Set(eventsA.map((e) => e.id));
    const seenOriginal = seen.filter((id) => original.has(id));
    expect(seenOriginal).toHaveLength(original.size);
    expect(new Set(seen).size).toBe(seen.length);
    // The late records (older than the cursor when written) are reached too; the live ones are above the first page.
    expect(seen.length).toBeGreaterThan(original.size);
    expect(extra).toBeGreaterThan(0);
  });
});
