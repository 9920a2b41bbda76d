/**
 * What every resolver receives. Resolvers stay thin: they read the request's
 * identity from here and call the services.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../log/logger';
import type { Services } from '../services';
import type { Principal } from '../../auth/principal';
import type { Actor } from '../../auth/actor';
import type { DomainError } from '../../errors';
import type { LimitDecision } from '../../ratelimit/types';
import type { PendingUsage } from './pending-usage';
import type { StepTrace } from '../../tracing/types';

export interface GraphQLContext {
  requestId: string;
  log: Logger;
  services: Services;
  request: FastifyRequest;
  reply: FastifyReply;
  ip: string;
  userAgent: string | undefined;
  /** The verified caller; null when the request carried no key (issue #5 fills this in). */
  principal: Principal | null;
  /** Why the presented key was refused (the whole operation is then refused); undefined when no key or a good one. */
  authError?: DomainError;
  /** The limit decision whose RateLimit headers this response carries (the latest wins). */
  limitDecision?: LimitDecision | null;
  /** Set when the operation has an inference root field: its resolver makes the limit decision. */
  limitsDeferred?: boolean;
  /** Inference calls made so far in this operation (each gets its own usage record id). */
  inferenceCalls: number;
  /** Usage records held until the response is known (written, durably, before it is sent). */
  pendingUsage: PendingUsage[];
  /** The request's server span (child spans for authenticate, admit, validate, queue, compute, record). */
  trace: StepTrace;
}

/** The caller an admin change is made for (audit actor columns): the request's key, address, user agent and id. */
export function callerOf(ctx: GraphQLContext, principal: Principal | null = ctx.principal): Actor {
  return { principal, ip: ctx.ip, userAgent: ctx.userAgent ?? null, requestId: ctx.requestId };
}
