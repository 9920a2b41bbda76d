/**
 * Hostile gRPC input through the production build (issue #24, Tests): the
 * cases test/grpc/grpc.test.ts does not cover already (there: an oversized
 * unary message, raw bytes short of shape × datatype, an unknown datatype, a
 * 2^64-element shape; grpc-lifecycle.test.ts: a 1 ms deadline). Each gets
 * its status, every inference call is charged and recorded like any bad
 * input, and the gateway keeps serving.
 */
import { Pool } from 'pg';
import { credentials, Metadata, status, type Client, type StatusObject } from '@grpc/grpc-js';
import { ProductionGateway, productionEnv } from '../harness';
import { freePort } from '../helpers/capture';
import { closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { OipGrpcClient, rawInfer } from './client';

let gateway: ProductionGateway;
let client: OipGrpcClient;
let pool: Pool;
let address: string;

beforeAll(async () => {
  const grpcPort = await freePort();
  gateway = await ProductionGateway.start({ ...productionEnv(), GRPC_PORT: String(grpcPort), BODY_LIMIT_BYTES: '1048576' });
  address = `127.0.0.1:${grpcPort}`;
  client = new OipGrpcClient(address);
  pool = new Pool({ connectionString: testEnv.databaseUrl, max: 2 });
}, 60_000);

afterAll(async () => {
  client?.close();
  await gateway?.stop();
  await pool?.end();
  await closeTestKeys();
});

async function recordsOf(tenantId: string, expected: number): Promise<Record<string, number>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const rows = await pool.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM "UsageRecord" WHERE "tenantId" = $1 GROUP BY status', [tenantId]);
    const out = Object.fromEntries(rows.rows.map((r) => [r.status, Number(r.n)]));
    if (Object.values(out).reduce((a, b) => a + b, 0) >= expected || Date.now() > deadline) return out;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A request with the first input changed by `edit`. */
function edited(edit: (input: Record<string, unknown>, request: Record<string, unknown>) => void): Record<string, unknown> {
  const request = rawInfer([0]);
  edit((request['inputs'] as Record<string, unknown>[])[0]!, request);
  return request;
}

describe('hostile gRPC input', () => {
  it('answers each malformed ModelInfer with INVALID_ARGUMENT naming the problem, records each, and keeps serving', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'] });
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['two raw entries for one input', edited((_, r) => (r['raw_input_contents'] as Buffer[]).push(Buffer.alloc(4))), /raw_input_contents has 2 entries for 1 inputs/],
      ['raw bytes longer than shape × datatype', edited((_, r) => ((r['raw_input_contents'] as Buffer[])[0] = Buffer.alloc(3137 * 2))), /raw_input_contents has 6274 bytes; shape × FP32 takes 3136/],
      ['a negative dimension', edited((i) => (i['shape'] = ['-1', '1', '28', '28'])), /must not be negative/],
      ['a product that overflows 2^53 through many dimensions', edited((i) => (i['shape'] = ['134217728', '134217728', '1', '1'])), /overflows/],
      ['a dimension past int64', edited((i) => (i['shape'] = ['99999999999999999999', '1', '28', '28'])), /out of range|whole numbers/],
      ['a lower-case datatype', edited((i) => (i['datatype'] = 'fp32')), /not an Open Inference Protocol datatype/],
      ['an empty datatype', edited((i) => (i['datatype'] = '')), /not an Open Inference Protocol datatype/],
      ['BYTES to a model that takes FP32', edited((i) => (i['datatype'] = 'BYTES')), /input "image" is FP32, got BYTES/],
      [
        'FP32 bytes sent as BYTES to the model that takes strings (not length-prefixed)',
        { model_name: 'word-language', inputs: [{ name: 'text', datatype: 'BYTES', shape: ['1', '1'] }], raw_input_contents: [(rawInfer([0])['raw_input_contents'] as Buffer[])[0]!] },
        /is not BYTES as the protocol sends them \(each element a 4-byte little-endian length, then its bytes\): 3132 bytes after the 1 elements/,
      ],
      ['BYTES contents whose count disagrees with the shape', { model_name: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'BYTES', shape: ['3'], contents: { bytes_contents: [Buffer.from('a')] } }] }, /bytes_contents has 1 values; the shape takes 3/],
      // (A uint64 past 2^64 cannot be sent: the client's protobuf encoder wraps it before it leaves.)
      [
        'UINT64 contents to an FP32 input',
        { model_name: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'UINT64', shape: ['1', '1', '28', '28'], contents: { uint64_contents: Array<string>(784).fill('18446744073709551615') } }] },
        /input "image" is FP32, got UINT64/,
      ],
      ['FP16 in typed contents', { model_name: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP16', shape: ['1'], contents: { fp32_contents: [1] } }] }, /FP16 tensors travel in raw_input_contents/],
      ['no inputs at all', { model_name: 'fashion-cnn', inputs: [] }, /at least one tensor/],
    ];
    const seen: Record<string, [string, boolean]> = {};
    for (const [name, request, message] of cases) {
      const answer = await client.call('ModelInfer', request, key);
      seen[name] = [status[answer.status.code], message.test(answer.status.details)];
      if (!message.test(answer.status.details)) process.stderr.write(`${name}: ${answer.status.details}\n`);
    }
    expect(seen).toEqual(Object.fromEntries(cases.map(([name]) => [name, ['INVALID_ARGUMENT', true]])));
    expect((await client.call('ModelInfer', rawInfer([0]), key)).ok).toBe(true);
    // One record per inference call: every refusal as BAD_INPUT, the last call served.
    expect(await recordsOf(tenantId, cases.length + 1)).toEqual({ BAD_INPUT: cases.length, OK: 1 });
  });

  it('refuses bytes that are no protobuf message, and a message over the bound inside a stream, without crashing', async () => {
    const { key } = await createTestKey({ scopes: ['inference'] });
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${key}`);
    // A raw client: the bytes go out as they are, not through a ModelInferRequest serializer.
    const raw = new (class extends (client.inference.constructor as unknown as new (a: string, c: ReturnType<typeof credentials.createInsecure>) => Client) {})(address, credentials.createInsecure());
    const garbage = await new Promise<StatusObject>((resolve) => {
      const call = raw.makeUnaryRequest(
        '/inference.GRPCInferenceService/ModelInfer',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]),
        metadata,
        () => undefined,
      );
      call.on('status', resolve);
    });
    raw.close();
    expect(garbage.code).not.toBe(status.OK);
    expect([status.INTERNAL, status.INVALID_ARGUMENT]).toContain(garbage.code);

    // A stream whose second message is over BODY_LIMIT_BYTES: the first is answered, the stream ends RESOURCE_EXHAUSTED.
    const stream = (client.inference as unknown as { ModelStreamInfer(m: Metadata): NodeJS.EventEmitter & { write(m: unknown): void; end(): void } }).ModelStreamInfer(metadata);
    const answered: string[] = [];
    const ended = new Promise<{ code: number }>((resolve) => {
      stream.on('data', (m: { infer_response: { id: string } }) => answered.push(m.infer_response.id));
      stream.on('error', () => undefined);
      stream.on('status', (s: { code: number }) => setImmediate(() => resolve(s)));
    });
    stream.write(rawInfer([0], 'fashion-cnn', 'small'));
    const big = rawInfer([0], 'fashion-cnn', 'big');
    (big['raw_input_contents'] as Buffer[])[0] = Buffer.alloc(2 * 1024 * 1024);
    stream.write(big);
    stream.end();
    expect((await ended).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(answered).not.toContain('big');

    // Still serving, unary and streams.
    expect((await client.call('ServerLive', {})).response).toEqual({ live: true });
    expect((await client.call('ModelInfer', rawInfer([1]), key)).ok).toBe(true);
  });
});
