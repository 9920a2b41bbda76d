/**
 * The one mapping from domain errors to GraphQL errors. Services throw
 * DomainError subclasses; the server turns them into GraphQL errors with
 * `extensions.code` and the HTTP status where one applies. Anything else is
 * an unexpected failure: clients see INTERNAL and the request id, the log
 * gets the whole error.
 */
import { GraphQLError } from 'graphql';

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
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  OVERLOADED: 503,
  MODEL_UNAVAILABLE: 503,
  TIMEOUT: 504,
  UNAVAILABLE: 503,
};

export function httpStatusFor(code: string): number | undefined {
  return HTTP_STATUS[code as ErrorCode];
}

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
  constructor(message = 'Missing or invalid API key') {
    super('UNAUTHENTICATED', message);
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

/** GraphQL codes that graphql-js, Apollo and type-graphql produce for client mistakes; passed through as they are. */
const CLIENT_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/** Turns a domain error into the GraphQL error a client sees. */
export function toGraphQLError(error: DomainError): GraphQLError {
  const status = httpStatusFor(error.code);
  return new GraphQLError(error.message, {
    extensions: { ...error.extensions, code: error.code, ...(status ? { http: { status } } : {}) },
  });
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
    if (original instanceof GraphQLError) return classifyError(original);
    return 'internal';
  }
  return 'internal';
}
