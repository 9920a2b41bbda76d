/**
 * Assembles one gateway process: the services (services.ts), Apollo, the HTTP
 * server and its routes (http-server.ts), and the shutdown order.
 * `createGateway` does not listen;
 * `Gateway.listen` does, so tests can start as many as they need.
 */
import type { FastifyInstance } from 'fastify';
import type { ApolloServer } from '@apollo/server';
import type { Config } from '../config';
import { createLogger, type Logger } from '../log/logger';
import { DataDirLock } from '../db/data-dir-lock';
import { Metrics } from '../metrics/metrics';
import { Readiness } from '../health/readiness';
import { Lifecycle, type ShutdownOptions } from './lifecycle';
import { InFlightRequests } from './in-flight';
import { ConnectionDrain } from './connection-drain';
import { buildServices } from './services';
import { buildHttpServer, closeHttp, type RouteEntry } from './http-server';
import type { Services } from '../server/services';
import type { GraphQLContext } from '../server/graphql/context';
import { createApollo } from '../server/graphql/apollo';
import { createTracing, type Tracing } from '../tracing/tracing';
import { GrpcDoor } from '../server/grpc/grpc.server';
import { maxJsonValues } from '../server/rest/http-errors';

export { requestIdFor, type RouteEntry } from './http-server';

export interface Gateway {
  app: FastifyInstance;
  services: Services;
  apollo: ApolloServer<GraphQLContext>;
  /** Starts listening (HTTP, and gRPC unless GRPC_PORT=0); resolves with the HTTP base URL. */
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

export interface GatewayOptions {
  logger?: Logger;
}

export async function createGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.logger ?? createLogger({ level: config.logLevel, pretty: config.logPretty });
  // Before anything touches DATA_DIR (the database, the usage log): one process per embedded directory.
  const dataDirLock = config.database.mode === 'embedded' ? await DataDirLock.acquire(DataDirLock.dirFor(config.database.dataDir), 'gateway') : null;
  const metrics = new Metrics();
  const readiness = new Readiness();
  const lifecycle = new Lifecycle(log);

  const { services, dispatcher } = await buildServices(config, log, { metrics, readiness, lifecycle });
  const { db, usage } = services;

  const tracing = createTracing(config.tracing, log.child({ component: 'tracing' }));
  if (tracing.exporting) log.info({ tracesUrl: config.tracing.exporter?.url, sampler: config.tracing.sampler }, 'exporting traces over OTLP/HTTP');

  const apollo = await createApollo(config);
  const inFlight = new InFlightRequests(metrics);
  const routes: RouteEntry[] = [];
  const app = buildHttpServer(services, apollo, inFlight, tracing, routes);

  const drain = new ConnectionDrain(app.server);
  const grpc = buildGrpcDoor(services, tracing);
  registerShutdown(services, lifecycle, { app, drain, grpc, tracing, apollo, dispatcher, dataDirLock });
  const modelsLoaded = startInBackground(services, dispatcher);
  // The loop-delay metric counts from the first ready moment: start-up blocks the loop by design.
  void Promise.allSettled([db.whenReady(), modelsLoaded]).then(() => metrics.resetEventLoopDelay());

  return {
    app,
    services,
    apollo,
    async listen() {
      const url = await app.listen({ port: config.port, host: config.host });
      if (grpc) {
        const port = await grpc.listen(config.host, config.grpcPort);
        log.info({ host: config.host, port }, `gRPC (Open Inference Protocol) listening on ${config.host}:${port}`);
      }
      return url;
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

interface ShutdownParts {
  app: ReturnType<typeof buildHttpServer>;
  drain: ConnectionDrain;
  grpc: GrpcDoor | null;
  tracing: ReturnType<typeof createTracing>;
  apollo: Awaited<ReturnType<typeof createApollo>>;
  dispatcher: Awaited<ReturnType<typeof buildServices>>['dispatcher'];
  dataDirLock: DataDirLock | null;
}

/** The shutdown order, phase by phase (Lifecycle runs them in registration order within a phase). */
function registerShutdown(services: Services, lifecycle: Lifecycle, parts: ShutdownParts): void {
  const { config, log, db, redis, inference, usage, limits, auth, webhooks } = services;
  const { app, drain, grpc, tracing, apollo, dispatcher, dataDirLock } = parts;
  // Both doors stop taking new calls at once and drain together.
  lifecycle.onShutdown('http', 'stopAccepting', async () => {
    await Promise.all([closeHttp(app, drain, config.shutdownDrainTimeoutMs, log), grpc?.close(config.shutdownDrainTimeoutMs)]);
  });
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
  lifecycle.onShutdown('inference', 'close', async () => {
    await services.fleet.close();
    await inference.close();
  });
  lifecycle.onShutdown('database', 'close', () => db.close().finally(() => dataDirLock?.release()));
  lifecycle.onShutdown('ratelimit', 'close', async () => limits.close());
  lifecycle.onShutdown('auth', 'close', () => auth.close());
  if (redis) {
    const r = redis;
    lifecycle.onShutdown('redis', 'close', () => r.close());
  }
}

/** Database, webhooks and models start in the background; resolves once the models (and the catalog's first reconcile) are in. */
function startInBackground(services: Services, dispatcher: ShutdownParts['dispatcher']): Promise<void> {
  const { db, inference, webhooks } = services;
  // Connecting happens in the background: the HTTP server answers /healthz
  // and reports a 503 /readyz while the database is still coming up.
  void db.start();
  void db.whenReady().then(() => {
    if (services.lifecycle.isShuttingDown) return;
    webhooks.start();
    dispatcher?.start();
  }, () => undefined);
  // Models load in the background too; /readyz lists each model's status.
  // Then the catalog: a fresh replica applies every change made while it was down, and listens for the next.
  return inference.start().then(async () => {
    if (services.lifecycle.isShuttingDown) return;
    services.fleet.start();
    await services.fleet.initialReconcile();
  });
}

/** The gRPC door on its own port (null when GRPC_PORT=0): the same pipeline, readiness and drain as HTTP. */
function buildGrpcDoor(services: Services, tracing: Tracing): GrpcDoor | null {
  const { config, readiness, lifecycle } = services;
  if (config.grpcPort === 0) return null;
  return new GrpcDoor({
    pipeline: services.pipeline,
    models: services.models,
    fleet: services.fleet,
    ready: () => readiness.report().ready && !lifecycle.isShuttingDown,
    bodyLimitBytes: config.bodyLimitBytes,
    maxTimeoutMs: config.models.maxTimeoutMs,
    maxMessageValues: maxJsonValues(config.graphql.maxListElements),
    tracing,
    log: services.log.child({ component: 'grpc' }),
  });
}
