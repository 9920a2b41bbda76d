/**
 * OpenTelemetry set-up for one gateway process. Every traced HTTP request
 * gets a server span that continues an incoming W3C `traceparent`
 * (`tracestate` kept) and whose own `traceparent` goes back in the response.
 * With an OTLP endpoint configured, sampled spans are batched and exported
 * over OTLP/HTTP (JSON); without one a request gets ids only (no span, nothing
 * kept or sent: UnrecordedRequestTrace) and the request path skips every
 * child span.
 *
 * The provider is not registered globally: only the request path's own spans
 * are wanted, not whatever a library would emit through the global API.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, defaultTextMapGetter, isSpanContextValid, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator, setGlobalErrorHandler } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_PATH,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
import type { TraceSamplerName, TracingConfig } from '../config';
import { DomainError } from '../errors';
import type { Logger } from '../log/logger';
import { VERSION } from '../version';
import { NOOP_SPAN } from './noop';
import type { RequestTrace, StepName, StepSpan, TraceAttributes } from './types';

/** Export failures are logged at most this often (a collector outage would otherwise log per batch). */
const EXPORT_ERROR_LOG_INTERVAL_MS = 60_000;
/**
 * How long shutdown waits for the last export: an unreachable collector makes
 * the exporter retry until its timeout, and the process's shutdown is bounded.
 */
const SHUTDOWN_FLUSH_MAX_MS = 5_000;

export interface TracedRequest {
  method: string;
  /** The route template (`/v2/models/:model/infer`): low-cardinality span names. */
  route: string;
  path: string;
  headers: IncomingHttpHeaders;
  requestId: string;
}

/** One gRPC call (a unary RPC, or one request of a stream). */
export interface TracedRpc {
  /** The fully qualified service (`inference.GRPCInferenceService`). */
  service: string;
  method: string;
  /** The call's text metadata (`traceparent`, `tracestate`). */
  headers: Record<string, string>;
  /** The binary `grpc-trace-bin` metadata (OpenCensus' binary context), used when there is no `traceparent`. */
  traceBin?: Buffer;
  requestId: string;
}

export interface Tracing {
  /** Whether spans are exported (an OTLP endpoint is configured). */
  readonly exporting: boolean;
  startRequest(request: TracedRequest): RequestTrace;
  /** A gRPC call's server span, continuing its `traceparent` or `grpc-trace-bin`; end it with the gRPC status code. */
  startRpc(request: TracedRpc): RequestTrace;
  /** Exports every span still pending, then stops (graceful shutdown). */
  shutdown(): Promise<void>;
}

export function samplerFor(name: TraceSamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

export interface TracingOptions {
  /** Replaces the OTLP exporter (tests of the span shapes in process). */
  exporter?: SpanExporter;
}

export function createTracing(config: TracingConfig, log: Logger, options: TracingOptions = {}): Tracing {
  const exporter = options.exporter ?? (config.exporter ? new OTLPTraceExporter({ url: config.exporter.url, headers: config.exporter.headers, timeoutMillis: config.exporter.timeoutMs }) : null);
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: VERSION, 'process.pid': process.pid });
  // Nothing to export to: no provider at all. Requests get ids only (unrecorded below).
  const provider = exporter
    ? new TracerProvider({ resource, sampler: samplerFor(config.sampler, config.samplerRatio), spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: config.batch.scheduledDelayMs, maxQueueSize: config.batch.maxQueueSize, maxExportBatchSize: Math.min(512, config.batch.maxQueueSize) })] })
    : null;
  if (exporter) {
    let lastLogged = 0;
    // The SDK reports export failures (collector down, refused) here instead of throwing.
    setGlobalErrorHandler((error) => {
      const now = Date.now();
      if (now - lastLogged < EXPORT_ERROR_LOG_INTERVAL_MS) return;
      lastLogged = now;
      log.warn({ err: error instanceof Error ? error.message : String(error) }, 'trace export failed (logged at most once a minute)');
    });
  }
  const tracer = provider?.getTracer('modelgate', VERSION) ?? null;
  const propagator = new W3CTraceContextPropagator();
  const parentOf = (carrier: Record<string, string | string[] | undefined>): Context => propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
  const ids = new RandomIdGenerator();
  /**
   * Nothing exports: the request gets its ids (a valid incoming trace continued, as the SDK does)
   * and no span. A non-recording span from the SDK cost a sampler call, a span and a context per
   * request (~1.5 % of the event loop at saturation) for the same ids.
   */
  const unrecorded = (parent: Context): RequestTrace => {
    const incoming = trace.getSpanContext(parent);
    return new UnrecordedRequestTrace(incoming && isSpanContextValid(incoming) ? incoming.traceId : ids.generateTraceId(), ids.generateSpanId());
  };
  let stopped: Promise<void> | undefined;
  return {
    exporting: exporter !== null,
    startRequest(request) {
      const parent = parentOf(request.headers);
      if (!tracer) return unrecorded(parent);
      const span = tracer.startSpan(
        `${request.method} ${request.route}`,
        {
          kind: SpanKind.SERVER,
          attributes: { [ATTR_HTTP_REQUEST_METHOD]: request.method, [ATTR_HTTP_ROUTE]: request.route, [ATTR_URL_PATH]: request.path, 'modelgate.request_id': request.requestId },
        },
        parent,
      );
      return new SpanRequestTrace(tracer, span);
    },
    startRpc(request) {
      const parent = parentOf(request.headers['traceparent'] === undefined && request.traceBin ? { ...request.headers, ...traceparentOfBinary(request.traceBin) } : request.headers);
      if (!tracer) return unrecorded(parent);
      const span = tracer.startSpan(
        `${request.service}/${request.method}`,
        {
          kind: SpanKind.SERVER,
          attributes: { [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC, [ATTR_RPC_METHOD]: `${request.service}/${request.method}`, 'modelgate.request_id': request.requestId },
        },
        parent,
      );
      return new RpcRequestTrace(tracer, span);
    },
    shutdown() {
      stopped ??= (async () => {
        if (!provider) return;
        const boundMs = Math.min(SHUTDOWN_FLUSH_MAX_MS, config.exporter?.timeoutMs ?? SHUTDOWN_FLUSH_MAX_MS);
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), boundMs);
        });
        try {
          const result = await Promise.race([provider.shutdown().then(() => 'done' as const), bound]);
          if (result === 'timeout') log.warn({ waitedMs: boundMs }, 'shutdown: spans not exported in time were dropped');
        } catch (error) {
          log.warn({ err: error instanceof Error ? error.message : String(error) }, 'shutdown: the last spans could not be exported');
        } finally {
          clearTimeout(timer);
        }
      })();
      return stopped;
    },
  };
}

/**
 * `grpc-trace-bin` (OpenCensus' binary trace context, what gRPC's own
 * tracing sends): version 0, then fields 0 (trace id, 16 bytes), 1 (span id,
 * 8 bytes), 2 (options, 1 byte; bit 0 sampled). As a `traceparent`, or
 * nothing when it does not read (a bad context starts a new trace, as a bad
 * `traceparent` does).
 */
export function traceparentOfBinary(bin: Buffer): { traceparent: string } | Record<string, never> {
  if (bin.length < 1 || bin[0] !== 0) return {};
  let traceId: string | undefined;
  let spanId: string | undefined;
  let flags = 0;
  let at = 1;
  while (at < bin.length) {
    const field = bin[at]!;
    const size = field === 0 ? 16 : field === 1 ? 8 : field === 2 ? 1 : -1;
    // An unknown field ends what can be read (its size is not known); the known ones come first.
    if (size < 0 || at + 1 + size > bin.length) break;
    const value = bin.subarray(at + 1, at + 1 + size);
    if (field === 0) traceId = value.toString('hex');
    else if (field === 1) spanId = value.toString('hex');
    else flags = value[0]! & 1;
    at += 1 + size;
  }
  if (!traceId || !spanId) return {};
  return { traceparent: `00-${traceId}-${spanId}-0${flags}` };
}

/** A W3C `traceparent` (version 00) for a span's ids and sampled flag. */
function traceparentOf(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** The public code of an error a step threw; anything else is INTERNAL (its text may hold anything). */
function codeOf(error: unknown): string {
  return error instanceof DomainError ? error.code : 'INTERNAL';
}

function fail(span: Span, code: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
  span.setAttribute(ATTR_ERROR_TYPE, code);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

class SpanRequestTrace implements RequestTrace {
  readonly recording: boolean;
  readonly traceId: string;
  readonly spanId: string;
  readonly traceparent: string;
  private readonly context: Context;

  constructor(
    private readonly tracer: Tracer,
    protected readonly span: Span,
  ) {
    const sc = span.spanContext();
    this.recording = span.isRecording();
    this.traceId = sc.traceId;
    this.spanId = sc.spanId;
    this.traceparent = traceparentOf(sc.traceId, sc.spanId, (sc.traceFlags & TraceFlags.SAMPLED) !== 0);
    this.context = trace.setSpan(ROOT_CONTEXT, span);
  }

  step<T>(name: StepName, fn: (span: StepSpan) => T, attributes?: TraceAttributes): T {
    if (!this.recording) return fn(NOOP_SPAN);
    const span = this.tracer.startSpan(name, attributes ? { attributes } : {}, this.context);
    const handle: StepSpan = { set: (a) => span.setAttributes(a), fail: (code) => fail(span, code) };
    let result: T;
    try {
      result = fn(handle);
    } catch (error) {
      fail(span, codeOf(error));
      span.end();
      throw error;
    }
    if (!isThenable(result)) {
      span.end();
      return result;
    }
    return result.then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        fail(span, codeOf(error));
        span.end();
        throw error;
      },
    ) as T;
  }

  recorded(name: StepName, startMs: number, endMs: number, attributes: TraceAttributes, errorCode?: string): void {
    if (!this.recording) return;
    const span = this.tracer.startSpan(name, { startTime: startMs, attributes }, this.context);
    if (errorCode) fail(span, errorCode);
    span.end(endMs);
  }

  annotate(attributes: TraceAttributes): void {
    if (this.recording) this.span.setAttributes(attributes);
  }

  end(statusCode: number): void {
    if (this.recording) {
      this.endAttributes(statusCode);
    }
    this.span.end();
  }

  protected endAttributes(statusCode: number): void {
    this.span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
    // Server spans fail on 5xx only; a 4xx is the client's, and its code is in error.type.
    if (statusCode >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR, message: String(statusCode) });
  }
}

/** A request's trace ids without a span (no exporter): the traceparent says unsampled, every step just runs. */
class UnrecordedRequestTrace implements RequestTrace {
  readonly recording = false;
  readonly traceparent: string;

  constructor(
    readonly traceId: string,
    readonly spanId: string,
  ) {
    this.traceparent = traceparentOf(traceId, spanId, false);
  }

  step<T>(_name: StepName, fn: (span: StepSpan) => T): T {
    return fn(NOOP_SPAN);
  }

  recorded(): void {}

  annotate(): void {}

  end(): void {}
}

/**
 * gRPC status codes a server span fails on (the RPC conventions for servers:
 * UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS);
 * the others are the client's, as an HTTP 4xx is.
 */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

/** gRPC status codes by number, as the RPC conventions name them in `rpc.status_code`. */
const GRPC_CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** A gRPC call's server span: ended with the call's gRPC status code. */
class RpcRequestTrace extends SpanRequestTrace {
  protected override endAttributes(statusCode: number): void {
    const name = GRPC_CODE_NAMES[statusCode] ?? String(statusCode);
    this.span.setAttribute(ATTR_RPC_STATUS_CODE, name);
    if (GRPC_SERVER_ERRORS.has(statusCode)) this.span.setStatus({ code: SpanStatusCode.ERROR, message: name });
  }
}
