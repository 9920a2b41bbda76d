/**
 * A domain error as a gRPC status: the code from the error contract's gRPC
 * column, the message as details, and trailing metadata with modelgate's
 * code, the request id, the RateLimit fields of the limit decision and, on
 * every code worth retrying (RESOURCE_EXHAUSTED from a limit; UNAVAILABLE and
 * DEADLINE_EXCEEDED: HTTP's 503 and 504), a retry hint from the error
 * contract (`retry-after` in seconds, as HTTP's header, and gRPC's own
 * `grpc-retry-pushback-ms`, which grpc-js's retry policy honours).
 */
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import type { DomainError } from '../../errors';
import { grpcStatusFor, retryAfterFor, statusFor } from '../../errors/contract';
import { rateLimitHeaders } from '../../ratelimit/headers';
import type { LimitDecision } from '../../ratelimit/types';

/** Trailing metadata with the RateLimit fields of a decision (lower-case keys, as gRPC requires). */
export function limitMetadata(decision: LimitDecision | null, requestId: string): Metadata {
  const metadata = new Metadata();
  metadata.set('x-request-id', requestId);
  if (decision) for (const [name, value] of Object.entries(rateLimitHeaders(decision))) metadata.set(name.toLowerCase(), value);
  return metadata;
}

export function grpcCode(code: string): status {
  const name = grpcStatusFor(code) as keyof typeof status;
  return status[name] ?? status.INTERNAL;
}

export function grpcStatus(error: DomainError, decision: LimitDecision | null, requestId: string): StatusObject {
  const metadata = limitMetadata(decision, requestId);
  metadata.set('modelgate-code', error.code);
  const code = grpcCode(error.code);
  const fromLimits = metadata.get('retry-after')[0];
  const retryAfter =
    typeof fromLimits === 'string' ? Number(fromLimits) : retryAfterFor(error.code, { hint: error.extensions['retryAfterSeconds'], status: statusFor(error.code) });
  if (retryAfter !== undefined && (code === status.UNAVAILABLE || code === status.RESOURCE_EXHAUSTED || code === status.DEADLINE_EXCEEDED)) {
    metadata.set('retry-after', String(retryAfter));
    metadata.set('grpc-retry-pushback-ms', String(Math.round(retryAfter * 1000)));
  }
  return { code, details: error.message, metadata };
}
