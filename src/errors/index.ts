/**
 * The one mapping from domain errors to GraphQL errors. Services throw
 * DomainError subclasses; the server turns them into GraphQL errors with
 * `extensions.code` and the HTTP status where one applies. Anything else is
 * an unexpected failure: clients see INTERNAL and the request id, the log
 * gets the whole error.
 */
import { GraphQLError } from 'graphql';
import { DOMAIN_CONTRACT, GRAPHQL_CLIENT_CONTRACT, HTTP_CONTRACT, graphqlErrorFor, httpLayerCodeFor, jsonErrorBody, requestStatusFor, type ContractEntry, type DomainCode, type HttpLayerCode } from './contract';

export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'MODEL_UNAVAILABLE',
  'OVERLOADED',
  'TIMEOUT',
  'UNAVAILABLE',
  'INTERNAL',
  'MODEL_INVALID',
  'MODEL_TOO_LARGE',
  'MODEL_QUOTA_EXCEEDED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

// Every code has its row in the contract (src/errors/contract.ts), and the contract no other code.
const _everyCodeInContract: Record<ErrorCode, ContractEntry> = DOMAIN_CONTRACT;
const _noOtherCodeInContract: readonly ErrorCode[] = Object.keys(DOMAIN_CONTRACT) as DomainCode[];
void _everyCodeInContract;
void _noOtherCodeInContract;

/** The status a code sets on any answer it appears in (request-scoped codes only; see the contract). */
export function httpStatusFor(code: string): number | undefined {
  return requestStatusFor(code);
}

/**
 * Codes of refusals made by the HTTP layer before any GraphQL runs (unknown
 * route, wrong method, body too large or not JSON, a path parameter longer
 * than any name, header overflow), each
 * with its one status.
 */
export const HTTP_ERROR_CODES = Object.fromEntries(Object.entries(HTTP_CONTRACT).map(([code, entry]) => [code, entry.status])) as {
  readonly [K in HttpLayerCode]: (typeof HTTP_CONTRACT)[K]['status'];
};
export type HttpErrorCode = HttpLayerCode;

/** GraphQL codes that graphql-js, Apollo and type-graphql produce for client mistakes; passed through as they are. */
const CLIENT_CODES: ReadonlySet<string> = new Set(Object.keys(GRAPHQL_CLIENT_CONTRACT));

/**
 * The closed list of codes any response body may carry (README, "Errors").
 * A code outside it reaching a client is a bug; the fuzz suite checks this.
 */
export const PUBLIC_ERROR_CODES: ReadonlySet<string> = new Set<string>([...ERROR_CODES, ...CLIENT_CODES, ...Object.keys(HTTP_ERROR_CODES)]);

/** The body of every non-GraphQL error response: the GraphQL error shape, so clients parse one shape. */
export function errorBody(code: HttpErrorCode | ErrorCode, message: string, requestId: string, extensions: Record<string, unknown> = {}): { errors: { message: string; extensions: Record<string, unknown> }[] } {
  return jsonErrorBody(code, message, requestId, extensions);
}

/** The HTTP-layer code for a status fastify or Node chose. */
export function httpCodeForStatus(status: number): HttpErrorCode {
  return httpLayerCodeFor(status);
}

/**
 * The one classifier of "a dependency (Postgres, Redis) cannot take this
 * request now" versus "this request or the code is wrong". Used for the
 * client's answer (UNAVAILABLE: 503 and Retry-After, the text stays in the
 * log) and by the database's own state (a failure of this kind marks it
 * down), so the two never disagree. It looks anywhere in the cause chain
 * (`cause`, `originalError`, and Prisma's `meta.driverAdapterError.cause`)
 * for: Prisma's connection codes (P1001 can't reach, P1002 timed out, P1008
 * operation timeout, P1017 server closed the connection, P2024 pool
 * timeout, P2037 too many connections), the driver adapter's connection
 * kinds, Postgres SQLSTATE class 08 (connection exception), 53 (insufficient
 * resources: too many clients, out of memory, disk full) and 57P (operator
 * intervention: shutdown, cannot connect now), Node socket and DNS errors,
 * and the drivers' connection messages.
 */
export function isDependencyUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current && typeof current === 'object'; depth += 1) {
    if (current instanceof UnavailableError) return true;
    const e = current as {
      code?: unknown;
      originalCode?: unknown;
      kind?: unknown;
      name?: unknown;
      message?: unknown;
      cause?: unknown;
      originalError?: unknown;
      meta?: { driverAdapterError?: { cause?: unknown } };
    };
    for (const code of [e.code, e.originalCode]) {
      if (typeof code !== 'string') continue;
      if (UNAVAILABLE_ERROR_CODES.has(code)) return true;
      if (/^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_SQLSTATE.test(code)) return true;
    }
    if (typeof e.kind === 'string' && UNAVAILABLE_ADAPTER_KINDS.has(e.kind)) return true;
    if (e.name === 'PrismaClientInitializationError') return true;
    if (typeof e.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message)) return true;
    current = e.meta?.driverAdapterError?.cause ?? e.cause ?? e.originalError;
  }
  return false;
}

const UNAVAILABLE_ERROR_CODES = new Set([
  // Prisma: can't reach, timed out, operation timed out, closed, pool timeout, too many connections.
  'P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037',
  // Node sockets and DNS.
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
]);
/** SQLSTATE classes 08 (connection exception), 53 (insufficient resources) and 57P (shutdown, cannot connect now). */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P)/;
const UNAVAILABLE_ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'DatabaseDoesNotExist', 'SocketTimeout', 'ConnectionClosed', 'TooManyConnections']);
const UNAVAILABLE_MESSAGE =
  /Can't reach database server|Connection terminated|Connection is closed|connect ECONNREFUSED|Client has encountered a connection error|timeout exceeded when trying to connect|connection timeout|server closed the connection|the database system is (starting up|shutting down|in recovery mode)|terminating connection|sorry, too many clients|Stream isn't writeable|MaxRetriesPerRequestError|Reached the max retries per request limit/i;

/**
 * Strings a client must never see: SQL, Prisma, driver and decoder text,
 * stack frames, hosts and paths. The fuzz suite and the hostile tests assert
 * no response body matches.
 */
export const INTERNALS_PATTERN = /Prisma|prisma\.|P[12]\d{3}\b|\bSQL\b|SQLSTATE|postgres(ql)?:\/\/|\bpg\b|ECONNREFUSED|127\.0\.0\.1|localhost:\d|Vips|vips|libvips|sharp|onnxruntime|\bORT\b|FST_[A-Z_]+|ERR_[A-Z_]{4,}|node:internal|at [\w.<>]+ \(|\/work\/|dist\/|\.ts:\d+|\.js:\d+|INTERNAL_SERVER_ERROR|ioredis|Redis connection|Float cannot represent/;

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export class UnauthenticatedError extends DomainError {
  constructor(message = 'Missing or invalid API key', extensions: Record<string, unknown> = {}) {
    super('UNAUTHENTICATED', message, extensions);
  }
}
export class ForbiddenError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('FORBIDDEN', message, extensions);
  }
}
export class BadInputError extends DomainError {
  constructor(message: string, field?: string, extensions: Record<string, unknown> = {}) {
    super('BAD_USER_INPUT', message, field ? { field, ...extensions } : extensions);
  }
}
export class NotFoundError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('NOT_FOUND', message, extensions);
  }
}
export class ModelUnavailableError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('MODEL_UNAVAILABLE', message, extensions);
  }
}
/** A published model (weights or config) that cannot serve; `extensions.reason` names why. */
export class ModelInvalidError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('MODEL_INVALID', message, extensions);
  }
}
/** Weights over MODEL_UPLOAD_MAX_BYTES. */
export class ModelTooLargeError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('MODEL_TOO_LARGE', message, extensions);
  }
}
/** A tenant's private models would exceed MODEL_TENANT_MAX_MODELS or MODEL_TENANT_MAX_BYTES. */
export class ModelQuotaExceededError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('MODEL_QUOTA_EXCEEDED', message, extensions);
  }
}
/** The one answer for a model the caller cannot see: the same whether it does not exist or is another tenant's. */
export function unknownModelError(name: string): NotFoundError {
  return new NotFoundError(`Model "${name}" is not in the repository`, { model: name });
}
export class OverloadedError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('OVERLOADED', message, extensions);
  }
}
export class TimeoutError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('TIMEOUT', message, extensions);
  }
}
/** A dependency (database, Redis) the request needs is unreachable; the client may retry. */
export class UnavailableError extends DomainError {
  constructor(message = 'A service this request needs is temporarily unavailable; retry shortly', extensions: Record<string, unknown> = {}) {
    super('UNAVAILABLE', message, extensions);
  }
}
export class RateLimitedError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('RATE_LIMITED', message, extensions);
  }
}
export class QuotaExceededError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super('QUOTA_EXCEEDED', message, extensions);
  }
}

/** Turns a domain error into the GraphQL error a client sees. */
export function toGraphQLError(error: DomainError): GraphQLError {
  return graphqlErrorFor(error);
}

/** Finds the DomainError behind a GraphQL error (resolvers' errors arrive wrapped). */
export function domainErrorOf(error: unknown): DomainError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth += 1) {
    if (current instanceof DomainError) return current;
    current = (current as { originalError?: unknown }).originalError;
  }
  return undefined;
}

export type ErrorClass = 'domain' | 'client' | 'internal';

/** Decides whether an error is a domain error, a client-side GraphQL error or an unexpected failure. */
export function classifyError(error: unknown): ErrorClass {
  if (domainErrorOf(error)) return 'domain';
  if (error instanceof GraphQLError) {
    const code = error.extensions?.['code'];
    const original = error.originalError;
    // Errors raised by graphql-js itself (parse/validation/coercion) have no
    // originalError or carry a client code; errors thrown inside resolvers do.
    if (typeof code === 'string' && (CLIENT_CODES.has(code) || (ERROR_CODES as readonly string[]).includes(code))) {
      return code === 'INTERNAL' ? 'internal' : 'client';
    }
    if (!original) return 'client';
    // A built-in scalar that cannot serialize a result ("Float cannot represent non numeric
    // value: NaN") throws a bare GraphQLError (no nodes, no code) that graphql-js locates at
    // the field: the server's fault. Argument errors found during execution carry nodes.
    if (original instanceof GraphQLError && error.path && !original.nodes && original.extensions['code'] === undefined && !original.originalError) return 'internal';
    if (original instanceof GraphQLError) return classifyError(original);
    return 'internal';
  }
  return 'internal';
}
