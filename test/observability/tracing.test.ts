/**
 * OpenTelemetry tracing of the production build (`node dist/main.js`,
 * NODE_ENV=production) against an OTLP/HTTP receiver run by the test. The
 * batch delay is set far beyond the test, so nothing is exported while the
 * gateway runs: every span the receiver holds was sent by the SIGTERM
 * shutdown's flush. A second gateway has no exporter (OTEL_TRACES_EXPORTER=none,
 * its endpoint pointing at a second receiver) and must send nothing while
 * still continuing and answering `traceparent`.
 */
import { randomBytes } from 'node:crypto';
import { ProductionGateway, productionEnv, type HttpResult, type GraphQLBody, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { jsonInfer } from '../oip/helpers';
import { OtlpReceiver, type ReceivedSpan } from './otlp-receiver';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const INFER = 'mutation($input: InferInput!) { infer(input: $input) { modelName batchSize } }';
const zeros = Buffer.alloc(784 * 4).toString('base64');
const image = (shape: number[]) => ({ input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape, dataBase64: zeros }] } });
const SPAN_KIND_SERVER = 2;
const STATUS_ERROR = 2;
const STEPS = ['authenticate', 'admit', 'validate', 'queue', 'compute', 'record'];

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** An incoming trace context as a client's own (sampled) span would send it. */
function incoming(): { traceId: string; parentId: string; headers: Record<string, string> } {
  const traceId = hex(16);
  const parentId = hex(8);
  return { traceId, parentId, headers: { traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'client=7' } };
}

/** The span id the response's traceparent names, after checking its trace id and flags. */
function answeredSpanId(res: HttpResult<unknown>, traceId: string, flags: string): string {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(res.headers.get('traceparent') ?? '');
  expect(match?.[1]).toBe(traceId);
  expect(match?.[3]).toBe(flags);
  return match![2]!;
}

function requestLogLine(gw: ProductionGateway, res: HttpResult<unknown>): Record<string, unknown> | undefined {
  const requestId = res.headers.get('x-request-id');
  return gw.logLines().find((l) => l['msg'] === 'request' && l['requestId'] === requestId);
}

interface Sent {
  traceId: string;
  parentId: string;
  res: HttpResult<unknown>;
}

describe('tracing of the production build', () => {
  let receiver: OtlpReceiver;
  let silentReceiver: OtlpReceiver;
  let gw: ProductionGateway;
  let untraced: ProductionGateway;
  let key: string;
  const sent: Record<string, Sent> = {};
  let rootRes: HttpResult<unknown>;
  let exportedBeforeStop = -1;
  let exit: { code: number | null };

  beforeAll(async () => {
    [receiver, silentReceiver] = await Promise.all([OtlpReceiver.start(), OtlpReceiver.start()]);
    key = (await createTestKey({ scopes: ['inference'] })).key;
    const limited = (await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 1 } })).key;
    const common = { LOG_LEVEL: 'debug', OTEL_SERVICE_NAME: 'modelgate-test', SHUTDOWN_READINESS_GRACE_MS: '0' };
    [gw, untraced] = await Promise.all([
      ProductionGateway.start({ ...productionEnv(), ...common, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '600000' }),
      ProductionGateway.start({ ...productionEnv(), ...common, OTEL_EXPORTER_OTLP_ENDPOINT: silentReceiver.endpoint, OTEL_TRACES_EXPORTER: 'none' }),
    ]);

    const send = async (name: string, call: (headers: Record<string, string>) => Promise<HttpResult<unknown>>) => {
      const { traceId, parentId, headers } = incoming();
      sent[name] = { traceId, parentId, res: await call(headers) };
    };
    await send('graphql', (h) => gw.graphql(INFER, image([1, 1, 28, 28]), { ...authHeaders(key), ...h }));
    await send('oip', (h) => gw.request('POST', '/v2/models/fashion-cnn/infer', { headers: { ...authHeaders(key), 'content-type': 'application/json', ...h }, body: jsonInfer([0, 1]) }));
    await send('badInput', (h) => gw.graphql(INFER, image([1, 28, 28]), { ...authHeaders(key), ...h }));
    await send('badBody', (h) => gw.request('POST', '/v2/models/fashion-cnn/infer', { headers: { ...authHeaders(key), 'content-type': 'application/json', ...h }, body: '{"inputs": [' }));
    await send('allowed', (h) => gw.graphql(INFER, image([1, 1, 28, 28]), { ...authHeaders(limited), ...h }));
    await send('rateLimited', (h) => gw.request('POST', '/v2/models/fashion-cnn/infer', { headers: { ...authHeaders(limited), 'content-type': 'application/json', ...h }, body: jsonInfer([0]) }));
    await send('untraced', (h) => untraced.graphql(INFER, image([1, 1, 28, 28]), { ...authHeaders(key), ...h }));
    rootRes = await gw.graphql(INFER, image([1, 1, 28, 28]), authHeaders(key));

    exportedBeforeStop = receiver.spans.length;
    [exit] = await Promise.all([gw.stop(), untraced.stop()]);
  }, STARTUP_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await gw?.kill();
    await untraced?.kill();
    await receiver?.close();
    await silentReceiver?.close();
    await closeTestKeys();
  });

  function serverSpan(name: string): { server: ReceivedSpan; spans: ReceivedSpan[]; serverSpanId: string } {
    const { traceId, res } = sent[name]!;
    const serverSpanId = answeredSpanId(res, traceId, '01');
    const spans = receiver.trace(traceId);
    const server = spans.find((s) => s.spanId === serverSpanId);
    expect(server).toBeDefined();
    return { server: server!, spans, serverSpanId };
  }

  it('sends the pending spans when SIGTERM shuts the gateway down, and only then', () => {
    expect(exportedBeforeStop).toBe(0);
    expect(exit.code).toBe(0);
    expect(receiver.rejected).toEqual([]);
    expect(receiver.spans.length).toBeGreaterThan(20);
  });

  it.each([
    ['graphql', 'POST /graphql', 1],
    ['oip', 'POST /v2/models/:model/infer', 2],
  ])('continues an incoming traceparent over %s: one server span under it, the six steps under that', (name, spanName, items) => {
    const { parentId, res } = sent[name]!;
    expect(res.status).toBe(200);
    const { server, spans, serverSpanId } = serverSpan(name);
    expect(serverSpanId).not.toBe(parentId);
    expect(server).toMatchObject({ name: spanName, kind: SPAN_KIND_SERVER, parentSpanId: parentId, traceState: 'client=7' });
    expect(server.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.response.status_code': 200,
      'modelgate.model': 'fashion-cnn',
      'modelgate.model_version': '1',
      'modelgate.usage.status': 'OK',
      'modelgate.request_id': res.headers.get('x-request-id'),
    });
    expect(server.status.code ?? 0).toBe(0);
    expect(server.resource['service.name']).toBe('modelgate-test');

    const children = spans.filter((s) => s !== server);
    expect(children.map((s) => s.name).sort()).toEqual([...STEPS].sort());
    for (const child of children) {
      expect({ name: child.name, parent: child.parentSpanId }).toEqual({ name: child.name, parent: serverSpanId });
      expect(BigInt(child.endTimeUnixNano) >= BigInt(child.startTimeUnixNano)).toBe(true);
      expect(child.status.code ?? 0).toBe(0);
    }
    const compute = children.find((s) => s.name === 'compute')!;
    expect(compute.attributes).toMatchObject({
      'modelgate.model': 'fashion-cnn',
      'modelgate.model_version': '1',
      'modelgate.execution_provider': 'cpu',
      'modelgate.items': items,
    });
    expect(compute.attributes['modelgate.batch_size']).toBeGreaterThanOrEqual(items);
    expect(children.find((s) => s.name === 'queue')!.attributes['modelgate.batch_size']).toBe(compute.attributes['modelgate.batch_size']);
    expect(children.find((s) => s.name === 'admit')!.attributes).toMatchObject({ 'modelgate.limit.decision': 'allowed', 'modelgate.compute_units': items });
    // The key's display prefix at most, never the key.
    const prefix = String(children.find((s) => s.name === 'authenticate')!.attributes['modelgate.api_key_prefix']);
    expect(prefix).toBe(key.slice(0, prefix.length));
    expect(prefix.length).toBeLessThanOrEqual(16);
  });

  it('puts the trace and span id on the request log line, beside the request id', () => {
    for (const name of ['graphql', 'oip']) {
      const { traceId, res } = sent[name]!;
      const line = requestLogLine(gw, res);
      expect(line).toMatchObject({ trace_id: traceId, span_id: answeredSpanId(res, traceId, '01'), status: 200 });
    }
  });

  it('marks the step that refused a request failed with the public code', () => {
    const bad = serverSpan('badInput');
    expect(bad.server.attributes).toMatchObject({ 'error.type': 'BAD_USER_INPUT', 'modelgate.usage.status': 'BAD_INPUT' });
    const validate = bad.spans.find((s) => s.name === 'validate')!;
    expect(validate.status).toEqual({ code: STATUS_ERROR, message: 'BAD_USER_INPUT' });
    expect(validate.attributes['error.type']).toBe('BAD_USER_INPUT');
    expect(bad.spans.map((s) => s.name)).not.toContain('compute');

    // A body that does not parse is refused where the model would be looked up: a failed validate, then the one request it is charged.
    expect(sent['badBody']!.res.status).toBe(400);
    const unparsed = serverSpan('badBody');
    expect(unparsed.server.attributes).toMatchObject({ 'http.response.status_code': 400, 'error.type': 'BAD_USER_INPUT' });
    expect(unparsed.spans.map((s) => s.name).sort()).toEqual(['POST /v2/models/:model/infer', 'admit', 'authenticate', 'record', 'validate']);
    expect(unparsed.spans.find((s) => s.name === 'validate')!.status).toEqual({ code: STATUS_ERROR, message: 'BAD_USER_INPUT' });
    expect(unparsed.spans.find((s) => s.name === 'admit')!.attributes).toMatchObject({ 'modelgate.compute_units': 0, 'modelgate.limit.decision': 'allowed' });

    expect(sent['allowed']!.res.status).toBe(200);
    expect(sent['rateLimited']!.res.status).toBe(429);
    const limited = serverSpan('rateLimited');
    expect(limited.server.attributes).toMatchObject({ 'http.response.status_code': 429, 'error.type': 'RATE_LIMITED', 'modelgate.usage.status': 'RATE_LIMITED' });
    // A 4xx is the client's: the server span itself stays unset, as the HTTP conventions say.
    expect(limited.server.status.code ?? 0).toBe(0);
    const admit = limited.spans.find((s) => s.name === 'admit')!;
    expect(admit.status).toEqual({ code: STATUS_ERROR, message: 'RATE_LIMITED' });
    expect(admit.attributes).toMatchObject({ 'modelgate.limit.decision': 'limit', 'modelgate.limit.name': 'key_requests' });
    expect(limited.spans.map((s) => s.name).sort()).toEqual(['POST /v2/models/:model/infer', 'admit', 'authenticate', 'record']);
  });

  it('starts a new trace for a request without traceparent', () => {
    const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(rootRes.headers.get('traceparent') ?? '');
    expect(match).not.toBeNull();
    const server = receiver.trace(match![1]!).find((s) => s.spanId === match![2]);
    expect(server?.parentSpanId ?? '').toBe('');
    expect(receiver.trace(match![1]!)).toHaveLength(1 + STEPS.length);
  });

  it('never exports the API key', () => {
    for (const body of receiver.bodies) expect(body).not.toContain(key);
  });

  it('without an exporter sends nothing, yet continues and answers traceparent and logs the trace id', () => {
    const { traceId, parentId, res } = sent['untraced']!;
    expect((res as HttpResult<GraphQLBody>).body?.errors).toBeUndefined();
    // Not recorded here, so not sampled by this hop: flags 00, a span id of its own.
    const spanId = answeredSpanId(res, traceId, '00');
    expect(spanId).not.toBe(parentId);
    expect(requestLogLine(untraced, res)).toMatchObject({ trace_id: traceId, span_id: spanId });
    expect(silentReceiver.bodies).toEqual([]);
    expect(silentReceiver.rejected).toEqual([]);
  });
});
