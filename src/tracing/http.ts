/**
 * Traces the HTTP requests of the inference front doors (/graphql and the
 * Open Inference Protocol's /v2 routes): a server span per request, its
 * `traceparent` in the response, and its trace and span ids on the request's
 * logger, so every line logged for the request carries them next to the
 * request id. Health, metrics and console routes are left out: probes and
 * scrapes would bury the traces worth reading.
 */
import type { FastifyInstance } from 'fastify';
import { requestLogger, scrubSecrets } from '../log/logger';
import type { Tracing } from './tracing';
import type { RequestTrace } from './types';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's server span; null on untraced routes. */
    trace: RequestTrace | null;
  }
}

export function isTracedRoute(route: string | undefined): boolean {
  return route !== undefined && (route === '/graphql' || route === '/v2' || route.startsWith('/v2/'));
}

/** Registers the hooks; call before the routes are added. */
export function registerTracing(app: FastifyInstance, tracing: Tracing): void {
  app.decorateRequest('trace', null);
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    if (!isTracedRoute(route) || request.method === 'OPTIONS') return;
    const trace = tracing.startRequest({ method: request.method, route: route!, path: scrubSecrets(request.url.split('?', 1)[0]!), headers: request.headers, requestId: request.id });
    request.trace = trace;
    // fastify's request logger is a pino child: this one adds the trace, every later line of the request has it.
    request.log = requestLogger(request).child({ trace_id: trace.traceId, span_id: trace.spanId });
    void reply.header('traceparent', trace.traceparent);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.trace?.end(reply.statusCode);
  });
}
