/**
 * The two front doors are one pipeline: the same request through OIP REST
 * and GraphQL gives the same usage record and consumes the same limits; a
 * per-minute limit is shared across both (N total, not N each); REST and
 * GraphQL requests batch together.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { graphql, REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { imageTensor, INFER } from '../inference/fixtures';
import { binaryInfer, jsonInfer, oip } from './helpers';
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
}

afterAll(() => closeTestKeys());

const json = { 'content-type': 'application/json' };

async function usageRecords(url: string, headers: Record<string, string>, prefix: string): Promise<Map<string, RecordNode>> {
  const out = new Map<string, RecordNode>();
  let after: string | null = null;
  do {
    const page: Awaited<ReturnType<typeof graphql<{ usageRecords: { edges: { node: RecordNode }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>>> = await graphql(
      url,
      'query($after: String) { usageRecords(first: 100, after: $after) { edges { node { id status model modelVersion items computeUnits executionProvider } } pageInfo { hasNextPage endCursor } } }',
      { after },
      headers,
    );
    expect(page.body.errors).toBeUndefined();
    for (const edge of page.body.data!.usageRecords.edges) {
      // Client-chosen request ids get a random "~suffix" in the record id.
      if (edge.node.id.startsWith(prefix)) out.set(edge.node.id.split('~')[0]!, edge.node);
    }
    after = page.body.data!.usageRecords.pageInfo.hasNextPage ? page.body.data!.usageRecords.pageInfo.endCursor : null;
  } while (after);
  return out;
}

describe('usage records and limits across both front doors', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ INFERENCE_WORKERS: '1' });
  });
  afterAll(() => gw.close());

  it('records the same status, items and units for the same request over REST and GraphQL, one record per request', async () => {
    // 20 compute units a minute on the key; fashion-cnn costs 1 per item.
    const caller = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 1000, computeUnitsPerMinute: 20 } });
    const reader = await createTestKey({ scopes: ['admin'] });
    const headers = authHeaders(caller.key);
    const run = `par${Date.now().toString(36)}`;
    const cnn = (n: number) => Array.from({ length: n }, (_, i) => i);
    const badShape = { name: 'image', datatype: 'FP32', shape: [1, 28, 28], data: Array(784).fill(0) };
    // [name, REST call, GraphQL variables, expected record]
    const pairs: [string, () => Promise<number>, Record<string, unknown>, { status: string; items: number; units: number }][] = [
      ['ok', () => rest('fashion-cnn', jsonInfer(cnn(4))), { model: 'fashion-cnn', inputs: [imageTensor(cnn(4))] }, { status: 'OK', items: 4, units: 4 }],
      ['bad', () => rest('fashion-cnn', JSON.stringify({ inputs: [badShape] })), { model: 'fashion-cnn', inputs: [badShape] }, { status: 'BAD_INPUT', items: 1, units: 0 }],
      ['unknown', () => rest('no-such-model', jsonInfer([0])), { model: 'no-such-model', inputs: [imageTensor([0])] }, { status: 'BAD_INPUT', items: 0, units: 0 }],
      // 4 + 4 + 1 + 1 units used (bad input is admitted before validation); 16 more do not fit in 20.
      ['limited', () => rest('fashion-cnn', jsonInfer(cnn(16))), { model: 'fashion-cnn', inputs: [imageTensor(cnn(16))] }, { status: 'RATE_LIMITED', items: 16, units: 0 }],
    ];
    let currentId = '';
    const rest = async (model: string, body: string) => (await oip(`${gw.url}/v2/models/${model}/infer`, { headers: { ...headers, ...json, 'x-request-id': currentId }, body })).status;
    const statuses: Record<string, [number, number]> = {};
    for (const [name, restCall, variables] of pairs) {
      currentId = `${run}-${name}-rest`;
      const restStatus = await restCall();
      const gql = await graphql(gw.url, INFER, { input: variables }, { ...headers, 'x-request-id': `${run}-${name}-gql` });
      statuses[name] = [restStatus, gql.status];
    }
    // The same HTTP status through both doors (src/errors/contract.ts): the failed infer is the operation's whole answer.
    expect(statuses).toEqual({ ok: [200, 200], bad: [400, 400], unknown: [404, 404], limited: [429, 429] });

    await gw.gateway.services.usage.flush();
    const records = await usageRecords(gw.url, authHeaders(reader.key), run);
    expect(records.size).toBe(pairs.length * 2);
    for (const [name, , , expected] of pairs) {
      const r = records.get(`${run}-${name}-rest`)!;
      const g = records.get(`${run}-${name}-gql`)!;
      expect({ status: r.status, items: r.items, units: r.computeUnits }).toEqual({ status: expected.status, items: expected.items, units: expected.units });
      const { id: _r, ...restRecord } = r;
      const { id: _g, ...gqlRecord } = g;
      expect(restRecord).toEqual(gqlRecord);
    }
  });

  it('shares one per-minute request limit across REST and GraphQL (N in total), with the same RateLimit headers', async () => {
    const caller = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 6, computeUnitsPerMinute: 1000 } });
    const headers = authHeaders(caller.key);
    const results: { via: string; status: number; ratelimit: string | null; policy: string | null; retryAfter: string | null }[] = [];
    for (let i = 0; i < 10; i += 1) {
      if (i % 2 === 0) {
        const bin = binaryInfer([i]);
        const res = await oip(`${gw.url}/v2/models/fashion-cnn/infer`, { headers: { ...headers, ...bin.headers }, body: bin.body });
        results.push({ via: 'rest', status: res.status, ratelimit: res.headers.get('ratelimit'), policy: res.headers.get('ratelimit-policy'), retryAfter: res.headers.get('retry-after') });
        if (res.status === 429) expect(res.json).toMatchObject({ code: 'RATE_LIMITED', limit: { name: 'key_requests', limit: 6 } });
      } else {
        const res = await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([i])] } }, headers);
        results.push({ via: 'gql', status: res.status, ratelimit: res.headers.get('ratelimit'), policy: res.headers.get('ratelimit-policy'), retryAfter: res.headers.get('retry-after') });
      }
    }
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    // key_requests remaining counts down across both doors: 5, 4, 3, 2, 1, 0.
    const remaining = results.map((r) => /"key_requests";r=(\d+)/.exec(r.ratelimit ?? '')?.[1]);
    expect(remaining).toEqual(['5', '4', '3', '2', '1', '0', '0', '0', '0', '0']);
    // One policy for both protocols; refusals carry Retry-After on both.
    expect(new Set(results.map((r) => r.policy)).size).toBe(1);
    expect(results[0]!.policy).toContain('"key_requests";q=6;w=60');
    for (const r of results.slice(6)) expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
  });
});

describe('refusals before the model is known', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ INFERENCE_WORKERS: '1' });
  });
  afterAll(() => gw.close());

  it('charges one request to a key without the inference scope on both doors, answering 403 without a usage record', async () => {
    const reader = await createTestKey({ scopes: ['usage:read'], keyLimits: { requestsPerMinute: 10 } });
    const admin = await createTestKey({ scopes: ['admin'] });
    const headers = { ...authHeaders(reader.key), 'x-request-id': `noscope${Date.now().toString(36)}` };
    const rest = await oip(`${gw.url}/v2/models/fashion-cnn/infer`, { headers: { ...headers, ...json }, body: jsonInfer([0]) });
    const gql = await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } }, headers);
    expect([rest.status, gql.status]).toEqual([403, 403]);
    expect([rest.json['code'], gql.body.errors?.[0]?.extensions?.['code']]).toEqual(['FORBIDDEN', 'FORBIDDEN']);
    expect([rest.headers.get('ratelimit'), gql.headers.get('ratelimit')].map((h) => /"key_requests";r=(\d+)/.exec(h ?? '')?.[1])).toEqual(['9', '8']);
    await gw.gateway.services.usage.flush();
    expect((await usageRecords(gw.url, authHeaders(admin.key), headers['x-request-id'])).size).toBe(0);
  });

  it('records a REST body that does not parse as one BAD_INPUT call with 0 items', async () => {
    const caller = await createTestKey({ scopes: ['inference'] });
    const admin = await createTestKey({ scopes: ['admin'] });
    const id = `unparsed${Date.now().toString(36)}`;
    const res = await oip(`${gw.url}/v2/models/fashion-cnn/infer`, { headers: { ...authHeaders(caller.key), ...json, 'x-request-id': id }, body: '{"inputs": [' });
    expect(res.status).toBe(400);
    await gw.gateway.services.usage.flush();
    const records = await usageRecords(gw.url, authHeaders(admin.key), id);
    expect([...records.values()].map((r) => ({ status: r.status, model: r.model, items: r.items, units: r.computeUnits }))).toEqual([
      { status: 'BAD_INPUT', model: 'fashion-cnn', items: 0, units: 0 },
    ]);
  });
});

describe('REST and GraphQL requests batch together', () => {
  let gw: TestGateway;
  let repo: string;
  beforeAll(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'modelgate-oip-repo-'));
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-cnn'), path.join(repo, 'pairs'), { recursive: true });
    const config = JSON.parse(readFileSync(path.join(repo, 'pairs', 'config.json'), 'utf8')) as Record<string, unknown>;
    // A batch goes only at 2 items (or after 10 s, the longest delay config.json allows), even while the
    // model is idle (delay_when_idle: Triton's delayed batching): two single-item requests run as one execution.
    writeFileSync(
      path.join(repo, 'pairs', 'config.json'),
      JSON.stringify({ ...config, name: 'pairs', dynamic_batching: { max_queue_delay_microseconds: 10_000_000, preferred_batch_size: [2], delay_when_idle: true } }),
    );
    gw = await startGateway({ MODEL_REPOSITORY: repo, INFERENCE_WORKERS: '1', INFERENCE_MAX_TIMEOUT_MS: '60000', INFERENCE_DEFAULT_TIMEOUT_MS: '60000' });
  });
  afterAll(async () => {
    await gw.close();
    rmSync(repo, { recursive: true, force: true });
  });

  it('runs one REST and one GraphQL request in one execution of batch size 2', async () => {
    const { key } = await createTestKey({ scopes: ['admin'] });
    const headers = authHeaders(key);
    const stats = async () =>
      (await graphql<{ model: { stats: { requests: number; executions: number; inferences: number } } }>(gw.url, '{ model(name: "pairs") { stats { requests executions inferences } } }', {}, headers)).body.data!.model.stats;
    const before = await stats();
    const bin = binaryInfer([5]);
    const [restRes, gqlRes] = await Promise.all([
      oip(`${gw.url}/v2/models/pairs/infer`, { headers: { ...headers, ...bin.headers }, body: bin.body }),
      graphql<{ infer: { batchSize: number } }>(gw.url, 'mutation($input: InferInput!) { infer(input: $input) { batchSize } }', { input: { model: 'pairs', inputs: [imageTensor([6])] } }, headers),
    ]);
    expect({ status: restRes.status, body: restRes.json }).toEqual({ status: 200, body: expect.objectContaining({ model_name: 'pairs' }) });
    expect(gqlRes.body.data!.infer.batchSize).toBe(2);
    const after = await stats();
    expect({ requests: after.requests - before.requests, executions: after.executions - before.executions, inferences: after.inferences - before.inferences }).toEqual({
      requests: 2,
      executions: 1,
      inferences: 2,
    });
  });

  it('drops a request still queued at its deadline with 504 TIMEOUT on both doors (Triton timeout in µs, GraphQL timeoutMs)', async () => {
    const { key } = await createTestKey({ scopes: ['admin'] });
    const id = `deadline${Date.now().toString(36)}`;
    const headers = authHeaders(key);
    // Alone in the queue, neither reaches the preferred batch of 2 before its 100 ms deadline.
    const rest = await oip(`${gw.url}/v2/models/pairs/infer`, { headers: { ...headers, ...json, 'x-request-id': `${id}-rest` }, body: jsonInfer([0], { parameters: { timeout: 100_000 } }) });
    const gql = await graphql(gw.url, INFER, { input: { model: 'pairs', inputs: [imageTensor([0])], parameters: { timeoutMs: 100 } } }, { ...headers, 'x-request-id': `${id}-gql` });
    expect([rest.status, rest.json['code']]).toEqual([504, 'TIMEOUT']);
    expect([gql.status, gql.body.errors?.[0]?.extensions?.['code']]).toEqual([504, 'TIMEOUT']);
    await gw.gateway.services.usage.flush();
    const records = await usageRecords(gw.url, headers, id);
    expect([...records.entries()].map(([rid, r]) => [rid, r.status, r.items, r.computeUnits]).sort()).toEqual([
      [`${id}-gql`, 'TIMEOUT', 1, 0],
      [`${id}-rest`, 'TIMEOUT', 1, 0],
    ]);
  });
});
