/**
 * Tracing of the gRPC door on the production build, against the OTLP/HTTP
 * receiver of the tracing tests: a call's `traceparent` metadata (or, without
 * one, gRPC's binary `grpc-trace-bin`) is continued by one server span per
 * call, and per request of a ModelStreamInfer stream, with the pipeline's
 * step spans under it; the answer's trailing metadata names the span. As in
 * test/observability/tracing.test.ts the batch delay is set far beyond the
 * test, so every span the receiver holds was sent by the SIGTERM flush.
 */
import { randomBytes } from 'node:crypto';
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { ProductionGateway, productionEnv, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { freePort } from '../helpers/capture';
import { closeTestKeys, createTestKey } from '../helpers/auth';
import { OtlpReceiver, type ReceivedSpan } from '../observability/otlp-receiver';
import { metadataValue, OipGrpcClient, rawInfer } from './client';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const SPAN_KIND_SERVER = 2;
const STATUS_ERROR = 2;
const STEPS = ['authenticate', 'admit', 'validate', 'queue', 'compute', 'record'];
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** OpenCensus' binary trace context, as gRPC's own tracing sends it in `grpc-trace-bin`. */
function traceBin(traceId: string, spanId: string, sampled: boolean): Buffer {
  return Buffer.concat([Buffer.from([0, 0]), Buffer.from(traceId, 'hex'), Buffer.from([1]), Buffer.from(spanId, 'hex'), Buffer.from([2, sampled ? 1 : 0])]);
}

interface Sent {
  traceId: string;
  parentId: string;
  status: StatusObject;
}

let receiver: OtlpReceiver;
let gateway: ProductionGateway;
let client: OipGrpcClient;
let key: string;
const sent: Record<string, Sent> = {};
const streamed: { traceId: string; parentId: string; answers: number; code: number } = { traceId: '', parentId: '', answers: 0, code: -1 };
let exportedBeforeStop = -1;
let exitCode: number | null = null;

/** Two requests on one ModelStreamInfer stream opened with a `traceparent`. */
async function stream(traceId: string, parentId: string): Promise<{ answers: number; code: number }> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  metadata.set('traceparent', `00-${traceId}-${parentId}-01`);
  const call = (client.inference as unknown as { ModelStreamInfer(m: Metadata): NodeJS.EventEmitter & { write(m: unknown): void; end(): void } }).ModelStreamInfer(metadata);
  let answers = 0;
  call.on('data', () => (answers += 1));
  const ended = new Promise<number>((resolve) => call.on('status', (s: StatusObject) => resolve(s.code)));
  call.on('error', () => undefined);
  call.write(rawInfer([0], 'fashion-cnn', 'a'));
  call.write(rawInfer([1], 'fashion-cnn', 'b'));
  call.end();
  const code = await ended;
  return { answers, code };
}

beforeAll(async () => {
  receiver = await OtlpReceiver.start();
  key = (await createTestKey({ scopes: ['inference'] })).key;
  const grpcPort = await freePort();
  gateway = await ProductionGateway.start({
    ...productionEnv(),
    GRPC_PORT: String(grpcPort),
    OTEL_SERVICE_NAME: 'modelgate-test',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    SHUTDOWN_READINESS_GRACE_MS: '0',
  });
  client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);

  const send = async (name: string, request: Record<string, unknown>, context: (traceId: string, parentId: string) => Record<string, string | Buffer>) => {
    const traceId = hex(16);
    const parentId = hex(8);
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${key}`);
    for (const [k, v] of Object.entries(context(traceId, parentId))) metadata.set(k, v);
    const answer = await new Promise<StatusObject>((resolve) => {
      const fn = (client.inference as unknown as Record<string, (r: unknown, m: Metadata, cb: () => void) => { on(e: 'status', f: (s: StatusObject) => void): void }>)['ModelInfer']!;
      fn.call(client.inference, request, metadata, () => undefined).on('status', resolve);
    });
    sent[name] = { traceId, parentId, status: answer };
  };
  await send('traceparent', rawInfer([0, 1]), (t, p) => ({ traceparent: `00-${t}-${p}-01`, tracestate: 'client=7' }));
  await send('binary', rawInfer([2]), (t, p) => ({ 'grpc-trace-bin': traceBin(t, p, true) }));
  await send('badInput', { ...rawInfer([3]), raw_input_contents: [Buffer.alloc(12)] }, (t, p) => ({ traceparent: `00-${t}-${p}-01` }));
  streamed.traceId = hex(16);
  streamed.parentId = hex(8);
  Object.assign(streamed, await stream(streamed.traceId, streamed.parentId));

  exportedBeforeStop = receiver.spans.length;
  client.close();
  exitCode = (await gateway.stop()).code;
});

afterAll(async () => {
  client?.close();
  await gateway?.kill();
  await receiver?.close();
  await closeTestKeys();
});

/** The server span the call's trailing `traceparent` names (same trace, sampled), and the trace's spans. */
function serverSpan(name: string): { server: ReceivedSpan; spans: ReceivedSpan[] } {
  const { traceId, status: answer } = sent[name]!;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(metadataValue(answer, 'traceparent') ?? '');
  expect(match?.[1]).toBe(traceId);
  const spans = receiver.trace(traceId);
  const server = spans.find((s) => s.spanId === match![2]);
  expect(server).toBeDefined();
  return { server: server!, spans };
}

it('exports the spans at the SIGTERM flush', () => {
  expect({ exportedBeforeStop, exitCode, rejected: receiver.rejected }).toEqual({ exportedBeforeStop: 0, exitCode: 0, rejected: [] });
});

it.each([
  ['traceparent', 2],
  ['binary', 1],
])('continues the %s trace context: one server span under the caller, the six steps under it', (name, items) => {
  const { parentId, status: answer } = sent[name]!;
  expect(answer.code).toBe(status.OK);
  const { server, spans } = serverSpan(name);
  expect(server).toMatchObject({ name: 'inference.GRPCInferenceService/ModelInfer', kind: SPAN_KIND_SERVER, parentSpanId: parentId });
  if (name === 'traceparent') expect(server.traceState).toBe('client=7');
  expect(server.attributes).toMatchObject({
    'rpc.system.name': 'grpc',
    'rpc.method': 'inference.GRPCInferenceService/ModelInfer',
    'rpc.status_code': 'OK',
    'modelgate.model': 'fashion-cnn',
    'modelgate.usage.status': 'OK',
    'modelgate.request_id': metadataValue(answer, 'x-request-id'),
  });
  expect(server.status.code ?? 0).toBe(0);
  const children = spans.filter((s) => s !== server);
  expect(children.map((s) => s.name).sort()).toEqual([...STEPS].sort());
  for (const child of children) expect(child.parentSpanId).toBe(server.spanId);
  expect(children.find((s) => s.name === 'compute')!.attributes['modelgate.items']).toBe(items);
});

it('ends a refused call with its gRPC status: a client error fails the step, not the server span', () => {
  const { server, spans } = serverSpan('badInput');
  expect(sent['badInput']!.status.code).toBe(status.INVALID_ARGUMENT);
  expect(server.attributes).toMatchObject({ 'rpc.status_code': 'INVALID_ARGUMENT', 'modelgate.usage.status': 'BAD_INPUT' });
  expect(server.status.code ?? 0).toBe(0);
  expect(spans.find((s) => s.name === 'validate')?.status.code).toBe(STATUS_ERROR);
  expect(spans.map((s) => s.name)).not.toContain('compute');
});

it('gives each request of a stream its own server span under the stream\'s traceparent', () => {
  expect({ answers: streamed.answers, code: streamed.code }).toEqual({ answers: 2, code: status.OK });
  const spans = receiver.trace(streamed.traceId);
  const servers = spans.filter((s) => s.kind === SPAN_KIND_SERVER);
  expect(servers.map((s) => [s.name, s.parentSpanId, s.attributes['rpc.status_code']])).toEqual([
    ['inference.GRPCInferenceService/ModelStreamInfer', streamed.parentId, 'OK'],
    ['inference.GRPCInferenceService/ModelStreamInfer', streamed.parentId, 'OK'],
  ]);
  for (const server of servers) {
    expect(spans.filter((s) => s.parentSpanId === server.spanId).map((s) => s.name).sort()).toEqual([...STEPS].sort());
  }
});
