/**
 * What every resolver receives. Resolvers stay thin: they read the request's
 * identity from here and call the services.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log/logger';
import type { Services } from '../server/services';
import type { Principal } from '../auth/principal';
import type { DomainError } from '../errors';

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
}
