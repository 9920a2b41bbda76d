/**
 * GET /usage.csv?from&to[&tenantId]: the records of a range as CSV, streamed
 * from keyset batches (memory holds one batch, whatever the range). Same
 * authentication and tenant rules as the GraphQL usage queries.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services';
import { BadInputError, UnauthenticatedError, domainErrorOf, errorBody } from '../../errors';
import { statusFor } from '../../errors/contract';
import { requireScope } from '../../auth/scopes';
import { readableTenant } from '../../usage/usage-access';
import { checkRange } from '../../usage/usage-queries';

function dateParam(value: unknown, name: string): Date {
  if (typeof value !== 'string' || value.trim() === '') throw new BadInputError(`${name} is required (ISO 8601 date-time)`, name);
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new BadInputError(`${name} is not a valid ISO 8601 date-time`, name);
  return date;
}

export function registerUsageRoutes(app: FastifyInstance, services: Services): void {
  app.get('/usage.csv', async (request, reply) => {
    try {
      const principal = await services.sessions.authenticate(request);
      if (!principal) throw new UnauthenticatedError();
      requireScope(principal, 'usage:read');
      const query = request.query as Record<string, unknown>;
      const from = dateParam(query['from'], 'from');
      const to = dateParam(query['to'], 'to');
      const tenantParam = typeof query['tenantId'] === 'string' && query['tenantId'] !== '' ? query['tenantId'] : null;
      const tenantId = readableTenant(principal, tenantParam);
      checkRange(from, to);
      const chunks = services.usage.queries.csv(tenantId, from, to);
      // Read the header and first batch before answering, so a database failure is a clean 503, not a cut stream.
      const first = await chunks.next();
      const second = first.done ? first : await chunks.next();
      async function* body(): AsyncGenerator<string> {
        if (!first.done) yield first.value;
        if (!second.done) yield second.value;
        if (!second.done) yield* chunks;
      }
      const name = `usage-${tenantId ?? 'all'}-${from.toISOString().slice(0, 10)}-${to.toISOString().slice(0, 10)}.csv`;
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}"`)
        .send(Readable.from(body()));
    } catch (error) {
      const domain = domainErrorOf(error);
      if (!domain) throw error;
      const http = (domain.extensions['http'] as { status?: number } | undefined)?.status;
      const status = http ?? statusFor(domain.code);
      const { http: _http, ...extensions } = domain.extensions;
      return reply.code(status).send(errorBody(domain.code, domain.message, request.id, extensions));
    }
  });
}
