/**
 * Builds the services of one gateway process (the composition root's core
 * half): database, Redis, auth, limits, keys, billing, webhooks, usage,
 * inference and the request pipeline, each given its collaborators here.
 */
import path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import { Database } from '../db/database';
import { RedisConnection } from '../redis/redis';
import type { Metrics } from '../metrics/metrics';
import type { Readiness } from '../health/readiness';
import type { Lifecycle } from './lifecycle';
import type { Services } from '../server/services';
import { InferenceService } from '../inference/inference.service';
import { InferencePipeline } from '../inference/pipeline';
import { ModelFleet } from '../inference/fleet';
import { PostgresWeightStore } from '../inference/weight-store';
import { WeightCache } from '../inference/weight-cache';
import { ResponseCache } from '../inference/response-cache';
import { UsageService } from '../usage/usage.service';
import { UsagePartitions } from '../usage/usage-partitions';
import { RateLimitService } from '../ratelimit/ratelimit.service';
import { Authenticator } from '../auth/authenticator';
import { ConsoleSessions } from '../auth/console-sessions';
import { OidcSignIn } from '../auth/oidc';
import { PriceBook } from '../billing/price-book';
import { CreditService, creditBalanceFromLedger } from '../billing/credits';
import { billedComputeUnits } from '../billing/billed-units';
import { bootstrapFirstAdminOnStart } from '../keys/first-admin';
import { KeyService } from '../keys/key.service';
import { registerOutageReadiness } from '../health/outage-readiness';
import { loadSecretBox } from '../webhooks/secret-box';
import { WebhookDispatcher } from '../webhooks/dispatcher';
import { WebhookService } from '../webhooks/webhook.service';
import { UsageAlerts } from '../webhooks/usage-alerts';
import { webhookKeyEvents } from '../webhooks/key-events';
import { creditAlerts } from '../webhooks/credit-alerts';

export interface BuiltServices {
  services: Services;
  /** Delivers webhook events; null when WEBHOOK_SECRET_ENCRYPTION_KEY is not set (events still queue). */
  dispatcher: WebhookDispatcher | null;
}

/** Why over 80 lines: one straight list of constructions in dependency order; splitting it would scatter the wiring this file exists to show. */
export async function buildServices(config: Config, log: Logger, core: { metrics: Metrics; readiness: Readiness; lifecycle: Lifecycle }): Promise<BuiltServices> {
  const { metrics, readiness, lifecycle } = core;
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

  // LISTEN holds a session: through a transaction pooler it needs the direct connection.
  const pgListenUrl = config.database.mode === 'postgres' ? (config.database.directUrl ?? config.database.url) : undefined;
  const auth = new Authenticator({ config, db, redis, log: log.child({ component: 'auth' }), metrics, pgListenUrl });
  auth.start();
  registerOutageReadiness({ config, db, auth, metrics }, readiness);
  // A price for the current hour drops the money-budget counters (rebuilt from the repriced spend).
  const billing: PriceBook = new PriceBook(db, Date.now, { resetSpend: (tenantId): Promise<void> => limits.resetSpend(tenantId) });
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
  // UsageRecord's monthly partitions: made ahead, split out of the default partition, dropped past the retention.
  const usagePartitions = new UsagePartitions({
    db,
    log: log.child({ component: 'usage-partitions' }),
    monthsAhead: config.usage.partitionMonthsAhead,
    retentionMonths: config.usage.retentionMonths,
    intervalMs: config.usage.partitionMaintenanceIntervalMs,
  });
  usagePartitions.start();
  // A step in progress finishes (or rolls back) before the database closes.
  lifecycle.onShutdown('usage-partitions', 'drain', () => usagePartitions.close());
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

  // Answers of models that opt in; a load, reload or unload drops that model's.
  const cache = new ResponseCache(config.responseCache, metrics.registry);
  inference.registry.onVersionChange((model) => cache.invalidate(model));
  const pipeline = new InferencePipeline({ auth, limits, usage, engine: inference, cache });

  // The fleet-wide model catalog (issue #23): weights in Postgres, cached locally by digest.
  const weightStore = new PostgresWeightStore(db);
  const fleet = new ModelFleet(db, inference.registry, weightStore, new WeightCache(config.models.cacheDir, weightStore), {
    uploadMaxBytes: config.models.uploadMaxBytes,
    tenantMaxModels: config.models.tenantMaxModels,
    tenantMaxBytes: config.models.tenantMaxBytes,
    reconcileIntervalMs: config.models.reconcileIntervalMs,
    validateTimeoutMs: config.models.validateTimeoutMs,
    validateMaxMemoryBytes: config.models.validateMaxMemoryBytes,
    heartbeatMs: config.models.replicaHeartbeatMs,
    blobGcGraceMs: config.models.blobGcGraceMs,
    listenUrl: pgListenUrl,
  }, log.child({ component: 'model-catalog' }));
  // A fresh replica converges on the catalog before it reports ready (a database outage is reported by `database`).
  readiness.register('modelCatalog', () => ({
    ready: fleet.firstReconcileDone || db.state === 'down',
    detail: fleet.readinessDetail(),
  }));

  // Console sign-in (issue #26): sessions in Postgres, bound to a key; an OIDC sign-in mints one for the person.
  const sessions = new ConsoleSessions({
    db,
    auth,
    timeouts: config.console,
    log: log.child({ component: 'console-sessions' }),
    minter: {
      mint: async ({ tenant, scopes, subject, expiresAt }) => {
        const created = await keys.createApiKey({ principal: null, actor: `oidc:${subject}` }, { tenant, name: `console sign-in: ${subject}`.slice(0, 100), scopes, expiresAt });
        return { apiKeyId: created.apiKey.id, hash: created.apiKey.hash, prefix: created.apiKey.prefix };
      },
      revoke: async (apiKeyId, subject) => {
        await keys.revokeApiKey({ principal: null, actor: `oidc:${subject}` }, apiKeyId);
      },
    },
  });
  const oidc = config.console.oidc ? new OidcSignIn(config.console.oidc, log.child({ component: 'oidc' })) : null;

  const services: Services = { config, log, db, redis, metrics, readiness, lifecycle, inference, models: inference, fleet, pipeline, startedAt: Date.now(), auth, sessions, oidc, keys, limits, usage, billing, credits, webhooks };
  return { services, dispatcher };
}
