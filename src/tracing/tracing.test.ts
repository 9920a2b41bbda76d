import net from 'node:net';
import { Writable } from 'node:stream';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { SpanStatusCode } from '@opentelemetry/api';
import { loadConfig } from '../config';
import { BadInputError } from '../errors';
import { createLogger } from '../log/logger';
import { createTracing, traceparentOfBinary } from './tracing';
import { isTracedRoute } from './http';

const log = createLogger({ level: 'silent', pretty: false });
const request = (headers: Record<string, string> = {}) => ({ method: 'POST', route: '/graphql', path: '/graphql', headers, requestId: 'r-1' });
const PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331';

/** Keeps its spans through shutdown (the SDK's own one clears them there). */
class KeepingExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function exporting(env: Record<string, string> = {}) {
  const exporter = new KeepingExporter();
  const config = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', ...env }).tracing;
  return { exporter, tracing: createTracing(config, log, { exporter }) };
}

describe('tracing', () => {
  it('continues the incoming trace with a span of its own and answers its traceparent', async () => {
    const { exporter, tracing } = exporting();
    const trace = tracing.startRequest(request({ traceparent: `${PARENT}-01`, tracestate: 'a=1' }));
    expect(trace.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(trace.spanId).not.toBe('b7ad6b7169203331');
    expect(trace.traceparent).toBe(`00-${trace.traceId}-${trace.spanId}-01`);
    trace.end(200);
    await tracing.shutdown();
    const [server] = exporter.getFinishedSpans();
    expect(server?.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(server?.spanContext().traceState?.get('a')).toBe('1');
  });

  it('ends a step span on return, resolve, throw and reject, failing it with the domain code only', async () => {
    const { exporter, tracing } = exporting();
    const trace = tracing.startRequest(request());
    expect(trace.step('validate', () => 7)).toBe(7);
    await expect(trace.step('admit', async () => 8)).resolves.toBe(8);
    expect(() => trace.step('validate', () => {
      throw new BadInputError('shape [1] is not [1,28,28] for mg_live_secret', 'inputs');
    })).toThrow(BadInputError);
    await expect(trace.step('record', () => Promise.reject(new Error('disk full at /var/x')))).rejects.toThrow('disk full');
    trace.end(500);
    await tracing.shutdown();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.status.code, s.status.message ?? null])).toEqual([
      ['validate', SpanStatusCode.UNSET, null],
      ['admit', SpanStatusCode.UNSET, null],
      ['validate', SpanStatusCode.ERROR, 'BAD_USER_INPUT'],
      ['record', SpanStatusCode.ERROR, 'INTERNAL'],
      ['POST /graphql', SpanStatusCode.ERROR, '500'],
    ]);
    // Messages (client input, paths) stay out of spans.
    expect(JSON.stringify(spans.map((s) => [s.attributes, s.events]))).not.toMatch(/secret|disk full/);
  });

  it('records an already measured step with the times given (performance.now milliseconds)', async () => {
    const { exporter, tracing } = exporting();
    const trace = tracing.startRequest(request());
    const start = performance.now() - 40;
    trace.recorded('queue', start, start + 25, { 'modelgate.batch_size': 4 });
    trace.end(200);
    await tracing.shutdown();
    const queue = exporter.getFinishedSpans().find((s) => s.name === 'queue')!;
    const ms = (queue.endTime[0] - queue.startTime[0]) * 1e3 + (queue.endTime[1] - queue.startTime[1]) / 1e6;
    expect(ms).toBeCloseTo(25, 3);
    expect(queue.parentSpanContext?.spanId).toBe(trace.spanId);
  });

  it('without an exporter records nothing and runs steps as plain calls', () => {
    const tracing = createTracing(loadConfig({}).tracing, log);
    expect(tracing.exporting).toBe(false);
    const trace = tracing.startRequest(request({ traceparent: `${PARENT}-01` }));
    expect(trace.recording).toBe(false);
    expect(trace.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(trace.traceparent).toMatch(new RegExp(`^00-${trace.traceId}-[0-9a-f]{16}-00$`));
    let ran = 0;
    trace.step('admit', (span) => {
      span.fail('RATE_LIMITED');
      ran += 1;
    });
    expect(ran).toBe(1);
  });

  it('without an exporter starts a new trace for a missing or invalid parent, and continues gRPC\'s binary context', () => {
    const tracing = createTracing(loadConfig({}).tracing, log);
    const fresh = [tracing.startRequest(request()), tracing.startRequest(request({ traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' })), tracing.startRequest(request({ traceparent: 'nonsense' }))];
    for (const t of fresh) {
      expect(t.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(t.traceId).not.toBe('00000000000000000000000000000000');
      expect(t.traceparent).toBe(`00-${t.traceId}-${t.spanId}-00`);
    }
    expect(new Set(fresh.map((t) => t.traceId)).size).toBe(3);
    expect(new Set(fresh.map((t) => t.spanId)).size).toBe(3);
    const bin = Buffer.concat([Buffer.from([0, 0]), Buffer.from('0af7651916cd43dd8448eb211c80319c', 'hex'), Buffer.from([1]), Buffer.from('b7ad6b7169203331', 'hex'), Buffer.from([2, 1])]);
    const rpc = tracing.startRpc({ service: 'inference.GRPCInferenceService', method: 'ModelInfer', headers: {}, traceBin: bin, requestId: 'r-2' });
    expect(rpc.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(rpc.spanId).not.toBe('b7ad6b7169203331');
    expect(rpc.recording).toBe(false);
  });

  it('follows the sampler: parent-based keeps an unsampled parent unsampled, ratio 0 samples no new trace', async () => {
    const { exporter, tracing } = exporting({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' });
    const unsampled = tracing.startRequest(request({ traceparent: `${PARENT}-00` }));
    const fresh = tracing.startRequest(request());
    const sampled = tracing.startRequest(request({ traceparent: `${PARENT}-01` }));
    expect([unsampled.recording, fresh.recording, sampled.recording]).toEqual([false, false, true]);
    for (const t of [unsampled, fresh, sampled]) t.end(200);
    await tracing.shutdown();
    expect(exporter.getFinishedSpans()).toHaveLength(1);
  });

  it('ignores a malformed traceparent and starts a new trace', () => {
    const { tracing } = exporting();
    const trace = tracing.startRequest(request({ traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' }));
    expect(trace.traceId).not.toBe('00000000000000000000000000000000');
    expect(trace.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('with the collector unreachable: requests unaffected, the failure logged once, shutdown completes', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const config = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: '20', OTEL_EXPORTER_OTLP_TIMEOUT: '300' }).tracing;
    const tracing = createTracing(config, createLogger({ level: 'info', pretty: false, destination: sink }));
    for (let i = 0; i < 3; i += 1) {
      const trace = tracing.startRequest(request());
      expect(trace.step('validate', () => i)).toBe(i);
      trace.end(200);
      // Between requests, so each one's batch is attempted (and fails) on its own.
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    await tracing.shutdown();
    const failures = lines.filter((l) => l.includes('trace export failed'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain('ECONNREFUSED');
  });

  it('traces the inference front doors only', () => {
    expect(['/graphql', '/v2', '/v2/models/:model/infer'].map(isTracedRoute)).toEqual([true, true, true]);
    expect(['/healthz', '/readyz', '/metrics', '/console', '/v2x', undefined].map(isTracedRoute)).toEqual([false, false, false, false, false, false]);
  });

  it('reads gRPC\'s binary trace context (grpc-trace-bin) as a traceparent, and nothing from one that does not read', () => {
    const traceId = Buffer.from('0af7651916cd43dd8448eb211c80319c', 'hex');
    const spanId = Buffer.from('b7ad6b7169203331', 'hex');
    const bin = (...parts: Buffer[]) => Buffer.concat(parts);
    expect(traceparentOfBinary(bin(Buffer.from([0, 0]), traceId, Buffer.from([1]), spanId, Buffer.from([2, 1])))).toEqual({ traceparent: `${PARENT}-01` });
    expect(traceparentOfBinary(bin(Buffer.from([0, 0]), traceId, Buffer.from([1]), spanId))).toEqual({ traceparent: `${PARENT}-00` });
    expect(traceparentOfBinary(bin(Buffer.from([1, 0]), traceId, Buffer.from([1]), spanId))).toEqual({});
    expect(traceparentOfBinary(bin(Buffer.from([0, 0]), traceId.subarray(0, 8)))).toEqual({});
    expect(traceparentOfBinary(Buffer.alloc(0))).toEqual({});
  });

  it('continues a gRPC call\'s grpc-trace-bin when it has no traceparent, and ends it with the gRPC status', async () => {
    const { exporter, tracing } = exporting();
    const bin = Buffer.concat([Buffer.from([0, 0]), Buffer.from('0af7651916cd43dd8448eb211c80319c', 'hex'), Buffer.from([1]), Buffer.from('b7ad6b7169203331', 'hex'), Buffer.from([2, 1])]);
    const trace = tracing.startRpc({ service: 'inference.GRPCInferenceService', method: 'ModelInfer', headers: {}, traceBin: bin, requestId: 'r-2' });
    expect(trace.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    trace.end(14);
    await tracing.shutdown();
    const [span] = exporter.getFinishedSpans();
    expect(span?.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(span?.attributes).toMatchObject({ 'rpc.system.name': 'grpc', 'rpc.method': 'inference.GRPCInferenceService/ModelInfer', 'rpc.status_code': 'UNAVAILABLE' });
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'UNAVAILABLE' });
  });
});
