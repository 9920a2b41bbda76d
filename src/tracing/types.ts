/**
 * What the request path sees of tracing: a handle on the request's server
 * span that makes child spans. Lower layers (pipeline, inference engine,
 * GraphQL plugins) get only this, never the OpenTelemetry SDK; when the span
 * is not recorded (no exporter, sampled out) every call is a plain pass-through.
 */

export type TraceAttributes = Record<string, string | number | boolean>;

/** The request-path steps that get a span of their own (README, "Tracing"). */
export type StepName = 'authenticate' | 'admit' | 'validate' | 'queue' | 'compute' | 'record';

/** A step's span while it runs. */
export interface StepSpan {
  set(attributes: TraceAttributes): void;
  /** Marks the step failed with a public error code (never a message: it may quote client input). */
  fail(code: string): void;
}

export interface StepTrace {
  /** Whether spans are recorded (callers skip building attributes when not). */
  readonly recording: boolean;
  /** The W3C trace id (32 hex) of the request's span; absent outside an HTTP or gRPC request. */
  readonly traceId?: string;
  /**
   * Runs `fn` as the child span `name` of the request's span; a thrown error
   * (or rejected promise) ends the span failed with the error's code.
   */
  step<T>(name: StepName, fn: (span: StepSpan) => T, attributes?: TraceAttributes): T;
  /** A child span that already happened; times are performance.now() milliseconds. */
  recorded(name: StepName, startMs: number, endMs: number, attributes: TraceAttributes, errorCode?: string): void;
  /** Facts about the whole request (model, outcome) on the request's span. */
  annotate(attributes: TraceAttributes): void;
}

/** The server span of one HTTP request. */
export interface RequestTrace extends StepTrace {
  readonly traceId: string;
  readonly spanId: string;
  /** The W3C `traceparent` of this request's span, for the response. */
  readonly traceparent: string;
  /** Ends the span with the response's status (5xx marks it failed, as the HTTP conventions say for servers). */
  end(statusCode: number): void;
}
