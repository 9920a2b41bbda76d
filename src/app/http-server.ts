/**
 * The HTTP server of one gateway process: fastify with the error contract,
 * tracing and request hooks, the operational routes (/healthz, /readyz,
 * /metrics), and both doors (GraphQL at /graphql, REST under /v2, /usage.csv,
 * /openapi.json, /console, GraphiQL).
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { fastifyApolloHandler } from '@as-integrations/fastify';
import type { ApolloServer } from '@apollo/server';
import { deferredChild, requestLogger, type Logger } from '../log/logger';
import { acceptedRequestId } from '../ids/request-id';
import type { Services } from '../server/services';
import type { GraphQLContext } from '../server/graphql/context';
import type { InFlightRequests } from './in-flight';
import { registerOipRoutes } from '../server/rest/oip/oip.routes';
import { registerUsageRoutes } from '../server/rest/usage-csv.routes';
import { GRAPHIQL_HTML, registerGraphiql, wantsGraphiql } from '../server/graphql/graphiql';
import { registerConsole } from '../server/rest/console.routes';
import { registerConsoleSessionRoutes } from '../server/rest/console-session.routes';
import { registerOpenApi } from '../server/rest/openapi/openapi.routes';
import { DomainError, UnavailableError, isDependencyUnavailable } from '../errors';
import { registerHttpErrorContract, clientErrorHandler, frameworkErrorHandler } from '../server/rest/http-errors';
import type { ConnectionDrain } from './connection-drain';
import type { Tracing } from '../tracing/tracing';
import { registerTracing } from '../tracing/http';
import { NOOP_STEPS } from '../tracing/noop';
import { principalAttributes } from '../tracing/attributes';

export interface RouteEntry {
  method: string;
  /** fastify's form: /v2/models/:model */
  url: string;
}

/** Uses the caller's x-request-id when ids/request-id.ts accepts it, otherwise makes one. */
export function requestIdFor(header: string | string[] | undefined): string {
  return acceptedRequestId(Array.isArray(header) ? header[0] : header) ?? randomUUID();
}

/** How long idle connections are held after the listener closes, for requests already on their way (connection-drain.ts). */
const IDLE_CONNECTION_WINDOW_MS = 1000;

/**
 * Stops accepting connections, answers requests already on their way and lets
 * in-flight ones finish (each answer says Connection: close), and cuts what is
 * left at the drain timeout.
 */
export async function closeHttp(app: FastifyInstance, drain: ConnectionDrain, drainTimeoutMs: number, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), drainTimeoutMs);
  });
  const closed = drain.close(app.server, () => app.close(), Math.min(IDLE_CONNECTION_WINDOW_MS, drainTimeoutMs), log);
  const result = await Promise.race([closed.then(() => 'drained' as const), timedOut]);
  clearTimeout(timer);
  if (result === 'timeout') {
    log.warn({ drainTimeoutMs }, 'drain timeout reached; closing remaining connections');
    app.server.closeAllConnections();
  }
}

export function buildHttpServer(services: Services, apollo: ApolloServer<GraphQLContext>, inFlight: InFlightRequests, tracing: Tracing, routes: RouteEntry[]): FastifyInstance {
  const { config, log, metrics } = services;
  const app = Fastify({
    // pino's Logger is what fastify expects at run time; its type differs only in generics.
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines are logged by our onResponse hook (debug), with the request id.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // A request's logger is made when it first writes a line: most requests write none (logger.ts).
    childLoggerFactory: (logger, bindings, options) => deferredChild(logger as unknown as Logger, bindings, options) as unknown as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    genReqId: (req) => requestIdFor(req.headers['x-request-id']),
    // Requests that reach an open connection while draining are still answered:
    // refusing them would fail clients that did nothing wrong.
    return503OnClosing: false,
    // Keep-alive sockets are closed when idle during shutdown so drain finishes promptly
    // (after a short hold for requests already on their way: connection-drain.ts).
    forceCloseConnections: 'idle',
    // Node's own refusals (400 bad request line, 431 header overflow, 408) in the error contract's shape.
    clientErrorHandler,
    // The router's own refusals (bad percent-encoding, an over-long path parameter) in the contract's shape.
    frameworkErrors: frameworkErrorHandler,
    // Model names run to 128 characters (MODEL_NAME); versions are shorter. Twice that leaves room
    // for percent-encoding while a longer parameter is still refused by the router (414 URI_TOO_LONG).
    routerOptions: { maxParamLength: 256 },
  });
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) routes.push({ method, url: route.url });
  });
  registerHttpErrorContract(app, { bodyLimitBytes: config.bodyLimitBytes, maxListElements: config.graphql.maxListElements });
  registerTracing(app, tracing);

  app.addHook('onRequest', async (request, reply) => {
    inFlight.started(reply.raw);
    reply.header('x-request-id', request.id);
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    // While shutting down, ask every client to reconnect (to another replica) after this answer.
    if (services.lifecycle.isShuttingDown) reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    // The request's own logger: it carries the request id (and trace_id/span_id on traced routes).
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });

  registerOperationalRoutes(app, services, inFlight);
  registerGraphiql(app);
  registerConsole(app);
  registerConsoleSessionRoutes(app, { sessions: services.sessions, oidc: services.oidc, config: config.console });
  registerOpenApi(app);
  registerUsageRoutes(app, services);
  registerOipRoutes(app, {
    pipeline: services.pipeline,
    models: services.models,
    fleet: services.fleet,
    ready: () => services.readiness.report().ready && !services.lifecycle.isShuttingDown,
    bodyLimitBytes: services.config.bodyLimitBytes,
    maxListElements: services.config.graphql.maxListElements,
  });
  const apolloHandler = fastifyApolloHandler(apollo, { context: (request: FastifyRequest, reply) => graphqlContext(services, request, reply) });
  app.route<{ Reply: string }>({
    url: '/graphql',
    method: ['GET', 'POST', 'OPTIONS'],
    handler: async function (request, reply) {
      if (wantsGraphiql(request.method, request.headers.accept, request.query)) {
        return reply.type('text/html; charset=utf-8').send(GRAPHIQL_HTML);
      }
      return apolloHandler.call(this, request, reply);
    },
  });
  return app;
}

/** /healthz (alive), /readyz (the readiness report; 503 while starting or shutting down) and /metrics. */
function registerOperationalRoutes(app: FastifyInstance, services: Services, inFlight: InFlightRequests): void {
  const { metrics, readiness } = services;
  app.get('/healthz', async () => ({ status: 'alive' }));
  app.get('/readyz', async (_request, reply) => {
    const report = readiness.report();
    if (services.lifecycle.isShuttingDown) {
      return reply.code(503).send({ ...report, ready: false, shuttingDown: true, shutdown: { state: services.lifecycle.state, inFlightRequests: inFlight.count } });
    }
    return reply.code(report.ready ? 200 : 503).send(report);
  });
  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}

/** The GraphQL context of one request: ids, services, the request's logger and span, and the verified caller. */
async function graphqlContext(services: Services, request: FastifyRequest, reply: FastifyReply): Promise<GraphQLContext> {
  const context: GraphQLContext = {
    requestId: request.id,
    log: requestLogger(request),
    services,
    request,
    reply,
    ip: request.ip,
    userAgent: request.headers['user-agent'],
    principal: null,
    inferenceCalls: 0,
    pendingUsage: [],
    trace: request.trace ?? NOOP_STEPS,
  };
  await context.trace.step('authenticate', async (span) => {
    try {
      // A key in the headers, else a console session cookie (CSRF-checked on POST).
      context.principal = await services.sessions.authenticate(request);
      if (context.principal) span.set(principalAttributes(context.principal));
    } catch (error) {
      // Refused keys fail the operation in the auth plugin, with the error mapped to its code and status;
      // a database or Redis outage under authentication is UNAVAILABLE (503), never its driver text.
      if (error instanceof DomainError) context.authError = error;
      else if (isDependencyUnavailable(error)) {
        request.log.warn({ err: error }, 'authentication: dependency unavailable');
        context.authError = new UnavailableError();
      } else throw error;
      span.fail(context.authError.code);
    }
  });
  return context;
}
