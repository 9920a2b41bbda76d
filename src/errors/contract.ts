/**
 * The error contract: every public code, its HTTP status, how far that status
 * reaches in a GraphQL answer, and its gRPC status (for the gRPC door to come).
 * Every door reads statuses here and builds its GraphQL errors here; no other
 * file picks a status for a code or constructs a GraphQLError. README
 * "Errors" is this table in prose; test/graphql/status-table.test.ts walks
 * every domain code through GraphQL, OIP and the plain JSON routes.
 */
import { GraphQLError } from 'graphql';

/**
 * `request`: the code refuses the request as such (key, scope, limits,
 * capacity, deadline, dependency, HTTP framing); its status is the answer's
 * status wherever it appears, also beside other fields' data.
 * `answer`: the code is one field's answer (bad argument, unknown id, a bug);
 * its status is the answer's status when nothing else was answered (a REST
 * call, a GraphQL operation whose data is null), else GraphQL answers 200.
 */
export type StatusScope = 'request' | 'answer';

export interface ContractEntry {
  status: number;
  scope: StatusScope;
  /** The gRPC status name (google.rpc.Code) the code maps to. */
  grpc: string;
  /**
   * Worth retrying: the Retry-After (seconds) an answer with this code
   * carries when the error names no hint of its own (HTTP `Retry-After`,
   * gRPC trailing metadata `retry-after` and `grpc-retry-pushback-ms`).
   * Every 503 and 504 code has one.
   */
  retryAfterSeconds?: number;
}

/** Codes the core raises (DomainError). */
export const DOMAIN_CONTRACT = {
  UNAUTHENTICATED: { status: 401, scope: 'request', grpc: 'UNAUTHENTICATED' },
  FORBIDDEN: { status: 403, scope: 'request', grpc: 'PERMISSION_DENIED' },
  BAD_USER_INPUT: { status: 400, scope: 'answer', grpc: 'INVALID_ARGUMENT' },
  NOT_FOUND: { status: 404, scope: 'answer', grpc: 'NOT_FOUND' },
  RATE_LIMITED: { status: 429, scope: 'request', grpc: 'RESOURCE_EXHAUSTED' },
  QUOTA_EXCEEDED: { status: 429, scope: 'request', grpc: 'RESOURCE_EXHAUSTED' },
  // A model loading or reloading takes seconds, not milliseconds.
  MODEL_UNAVAILABLE: { status: 503, scope: 'request', grpc: 'UNAVAILABLE', retryAfterSeconds: 5 },
  OVERLOADED: { status: 503, scope: 'request', grpc: 'UNAVAILABLE', retryAfterSeconds: 1 },
  TIMEOUT: { status: 504, scope: 'request', grpc: 'DEADLINE_EXCEEDED', retryAfterSeconds: 1 },
  // The database's recovery probe runs every 250 ms.
  UNAVAILABLE: { status: 503, scope: 'request', grpc: 'UNAVAILABLE', retryAfterSeconds: 1 },
  INTERNAL: { status: 500, scope: 'answer', grpc: 'INTERNAL' },
  // Model publishing (issue #23): weights or config that cannot serve; weights over MODEL_UPLOAD_MAX_BYTES.
  MODEL_INVALID: { status: 422, scope: 'answer', grpc: 'INVALID_ARGUMENT' },
  MODEL_TOO_LARGE: { status: 413, scope: 'answer', grpc: 'RESOURCE_EXHAUSTED' },
  // A tenant's private models over MODEL_TENANT_MAX_MODELS or MODEL_TENANT_MAX_BYTES (only its own keys ever see it).
  MODEL_QUOTA_EXCEEDED: { status: 403, scope: 'answer', grpc: 'RESOURCE_EXHAUSTED' },
} as const satisfies Record<string, ContractEntry>;

/** Refusals of the HTTP layer before any door runs (unknown route, method, body, headers). */
export const HTTP_CONTRACT = {
  BAD_REQUEST: { status: 400, scope: 'request', grpc: 'INVALID_ARGUMENT' },
  NOT_FOUND: { status: 404, scope: 'request', grpc: 'UNIMPLEMENTED' },
  METHOD_NOT_ALLOWED: { status: 405, scope: 'request', grpc: 'UNIMPLEMENTED' },
  REQUEST_TIMEOUT: { status: 408, scope: 'request', grpc: 'DEADLINE_EXCEEDED' },
  PAYLOAD_TOO_LARGE: { status: 413, scope: 'request', grpc: 'RESOURCE_EXHAUSTED' },
  URI_TOO_LONG: { status: 414, scope: 'request', grpc: 'INVALID_ARGUMENT' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, scope: 'request', grpc: 'INVALID_ARGUMENT' },
  REQUEST_HEADER_FIELDS_TOO_LARGE: { status: 431, scope: 'request', grpc: 'RESOURCE_EXHAUSTED' },
  INTERNAL: { status: 500, scope: 'request', grpc: 'INTERNAL' },
  UNAVAILABLE: { status: 503, scope: 'request', grpc: 'UNAVAILABLE', retryAfterSeconds: 1 },
} as const satisfies Record<string, ContractEntry>;

/** Codes graphql-js, Apollo and type-graphql produce for client mistakes; passed through as they are. */
export const GRAPHQL_CLIENT_CONTRACT = {
  GRAPHQL_PARSE_FAILED: { status: 400, scope: 'request', grpc: 'INVALID_ARGUMENT' },
  GRAPHQL_VALIDATION_FAILED: { status: 400, scope: 'request', grpc: 'INVALID_ARGUMENT' },
  BAD_USER_INPUT: { status: 400, scope: 'answer', grpc: 'INVALID_ARGUMENT' },
  BAD_REQUEST: { status: 400, scope: 'request', grpc: 'INVALID_ARGUMENT' },
  // Apollo answers these two inside a 200: the client retries with the full query.
  PERSISTED_QUERY_NOT_FOUND: { status: 200, scope: 'request', grpc: 'NOT_FOUND' },
  PERSISTED_QUERY_NOT_SUPPORTED: { status: 200, scope: 'request', grpc: 'UNIMPLEMENTED' },
  OPERATION_RESOLUTION_FAILURE: { status: 400, scope: 'request', grpc: 'INVALID_ARGUMENT' },
} as const satisfies Record<string, ContractEntry>;

export type DomainCode = keyof typeof DOMAIN_CONTRACT;
export type HttpLayerCode = keyof typeof HTTP_CONTRACT;

function entryOf(code: string): ContractEntry | undefined {
  return (DOMAIN_CONTRACT as Record<string, ContractEntry>)[code] ?? (HTTP_CONTRACT as Record<string, ContractEntry>)[code] ?? (GRAPHQL_CLIENT_CONTRACT as Record<string, ContractEntry>)[code];
}

/** The HTTP status of a code as a whole answer (REST, or a GraphQL operation with no data); 500 for a code outside the contract. */
export function statusFor(code: string): number {
  return entryOf(code)?.status ?? 500;
}

/** The status a code sets on an answer that also carries other data: only request-scoped codes set one. */
export function requestStatusFor(code: string): number | undefined {
  const entry = entryOf(code);
  return entry?.scope === 'request' ? entry.status : undefined;
}

/** The gRPC status name for a code. */
export function grpcStatusFor(code: string): string {
  return entryOf(code)?.grpc ?? 'INTERNAL';
}

/** The hint for a 503 or 504 whose code is outside the contract (a plain-text refusal, say). */
export const FALLBACK_RETRY_AFTER_SECONDS = 1;

/**
 * The Retry-After (whole seconds) of an answer: the error's own hint
 * (`retryAfterSeconds` in its extensions, e.g. a limit's reset) when it has
 * one, else the code's from the contract, else — for any 503 or 504 —
 * FALLBACK_RETRY_AFTER_SECONDS; undefined when the answer is not worth retrying.
 */
export function retryAfterFor(code: string | undefined, options: { hint?: unknown; status?: number } = {}): number | undefined {
  if (typeof options.hint === 'number' && Number.isFinite(options.hint) && options.hint >= 0) return Math.ceil(options.hint);
  const entry = code === undefined ? undefined : entryOf(code);
  if (entry?.retryAfterSeconds !== undefined) return entry.retryAfterSeconds;
  const status = options.status ?? entry?.status;
  return status === 503 || status === 504 ? FALLBACK_RETRY_AFTER_SECONDS : undefined;
}

/** The HTTP-layer code for a status fastify or Node chose. */
export function httpLayerCodeFor(status: number): HttpLayerCode {
  for (const [code, entry] of Object.entries(HTTP_CONTRACT)) if (entry.status === status) return code as HttpLayerCode;
  return status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
}

/**
 * The status of a GraphQL answer from the errors it sends: the first
 * request-scoped code's, else (when the operation answered no data) the
 * first coded error's, else none (200).
 */
export function graphqlStatusFor(errors: readonly { extensions?: Record<string, unknown> }[], hasData: boolean): number | undefined {
  const codes = errors.map((e) => e.extensions?.['code']).filter((c): c is string => typeof c === 'string');
  for (const code of codes) {
    const status = requestStatusFor(code);
    if (status !== undefined) return status;
  }
  const first = codes.find((code) => entryOf(code) !== undefined);
  return !hasData && first !== undefined ? statusFor(first) : undefined;
}

interface CodedError {
  code: string;
  message: string;
  extensions: Record<string, unknown>;
}

/**
 * The GraphQL error for a coded error. `refusesRequest`: thrown before
 * execution (a plugin refusing the operation), so the code's status is the
 * answer's status; otherwise only a request-scoped code sets one.
 */
export function graphqlErrorFor(error: CodedError, options: { refusesRequest?: boolean; originalError?: Error } = {}): GraphQLError {
  const status = options.refusesRequest ? statusFor(error.code) : requestStatusFor(error.code);
  return new GraphQLError(error.message, {
    ...(options.originalError ? { originalError: options.originalError } : {}),
    extensions: { ...error.extensions, code: error.code, ...(status !== undefined ? { http: { status } } : {}) },
  });
}

/** The body of a plain JSON error response: the GraphQL error shape, so clients parse one shape. */
export function jsonErrorBody(code: string, message: string, requestId: string, extensions: Record<string, unknown> = {}): { errors: { message: string; extensions: Record<string, unknown> }[] } {
  return { errors: [{ message, extensions: { ...extensions, code, requestId } }] };
}

/** The body of an Open Inference Protocol error response: `{error, code, requestId, …}` (KServe/Triton clients read `error`). */
export function oipErrorBody(code: string, message: string, requestId: string, extensions: Record<string, unknown> = {}): Record<string, unknown> {
  return { error: message, code, ...extensions, requestId };
}
