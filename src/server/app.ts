/**
 * Assembles one gateway process: services, Apollo, and the HTTP routes
 * (/graphql, /healthz, /readyz, /metrics, /openapi.json, /v2, /usage.csv, /console).
 * `createGateway` does not listen;
 * `Gateway.listen` does, so tests can start as many as they need.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { fastifyApolloHandler } from '@as-integrations/fastify';
import type { ApolloServer } from '@apollo/server';
import type { Config } from '../config';
import { createLogger, type Logger } from '../log/logger';
import { Database } from '../db/database';
import { DataDirLock } from '../db/data-dir-lock';
import { RedisConnection } from '../redis/redis';
import { Metrics } from '../metrics/metrics';
import { Readiness } from '../health/readiness';
import { Lifecycle, type ShutdownOptions } from './lifecycle';
import { InFlightRequests } from './in-flight';
import { ConnectionDrain } from './connection-drain';
import type { Services } from './services';
import type { GraphQLContext } from '../graphql/context';
import { createApollo } from './apollo';
import { InferenceService } from '../inference/inference.service';
import { InferencePipeline } from '../inference/pipeline';
import { registerOipRoutes } from '../inference/oip.routes';
import { UsageService } from '../usage/usage.service';
import { registerUsageRoutes } from '../usage/usage.routes';
import { GRAPHIQL_HTML, registerGraphiql, wantsGraphiql } from '../graphql/graphiql';
import { registerConsole } from '../console/console.routes';
import { registerOpenApi } from '../openapi/openapi.routes';
import { RateLimitService } from '../ratelimit/ratelimit.service';
import { Authenticator } from '../auth/authenticator';
import { PriceBook } from '../billing/price-book';
import { CreditService, creditBalanceFromLedger } from '../billing/credits';
import { bootstrapFirstAdminOnStart } from '../keys/first-admin';
import { KeyService } from '../keys/key.service';
import { registerOutageReadiness } from '../health/outage-readiness';
import { billedComputeUnits } from '../usage/billed-units';
import { DomainError, UnavailableError, isDependencyUnavailable } from '../errors';
import { registerHttpErrorContract, clientErrorHandler, frameworkErrorHandler } from './http-errors';
import { createTracing, type Tracing } from '../tracing/tracing';
import { registerTracing } from '../tracing/http';
import { NOOP_STEPS } from '../tracing/noop';
import { principalAttributes } from '../tracing/attributes';
import { loadSecretBox } from '../webhooks/secret-box';
import { WebhookDispatcher } from '../webhooks/dispatcher';
import { WebhookService } from '../webhooks/webhook.service';
import { UsageAlerts } from '../webhooks/usage-alerts';
import { webhookKeyEvents } from '../webhooks/key-events';
import { creditAlerts } from '../webhooks/credit-alerts';

export interface Gateway {
  app: FastifyInstance;
  services: Services;
  apollo: ApolloServer<GraphQLContext>;
  /** Starts listening; resolves with the base URL. */
  listen(): Promise<string>;
  /** Graceful shutdown: readiness off (grace), stop accepting, drain, flush, close. */
  close(reason?: string, options?: ShutdownOptions): Promise<void>;
  /** Resolves once every required component is ready (what /readyz would say). */
  untilReady(): Promise<void>;
  /** What a forced exit now would abandon (for the second-signal message). */
  pendingWork(): { inFlightRequests: number; unwrittenUsageRecords: number };
  /** Every route fastify registered (complete once listening), for the OpenAPI drift test. */
  routes: readonly RouteEntry[];
}

export interface RouteEntry {
  method: string;
  /** fastify's form: /v2/models/:model */
  url: string;
}

export interface GatewayOptions {
  logger?: Logger;
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** A modelgate key's shape anywhere in a value (mg_live_… / mg_test_…). */
const KEY_SHAPED = /mg_(live|test)_/i;

/**
 * Uses the caller's x-request-id when it is sane, otherwise makes one. A
 * key-shaped id is never taken: it would be echoed, logged, traced and
 * stored as the usage record's id (a client that put its key there by
 * mistake would leak it everywhere).
 */
export function requestIdFor(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && REQUEST_ID_PATTERN.test(value) && !KEY_SHAPED.test(value) ? value : randomUUID();
}

export async function createGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.logger ?? createLogger({ level: config.logLevel, pretty: config.logPretty });
  // Before anything touches DATA_DIR (the database, the usage log): one process per embedded directory.
  const dataDirLock = config.database.mode === 'embedded' ? await DataDirLock.acquire(DataDirLock.dirFor(config.database.dataDir), 'gateway') : null;
  const metrics = new Metrics();
  const readiness = new Readiness();
  const lifecycle = new Lifecycle(log);

  const db = new Database(config, log.child({ component: 'database' }));

  let redis: RedisConnection | null = null;
  if (config.redis) {
    const connection = new RedisConnection(config.redis.url, config.redis.keyPrefix, log.child({ component: 'redis' }));
    redis = connection;
    // In open failure mode a Redis outage degrades the gateway (limits per replica,
    // revocations bounded by KEY_CACHE_TTL_MS) but does not take it out of rotation.
    readiness.register(
      'redis',
      () => ({
        ready: connection.state === 'up',
        detail: { state: connection.state, ...(connection.lastError ? { error: connection.lastError } : {}) },
      }),
      { required: config.limits.failureMode === 'closed' },
    );
  } else {
    log.warn('REDIS_URL is not set: rate limits, quotas and revocation broadcasts hold per process only');
  }

  const pgListenUrl = config.database.mode === 'postgres' ? config.database.url : undefined;
  const auth = new Authenticator({ config, db, redis, log: log.child({ component: 'auth' }), metrics, pgListenUrl });
  auth.start();
  registerOutageReadiness({ config, db, auth, metrics }, readiness);
  const billing = new PriceBook(db);
  // Webhooks: events are written to the outbox by the transactions that cause them; the dispatcher delivers them.
  const webhookLog = log.child({ component: 'webhooks' });
  const webhookBox = loadSecretBox({ secretKey: config.webhooks.secretKey, keyFile: config.webhooks.keyFile, embedded: config.database.mode === 'embedded' });
  const dispatcher = webhookBox
    ? new WebhookDispatcher({ db, box: webhookBox, log: webhookLog, registry: metrics.registry, ...config.webhooks })
    : null;
  if (!dispatcher) log.info('webhook deliveries are off on this gateway: WEBHOOK_SECRET_ENCRYPTION_KEY is not set (events still queue in the outbox)');
  const wakeDispatcher = () => dispatcher?.kick();
  const limits = new RateLimitService({
    config,
    log: log.child({ component: 'ratelimit' }),
    metrics,
    readiness,
    redis,
    // A quota counter Redis lost is rebuilt from what Postgres says was billed.
    billedUnits: (tenantId, from, to, apiKeyId) => billedComputeUnits(db, tenantId, from, to, apiKeyId),
    // Money budgets: charged at the price book's price, rebuilt from the invoice's own sum.
    priceAt: (tenantId, model, at) => billing.priceAt(tenantId, model, at),
    spendMicros: (tenantId, from, to, currency, apiKeyId) => billing.spendMicros(tenantId, from, to, currency, apiKeyId),
    // Credit balances: rebuilt from the ledger and the billed usage.
    creditBalance: (tenantId, apiKeyId, from, to, refill) => creditBalanceFromLedger(db, tenantId, apiKeyId, from, to, refill),
    // credits.exhausted webhooks: written to the outbox off the request path when a balance reaches 0.
    onDecision: creditAlerts({ db, log: webhookLog, onEvents: wakeDispatcher }),
  });
  const keys = new KeyService(db, auth, log.child({ component: 'keys' }), config.keys.environment, limits, webhookKeyEvents(wakeDispatcher), {
    requestsPerMinute: config.limits.defaultRequestsPerMinute,
    computeUnitsPerMinute: config.limits.defaultComputeUnitsPerMinute,
  });
  const webhooks = new WebhookService({
    db,
    tenants: keys,
    box: webhookBox,
    log: webhookLog,
    allowPrivateAddresses: config.webhooks.allowPrivateAddresses,
    keyExpiryDays: config.webhooks.keyExpiryDays,
    keyExpiryScanIntervalMs: config.webhooks.keyExpiryScanIntervalMs,
    retentionDays: config.webhooks.retentionDays,
    onEvents: wakeDispatcher,
  });
  if (config.bootstrap.enabled) bootstrapFirstAdminOnStart({ config, db, keys, readiness, log: log.child({ component: 'bootstrap' }) });
  const credits = new CreditService(db, limits);

  const usage = new UsageService({
    config: config.usage,
    db,
    log: log.child({ component: 'usage' }),
    registry: metrics.registry,
    // Quota/budget thresholds and rate-limit bursts, in each usage batch's own transaction.
    commitHook: new UsageAlerts({ defaultMonthlyQuota: config.limits.defaultMonthlyComputeUnitQuota, rateLimitBurst: config.webhooks.rateLimitBurst, onEvents: wakeDispatcher }),
  });
  await usage.start();
  // Shown, never failing /readyz: while Postgres is down records wait durably in the log (spooled).
  readiness.register(
    'usage',
    () => {
      const s = usage.stats();
      return {
        ready: true,
        detail: {
          spooledRecords: s.spooled,
          walUncommittedRecords: s.walUncommitted,
          walLagMs: Math.round(s.walLagMs),
          walSegments: s.walSegments,
          quarantinedLines: s.quarantinedLines,
          // A segment the replay cannot write while the database answers: metering of its records waits for a person.
          ...(s.stuck.length > 0
            ? { stuckSegments: s.stuck.map((x) => ({ file: path.basename(x.file), attempts: x.attempts, stuckForMs: Date.now() - x.since, error: x.error })) }
            : {}),
        },
      };
    },
    { required: false },
  );

  const inference = new InferenceService(config, metrics, readiness, log.child({ component: 'inference' }));

  const pipeline = new InferencePipeline({ auth, limits, usage, engine: inference });

  const services: Services = { config, log, db, redis, metrics, readiness, lifecycle, inference, pipeline, startedAt: Date.now(), auth, keys, limits, usage, billing, credits, webhooks };

  const tracing = createTracing(config.tracing, log.child({ component: 'tracing' }));
  if (tracing.exporting) log.info({ tracesUrl: config.tracing.exporter?.url, sampler: config.tracing.sampler }, 'exporting traces over OTLP/HTTP');

  const apollo = await createApollo(config);
  const inFlight = new InFlightRequests(metrics);
  const routes: RouteEntry[] = [];
  const app = buildHttpServer(services, apollo, inFlight, tracing, routes);

  const drain = new ConnectionDrain(app.server);
  lifecycle.onShutdown('http', 'stopAccepting', () => closeHttp(app, drain, config.shutdownDrainTimeoutMs, log));
  // After the drain (the last requests' spans are ended), and after usage (registered
  // before it, so it runs after it): an unreachable collector must not hold up metering.
  lifecycle.onShutdown('tracing', 'flush', () => tracing.shutdown());
  lifecycle.onShutdown('usage', 'flush', () => usage.close());
  // Stops claiming once requests drained; attempts in flight finish (bounded by WEBHOOK_TIMEOUT_MS), the rest wait for any replica.
  lifecycle.onShutdown('webhooks', 'drain', async () => {
    await webhooks.close();
    await dispatcher?.close();
  });
  lifecycle.onShutdown('apollo', 'close', () => apollo.stop());
  // Workers stop after in-flight requests drained (stopAccepting waits for them).
  lifecycle.onShutdown('inference', 'close', () => inference.close());
  lifecycle.onShutdown('database', 'close', () => db.close().finally(() => dataDirLock?.release()));
  lifecycle.onShutdown('ratelimit', 'close', async () => limits.close());
  lifecycle.onShutdown('auth', 'close', () => auth.close());
  if (redis) {
    const r = redis;
    lifecycle.onShutdown('redis', 'close', () => r.close());
  }

  // Connecting happens in the background: the HTTP server answers /healthz
  // and reports a 503 /readyz while the database is still coming up.
  void db.start();
  void db.whenReady().then(() => {
    if (services.lifecycle.isShuttingDown) return;
    webhooks.start();
    dispatcher?.start();
  }, () => undefined);
  // Models load in the background too; /readyz lists each model's status.
  const modelsLoaded = inference.start();
  // The loop-delay metric counts from the first ready moment: start-up blocks the loop by design.
  void Promise.allSettled([db.whenReady(), modelsLoaded]).then(() => metrics.resetEventLoopDelay());

  return {
    app,
    services,
    apollo,
    async listen() {
      return app.listen({ port: config.port, host: config.host });
    },
    close: (reason = 'close', shutdownOptions = {}) => lifecycle.shutdown(reason, shutdownOptions),
    untilReady: async () => {
      while (!readiness.report().ready) await new Promise((resolve) => setTimeout(resolve, 100));
    },
    // Records already in the write-ahead log survive a forced exit (replayed at the next start); only those awaiting their group commit do not.
    pendingWork: () => ({ inFlightRequests: inFlight.count, unwrittenUsageRecords: usage.stats().pending }),
    routes,
  };
}

/** How long idle connections are held after the listener closes, for requests already on their way (connection-drain.ts). */
const IDLE_CONNECTION_WINDOW_MS = 1000;

/**
 * Stops accepting connections, answers requests already on their way and lets
 * in-flight ones finish (each answer says Connection: close), and cuts what is
 * left at the drain timeout.
 */
async function closeHttp(app: FastifyInstance, drain: ConnectionDrain, drainTimeoutMs: number, log: Logger): Promise<void> {
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

function buildHttpServer(services: Services, apollo: ApolloServer<GraphQLContext>, inFlight: InFlightRequests, tracing: Tracing, routes: RouteEntry[]): FastifyInstance {
  const { config, log, metrics, readiness } = services;
  const app = Fastify({
    // pino's Logger is what fastify expects at run time; its type differs only in generics.
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines are logged by our onResponse hook (debug), with the request id.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
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
    maxParamLength: 256,
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

  registerGraphiql(app);
  registerConsole(app);
  registerOpenApi(app);
  registerUsageRoutes(app, services);
  registerOipRoutes(app, services);
  const apolloHandler = fastifyApolloHandler(apollo, {
    context: async (request: FastifyRequest, reply): Promise<GraphQLContext> => {
      const context: GraphQLContext = {
        requestId: request.id,
        // request.log is a pino child logger carrying the request id.
        log: request.log as unknown as Logger,
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
          context.principal = await services.auth.authenticate(request.headers);
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
    },
  });
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
