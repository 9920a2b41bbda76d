/**
 * @jest-environment ./test/models/ort-environment.js
 *
 * The response cache (issue #25) on a real gateway with real models, Postgres
 * and Redis: a model that opts in (`response_cache: { enable: true }`)
 * answers a second identical request from the cache, still authenticated,
 * limited and metered (a usage record marked cacheHit, billed at
 * RESPONSE_CACHE_BILLED_FRACTION); the cache is per tenant, per input, only
 * for models that opt in, and a reload empties it.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort, graphql, REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { OipGrpcClient, rawInfer } from '../grpc/client';
import { authHeaders, closeTestKeys, createTestKey, type TestKeyOptions } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { imageFloats, imageTensor, INFER } from './fixtures';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const LIMITS = { requestsPerMinute: 100_000, computeUnitsPerMinute: 10_000_000 };
let repo: string;
let gw: TestGateway;
let db: Client;
let tenantA: { headers: Record<string, string>; tenantId: string };
let tenantB: { headers: Record<string, string>; tenantId: string };
let grpc: OipGrpcClient;

async function tenant(scopes: TestKeyOptions['scopes']) {
  const key = await createTestKey({ scopes, tenantLimits: LIMITS, keyLimits: LIMITS });
  return { headers: authHeaders(key.key), tenantId: key.tenantId };
}

beforeAll(async () => {
  repo = mkdtempSync(path.join(os.tmpdir(), 'modelgate-response-cache-'));
  // fashion-cnn opts in; fashion-lstm keeps the default (no cache).
  for (const name of ['fashion-cnn', 'fashion-lstm']) cpSync(path.join(REPO_ROOT, 'models', name), path.join(repo, name), { recursive: true });
  const configFile = path.join(repo, 'fashion-cnn', 'config.json');
  writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), response_cache: { enable: true } }));
  tenantA = await tenant(['admin']);
  tenantB = await tenant(['inference']);
  db = new Client({ connectionString: testEnv.databaseUrl });
  await db.connect();
  const grpcPort = await freePort();
  gw = await startGateway({ MODEL_REPOSITORY: repo, RESPONSE_CACHE_BILLED_FRACTION: '0.25', INFERENCE_WORKERS: '1', USAGE_FLUSH_INTERVAL_MS: '50', GRPC_PORT: String(grpcPort) });
  grpc = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
});
afterAll(async () => {
  grpc?.close();
  await gw?.close();
  await db?.end();
  await closeTestKeys();
  rmSync(repo, { recursive: true, force: true });
});

type Output = { name: string; datatype: string; shape: number[]; dataBase64: string };

async function inferGql(headers: Record<string, string>, model: string, inputs: unknown[]): Promise<Output[]> {
  const res = await graphql<{ infer: { outputs: Output[] } }>(gw.url, INFER, { input: { model, inputs } }, headers);
  if (!res.body.data) throw new Error(JSON.stringify(res.body.errors));
  return res.body.data.infer.outputs;
}

/** OIP REST with JSON numbers. */
async function inferOip(headers: Record<string, string>, model: string, indices: number[]): Promise<{ name: string; data: number[] }[]> {
  const res = await fetch(`${gw.url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [indices.length, 1, 28, 28], data: Array.from(imageFloats(indices)) }] }),
  });
  const body = (await res.json()) as { outputs: { name: string; data: number[] }[] };
  expect(res.status).toBe(200);
  return body.outputs;
}

async function metric(name: string, model?: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const label = model === undefined ? '' : `\\{model="${model}"\\}`;
  const match = new RegExp(`^${name}${label} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

interface Row {
  computeUnits: number;
  cacheHit: boolean;
  items: number;
  status: string;
}

/** The tenant's stored usage records for a model, oldest first, once there are `count` of them. */
async function records(tenantId: string, model: string, count: number): Promise<Row[]> {
  const read = async () =>
    (
      await db.query<Row>(
        `SELECT "computeUnits", "cacheHit", "items", "status"::text AS status FROM "UsageRecord" WHERE "tenantId" = $1 AND "model" = $2 ORDER BY "createdAt", "id"`,
        [tenantId, model],
      )
    ).rows;
  return until(`${count} usage records of ${model}`, read, { accept: (rows) => rows.length >= count });
}

describe('response cache', () => {
  it('answers a second identical request from the cache: same outputs, a hit, a usage record marked and billed at the fraction', async () => {
    const batch = imageTensor([0, 1, 2, 3, 4, 5, 6, 7]);
    const hits = await metric('modelgate_response_cache_hits_total', 'fashion-cnn');
    const misses = await metric('modelgate_response_cache_misses_total', 'fashion-cnn');
    const first = await inferGql(tenantA.headers, 'fashion-cnn', [batch]);
    expect(await metric('modelgate_response_cache_misses_total', 'fashion-cnn')).toBe(misses + 1);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits);
    const second = await inferGql(tenantA.headers, 'fashion-cnn', [batch]);
    expect(second).toEqual(first);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits + 1);
    expect(await metric('modelgate_response_cache_bytes')).toBeGreaterThan(8 * 10 * 4);
    expect(await metric('modelgate_response_cache_entries')).toBeGreaterThanOrEqual(1);

    const rows = await records(tenantA.tenantId, 'fashion-cnn', 2);
    // 8 items × cost 1 = 8 units; a hit is billed ceil(8 × 0.25) = 2.
    expect(rows.map((r) => [r.status, r.items, r.computeUnits, r.cacheHit])).toEqual([
      ['OK', 8, 8, false],
      ['OK', 8, 2, true],
    ]);
  });

  it('the same input through OIP REST (JSON numbers) is cached too, and a hit is still authenticated', async () => {
    const hits = await metric('modelgate_response_cache_hits_total', 'fashion-cnn');
    const first = await inferOip(tenantA.headers, 'fashion-cnn', [9]);
    const second = await inferOip(tenantA.headers, 'fashion-cnn', [9]);
    expect(second).toEqual(first);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits + 1);
    const anonymous = await fetch(`${gw.url}/v2/models/fashion-cnn/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from(imageFloats([9])) }] }),
    });
    expect(anonymous.status).toBe(401);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits + 1);
  });

  it('the gRPC door uses it too, echoing each request\'s own id', async () => {
    const key = await createTestKey({ scopes: ['inference'], tenantLimits: LIMITS, keyLimits: LIMITS });
    type Answer = { id: string; raw_output_contents: Buffer[] };
    const hits = await metric('modelgate_response_cache_hits_total', 'fashion-cnn');
    const first = await grpc.call<Answer>('ModelInfer', rawInfer([40, 41], 'fashion-cnn', 'g-1'), key.key);
    const second = await grpc.call<Answer>('ModelInfer', rawInfer([40, 41], 'fashion-cnn', 'g-2'), key.key);
    expect(first.ok && second.ok).toBe(true);
    expect(second.response?.id).toBe('g-2');
    expect(Buffer.compare(second.response!.raw_output_contents[0]!, first.response!.raw_output_contents[0]!)).toBe(0);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits + 1);
    const rows = await records(key.tenantId, 'fashion-cnn', 2);
    // 2 items: 2 units; a hit ceil(2 × 0.25) = 1.
    expect(rows.map((r) => [r.computeUnits, r.cacheHit])).toEqual([
      [2, false],
      [1, true],
    ]);
  });

  it('a hit is still rate limited: past the key\'s requests per minute it is refused and recorded so', async () => {
    const key = await createTestKey({ scopes: ['inference'], tenantLimits: LIMITS, keyLimits: { requestsPerMinute: 2, computeUnitsPerMinute: 1000 } });
    const headers = authHeaders(key.key);
    const batch = imageTensor([50]);
    await inferGql(headers, 'fashion-cnn', [batch]);
    await inferGql(headers, 'fashion-cnn', [batch]);
    const hits = await metric('modelgate_response_cache_hits_total', 'fashion-cnn');
    const refused = await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [batch] } }, headers);
    expect(refused.body.errors?.[0]?.extensions?.['code']).toBe('RATE_LIMITED');
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits);
    const rows = await records(key.tenantId, 'fashion-cnn', 3);
    expect(rows.map((r) => [r.status, r.computeUnits, r.cacheHit])).toEqual([
      ['OK', 1, false],
      ['OK', 1, true],
      ['RATE_LIMITED', 0, false],
    ]);
  });

  it("another tenant's identical request is a miss, and so is a different input", async () => {
    const batch = imageTensor([20]);
    await inferGql(tenantA.headers, 'fashion-cnn', [batch]);
    const hits = await metric('modelgate_response_cache_hits_total', 'fashion-cnn');
    const misses = await metric('modelgate_response_cache_misses_total', 'fashion-cnn');
    await inferGql(tenantB.headers, 'fashion-cnn', [batch]);
    await inferGql(tenantA.headers, 'fashion-cnn', [imageTensor([21])]);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits);
    expect(await metric('modelgate_response_cache_misses_total', 'fashion-cnn')).toBe(misses + 2);
    const rows = await records(tenantB.tenantId, 'fashion-cnn', 1);
    expect(rows.map((r) => [r.computeUnits, r.cacheHit])).toEqual([[1, false]]);
  });

  it('a model without the opt-in never caches', async () => {
    const batch = imageTensor([3]);
    const before = await metric('modelgate_response_cache_misses_total', 'fashion-lstm');
    await inferGql(tenantA.headers, 'fashion-lstm', [batch]);
    await inferGql(tenantA.headers, 'fashion-lstm', [batch]);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-lstm')).toBe(0);
    expect(await metric('modelgate_response_cache_misses_total', 'fashion-lstm')).toBe(before);
    const rows = await records(tenantA.tenantId, 'fashion-lstm', 2);
    expect(rows.map((r) => [r.computeUnits, r.cacheHit])).toEqual([
      [1, false],
      [1, false],
    ]);
  });

  it("a reload drops the model's answers: the next identical request runs again", async () => {
    const batch = imageTensor([30]);
    await inferGql(tenantA.headers, 'fashion-cnn', [batch]);
    const hits = await metric('modelgate_response_cache_hits_total', 'fashion-cnn');
    await inferGql(tenantA.headers, 'fashion-cnn', [batch]);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits + 1);

    const reloaded = await graphql<{ reloadModel: { status: string } }>(gw.url, 'mutation { reloadModel(name: "fashion-cnn") { status } }', {}, tenantA.headers);
    expect(reloaded.body.data?.reloadModel.status).toBe('READY');
    expect(await metric('modelgate_response_cache_entries')).toBe(0);
    expect(await metric('modelgate_response_cache_invalidations_total', 'fashion-cnn')).toBeGreaterThan(0);

    const misses = await metric('modelgate_response_cache_misses_total', 'fashion-cnn');
    await inferGql(tenantA.headers, 'fashion-cnn', [batch]);
    expect(await metric('modelgate_response_cache_hits_total', 'fashion-cnn')).toBe(hits + 1);
    expect(await metric('modelgate_response_cache_misses_total', 'fashion-cnn')).toBe(misses + 1);
  });
});
