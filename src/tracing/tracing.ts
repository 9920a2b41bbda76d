/**
 * OpenTelemetry set-up for one gateway process. Every traced HTTP request
 * gets a server span that continues an incoming W3C `traceparent`
 * (`tracestate` kept) and whose own `traceparent` goes back in the response.
 * With an OTLP endpoint configured, sampled spans are batched and exported
 * over OTLP/HTTP (JSON); without one the provider samples nothing, so spans
 * are non-recording (ids only, nothing kept or sent) and the request path
 * skips every child span.
 *
 * The provider is not registered globally: only the request path's own spans
 * are wanted, not whatever a library would emit through the global API.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, defaultTextMapGetter, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator, setGlobalErrorHandler } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
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

export interface Tracing {
  /** Whether spans are exported (an OTLP endpoint is configured). */
  readonly exporting: boolean;
  startRequest(request: TracedRequest): RequestTrace;
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
  const provider = exporter
    ? new TracerProvider({ resource, sampler: samplerFor(config.sampler, config.samplerRatio), spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: config.batch.scheduledDelayMs, maxQueueSize: config.batch.maxQueueSize, maxExportBatchSize: Math.min(512, config.batch.maxQueueSize) })] })
    : // Nothing to export to: sample nothing, so spans carry ids (for traceparent and logs) and are never recorded.
      new TracerProvider({ resource, sampler: new AlwaysOffSampler() });
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
  const tracer = provider.getTracer('modelgate', VERSION);
  const propagator = new W3CTraceContextPropagator();
  let stopped: Promise<void> | undefined;
  return {
    exporting: exporter !== null,
    startRequest(request) {
      const parent = propagator.extract(ROOT_CONTEXT, request.headers, defaultTextMapGetter);
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
    shutdown() {
      stopped ??= (async () => {
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
    private readonly span: Span,
  ) {
    const sc = span.spanContext();
    this.recording = span.isRecording();
    this.traceId = sc.traceId;
    this.spanId = sc.spanId;
    this.traceparent = `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`;
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
      this.span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
      // Server spans fail on 5xx only; a 4xx is the client's, and its code is in error.type.
      if (statusCode >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR, message: String(statusCode) });
    }
    this.span.end();
  }
}
