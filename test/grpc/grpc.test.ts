/**
 * The Open Inference Protocol over gRPC, through the production build
 * (`node dist/main.js`, NODE_ENV=production): every served RPC's happy path,
 * answers equal to REST's bit for bit, the error contract's gRPC statuses,
 * one limit shared with REST, and one usage record per call.
 */
import { Pool } from 'pg';
import { status } from '@grpc/grpc-js';
import { ProductionGateway, productionEnv } from '../harness';
import { freePort } from '../helpers/capture';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { binaryInfer, oip } from '../oip/helpers';
import { metadataValue, OipGrpcClient, rawInfer, typedInfer } from './client';

let gateway: ProductionGateway;
let client: OipGrpcClient;
let pool: Pool;

beforeAll(async () => {
  const grpcPort = await freePort();
  // A small body bound so an oversized message is cheap to send.
  gateway = await ProductionGateway.start({ ...productionEnv(), GRPC_PORT: String(grpcPort), BODY_LIMIT_BYTES: '1048576' });
  client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
  pool = new Pool({ connectionString: testEnv.databaseUrl, max: 2 });
}, 60_000);

afterAll(async () => {
  client?.close();
  await gateway?.stop();
  await pool?.end();
  await closeTestKeys();
});

/** Usage records of a tenant by status, once `expected` records have been written (the usage log commits in groups). */
async function recordsOf(tenantId: string, expected: number): Promise<Record<string, number>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const rows = await pool.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM "UsageRecord" WHERE "tenantId" = $1 GROUP BY status', [tenantId]);
    const out = Object.fromEntries(rows.rows.map((r) => [r.status, Number(r.n)]));
    const total = Object.values(out).reduce((a, b) => a + b, 0);
    if (total >= expected || Date.now() > deadline) return out;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('gRPC door: happy path per RPC', () => {
  it('answers the server RPCs and the health service without a key', async () => {
    expect((await client.call('ServerLive', {})).response).toEqual({ live: true });
    expect((await client.call('ServerReady', {})).response).toEqual({ ready: true });
    const meta = await client.call<{ name: string; version: string; extensions: string[] }>('ServerMetadata', {});
    expect(meta.response?.name).toBe('modelgate');
    expect(meta.response?.extensions).toEqual(['model_configuration', 'statistics', 'model_repository']);
    expect((await client.call('Check', { service: '' }, null, { service: 'health' })).response).toEqual({ status: 'SERVING' });
    expect((await client.call('Check', { service: 'inference.GRPCInferenceService' }, null, { service: 'health' })).response).toEqual({ status: 'SERVING' });
    expect((await client.call('Check', { service: 'nope' }, null, { service: 'health' })).status.code).toBe(status.NOT_FOUND);
  });

  it('answers the model RPCs with a key', async () => {
    const { key } = await createTestKey({ scopes: ['inference'], allowedModels: ['fashion-cnn'] });
    expect((await client.call('ModelReady', { name: 'fashion-cnn' }, key)).response).toEqual({ ready: true });
    const meta = await client.call<{ name: string; platform: string; inputs: { name: string; datatype: string; shape: string[] }[] }>('ModelMetadata', { name: 'fashion-cnn' }, key);
    expect(meta.response?.platform).toBe('onnxruntime_onnx');
    expect(meta.response?.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: ['-1', '1', '28', '28'] }]);
    const config = await client.call<{ config: { name: string; max_batch_size: number; input: { data_type: string; dims: string[] }[]; dynamic_batching: { preferred_batch_size: number[] } } }>(
      'ModelConfig',
      { name: 'fashion-cnn' },
      key,
    );
    expect(config.response?.config.name).toBe('fashion-cnn');
    expect(config.response?.config.max_batch_size).toBe(64);
    expect(config.response?.config.input[0]).toMatchObject({ data_type: 'TYPE_FP32', dims: ['1', '28', '28'] });
    expect(config.response?.config.dynamic_batching.preferred_batch_size).toEqual([32, 64]);
    // The key sees only the model its allowlist names.
    const index = await client.call<{ models: { name: string; state: string }[] }>('RepositoryIndex', {}, key);
    expect(new Set(index.response?.models.map((m) => m.name))).toEqual(new Set(['fashion-cnn']));
    expect(index.response?.models.every((m) => m.state === 'READY')).toBe(true);
    // Statistics count every tenant's traffic: admin keys only (README, "Who may read model statistics").
    const denied = await client.call('ModelStatistics', { name: '' }, key);
    expect([denied.status.code, metadataValue(denied.status, 'modelgate-code')]).toEqual([status.PERMISSION_DENIED, 'FORBIDDEN']);
    const admin = await createTestKey({ scopes: ['admin'], allowedModels: ['fashion-cnn'] });
    const stats = await client.call<{ model_stats: { name: string; inference_stats: { success: { count: string } } }[] }>('ModelStatistics', { name: '' }, admin.key);
    expect(stats.response?.model_stats.map((s) => s.name)).toEqual(['fashion-cnn']);
  });

  it('infers with raw and typed contents, the answer equal bit for bit to REST binary for the same input', async () => {
    const { key } = await createTestKey({ scopes: ['inference'] });
    const images = [0, 1, 2, 3, 4];
    const raw = await client.call<{ model_name: string; model_version: string; id: string; outputs: { name: string; datatype: string; shape: string[] }[]; raw_output_contents: Buffer[] }>(
      'ModelInfer',
      rawInfer(images, 'fashion-cnn', 'req-1'),
      key,
    );
    expect(raw.status.details).toBe('OK');
    expect(raw.response?.model_name).toBe('fashion-cnn');
    expect(raw.response?.id).toBe('req-1');
    expect(raw.response?.outputs).toMatchObject([{ name: 'probabilities', datatype: 'FP32', shape: ['5', '10'] }]);
    expect(raw.response?.raw_output_contents).toHaveLength(1);
    expect(raw.response?.raw_output_contents[0]).toHaveLength(5 * 10 * 4);
    // The RateLimit fields travel as trailing metadata, as HTTP's headers.
    expect(metadataValue(raw.status, 'ratelimit')).toMatch(/"key_requests"|"tenant_requests"|r=/);

    const typed = await client.call<{ raw_output_contents: Buffer[] }>('ModelInfer', typedInfer(images), key);
    expect(Buffer.compare(typed.response!.raw_output_contents[0]!, raw.response!.raw_output_contents[0]!)).toBe(0);

    const { body, headers } = binaryInfer(images, { binaryOutput: true });
    const rest = await oip(`${gateway.url}/v2/models/fashion-cnn/infer`, { body, headers: { ...headers, ...authHeaders(key) } });
    expect(rest.status).toBe(200);
    expect(Buffer.compare(rest.binary, raw.response!.raw_output_contents[0]!)).toBe(0);
  });

  it('answers every request of a stream on its own, refusals as error_message without ending the stream', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'] });
    const answers = await stream(key, [rawInfer([0], 'fashion-cnn', 'a'), rawInfer([1, 2], 'fashion-cnn', 'b'), { ...rawInfer([3]), model_name: 'no-such-model', id: 'c' }, rawInfer([4], 'fashion-cnn', 'd')]);
    expect(answers.status.code).toBe(status.OK);
    const byId = new Map(answers.messages.map((m) => [m.infer_response.id, m]));
    expect([...byId.keys()].sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(byId.get('a')?.error_message).toBe('');
    expect(byId.get('b')?.infer_response.raw_output_contents[0]).toHaveLength(2 * 10 * 4);
    expect(byId.get('c')?.error_message).toMatch(/^NOT_FOUND: /);
    expect(await recordsOf(tenantId, 4)).toEqual({ OK: 3, BAD_INPUT: 1 });
  });
});

interface StreamMessage {
  error_message: string;
  infer_response: { id: string; raw_output_contents: Buffer[] };
}

/** Sends the requests on one ModelStreamInfer stream, half-closes, and collects every answer and the final status. */
function stream(key: string, requests: Record<string, unknown>[]): Promise<{ messages: StreamMessage[]; status: { code: number; details: string } }> {
  const { Metadata } = jest.requireActual<typeof import('@grpc/grpc-js')>('@grpc/grpc-js');
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  const call = (client.inference as unknown as { ModelStreamInfer(m: unknown): NodeJS.EventEmitter & { write(m: unknown): void; end(): void } }).ModelStreamInfer(metadata);
  const messages: StreamMessage[] = [];
  return new Promise((resolve) => {
    call.on('data', (m: StreamMessage) => messages.push(m));
    call.on('error', () => undefined);
    call.on('status', (s: { code: number; details: string }) => setImmediate(() => resolve({ messages, status: s })));
    for (const r of requests) call.write(r);
    call.end();
  });
}

describe('gRPC door: the error contract', () => {
  it('refuses a missing or unknown key with UNAUTHENTICATED and a key without the scope or model with PERMISSION_DENIED', async () => {
    expect((await client.call('ModelInfer', rawInfer([0]), null)).status.code).toBe(status.UNAUTHENTICATED);
    expect((await client.call('ModelInfer', rawInfer([0]), 'mg_live_notakey')).status.code).toBe(status.UNAUTHENTICATED);
    expect((await client.call('ModelMetadata', { name: 'fashion-cnn' }, null)).status.code).toBe(status.UNAUTHENTICATED);
    const reader = await createTestKey({ scopes: ['usage:read'] });
    const denied = await client.call('ModelInfer', rawInfer([0]), reader.key);
    expect(denied.status.code).toBe(status.PERMISSION_DENIED);
    expect(metadataValue(denied.status, 'modelgate-code')).toBe('FORBIDDEN');
    const other = await createTestKey({ scopes: ['inference'], allowedModels: ['fashion-lstm'] });
    expect((await client.call('ModelInfer', rawInfer([0]), other.key)).status.code).toBe(status.PERMISSION_DENIED);
    expect((await client.call('ModelConfig', { name: 'fashion-cnn' }, other.key)).status.code).toBe(status.PERMISSION_DENIED);
  });

  it('answers NOT_FOUND for an unknown model and INVALID_ARGUMENT for malformed tensors, each recorded', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'] });
    expect((await client.call('ModelInfer', rawInfer([0], 'no-such-model'), key)).status.code).toBe(status.NOT_FOUND);
    const unknown = await client.call('ModelMetadata', { name: 'no-such-model' }, key, { metadata: { 'x-request-id': 'grpc-unknown-1' } });
    expect(unknown.status.code).toBe(status.NOT_FOUND);
    expect(metadataValue(unknown.status, 'x-request-id')).toBe('grpc-unknown-1');
    // A key-shaped id is never taken (ids/request-id.ts), as over HTTP: the gRPC door used to echo and store it.
    const keyShaped = await client.call('ModelMetadata', { name: 'no-such-model' }, key, { metadata: { 'x-request-id': 'mg_live_AbC4dE5fGh' } });
    expect(metadataValue(keyShaped.status, 'x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(metadataValue(unknown.status, 'modelgate-code')).toBe('NOT_FOUND');
    // What is not served is UNIMPLEMENTED, not silently answered.
    expect((await client.call('SystemSharedMemoryStatus', {}, key)).status.code).toBe(status.UNIMPLEMENTED);

    const short = rawInfer([0, 1]);
    (short['raw_input_contents'] as Buffer[])[0] = (short['raw_input_contents'] as Buffer[])[0]!.subarray(4);
    const shortAnswer = await client.call('ModelInfer', short, key);
    expect(shortAnswer.status.code).toBe(status.INVALID_ARGUMENT);
    expect(shortAnswer.status.details).toMatch(/raw_input_contents has 6268 bytes; shape × FP32 takes 6272/);

    const unknownType = rawInfer([0]);
    (unknownType['inputs'] as { datatype: string }[])[0]!.datatype = 'FP8';
    const unknownAnswer = await client.call('ModelInfer', unknownType, key);
    expect(unknownAnswer.status.code).toBe(status.INVALID_ARGUMENT);
    expect(unknownAnswer.status.details).toMatch(/not an Open Inference Protocol datatype/);

    // Served datatypes other than the model's are refused by the engine, naming both (BYTES too).
    const uint16 = { model_name: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'UINT16', shape: ['1', '1', '28', '28'], contents: { uint_contents: Array<number>(784).fill(1) } }] };
    const uint16Answer = await client.call('ModelInfer', uint16, key);
    expect([uint16Answer.status.code, uint16Answer.status.details]).toEqual([status.INVALID_ARGUMENT, 'input "image" is FP32, got UINT16']);
    const bytesType = rawInfer([0]);
    (bytesType['inputs'] as { datatype: string }[])[0]!.datatype = 'BYTES';
    const bytesAnswer = await client.call('ModelInfer', bytesType, key);
    expect(bytesAnswer.status.code).toBe(status.INVALID_ARGUMENT);
    expect(bytesAnswer.status.details).toBe('input "image" is FP32, got BYTES');

    const overflow = rawInfer([0]);
    (overflow['inputs'] as { shape: string[] }[])[0]!.shape = ['4294967296', '4294967296', '28', '28'];
    const overflowAnswer = await client.call('ModelInfer', overflow, key);
    expect(overflowAnswer.status.code).toBe(status.INVALID_ARGUMENT);
    expect(overflowAnswer.status.details).toMatch(/overflows/);

    const typedWrong = typedInfer([0]);
    (typedWrong['inputs'] as { contents: Record<string, number[]> }[])[0]!.contents = { int_contents: [1, 2, 3] };
    expect((await client.call('ModelInfer', typedWrong, key)).status.code).toBe(status.INVALID_ARGUMENT);

    // One record per inference call (1 NOT_FOUND, 6 BAD_USER_INPUT, all BAD_INPUT); metadata calls record nothing, as on REST.
    expect(await recordsOf(tenantId, 7)).toEqual({ BAD_INPUT: 7 });
  });

  it('refuses a message over the body bound with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const { key } = await createTestKey({ scopes: ['inference'] });
    const big = rawInfer([0]);
    (big['raw_input_contents'] as Buffer[])[0] = Buffer.alloc(2 * 1024 * 1024);
    const answer = await client.call('ModelInfer', big, key);
    expect(answer.status.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await client.call('ModelInfer', rawInfer([0]), key)).ok).toBe(true);
  });

  it('shares one request limit with REST: refusals are RESOURCE_EXHAUSTED with the RateLimit fields and a retry hint', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 4 } });
    const { body, headers } = binaryInfer([0]);
    const restCall = () => oip(`${gateway.url}/v2/models/fashion-cnn/infer`, { body, headers: { ...headers, ...authHeaders(key) } });
    expect((await restCall()).status).toBe(200);
    expect((await client.call('ModelInfer', rawInfer([0]), key)).ok).toBe(true);
    expect((await restCall()).status).toBe(200);
    expect((await client.call('ModelInfer', rawInfer([0]), key)).ok).toBe(true);
    // Four used across both doors: the fifth is refused on either.
    const refused = await client.call('ModelInfer', rawInfer([0]), key);
    expect(refused.status.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(metadataValue(refused.status, 'modelgate-code')).toBe('RATE_LIMITED');
    expect(metadataValue(refused.status, 'ratelimit')).toMatch(/"key_requests";r=0/);
    expect(Number(metadataValue(refused.status, 'retry-after'))).toBeGreaterThan(0);
    expect((await restCall()).status).toBe(429);
    expect(await recordsOf(tenantId, 6)).toEqual({ OK: 4, RATE_LIMITED: 2 });
    // Each record names the door it came through (issue #24 item 2).
    const doors = await pool.query<{ protocol: string; status: string; n: string }>(
      'SELECT protocol::text, status::text, count(*) AS n FROM "UsageRecord" WHERE "tenantId" = $1 GROUP BY 1, 2 ORDER BY 1, 2',
      [tenantId],
    );
    expect(doors.rows.map((r) => `${r.protocol} ${r.status} ${r.n}`)).toEqual(['GRPC OK 2', 'GRPC RATE_LIMITED 1', 'REST OK 2', 'REST RATE_LIMITED 1']);
  });
});
