/**
 * The services one gateway process holds. Built once at start (see app.ts)
 * and handed to resolvers through the GraphQL context.
 */
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import type { Database } from '../db/database';
import type { RedisConnection } from '../redis/redis';
import type { Metrics } from '../metrics/metrics';
import type { Readiness } from '../health/readiness';
import type { InferenceService } from '../inference/inference.service';
import type { InferencePipeline } from '../inference/pipeline';
import type { ModelCatalog } from '../inference/model-catalog';
import type { ModelFleet } from '../inference/fleet';
import type { RateLimitService } from '../ratelimit/ratelimit.service';
import type { UsageService } from '../usage/usage.service';
import type { Authenticator } from '../auth/authenticator';
import type { ConsoleSessions } from '../auth/console-sessions';
import type { OidcSignIn } from '../auth/oidc';
import type { KeyService } from '../keys/key.service';
import type { PriceBook } from '../billing/price-book';
import type { CreditService } from '../billing/credits';
import type { WebhookService } from '../webhooks/webhook.service';

export interface Services {
  config: Config;
  log: Logger;
  db: Database;
  /** null in embedded mode (no REDIS_URL). */
  redis: RedisConnection | null;
  metrics: Metrics;
  readiness: Readiness;
  /** The process's shutdown state (the composition root's Lifecycle). */
  lifecycle: ShutdownState;
  inference: InferenceService;
  /** The served models, as the doors read them (the inference service). */
  models: ModelCatalog;
  /** The fleet-wide model catalog: load, unload, reload and publish act on every replica (issue #23). */
  fleet: ModelFleet;
  /** The one inference request path (authenticate, limits, validate, run, usage) every front door calls. */
  pipeline: InferencePipeline;
  /** Rate limits and quotas (issue #6). */
  limits: RateLimitService;
  /** Usage records: the request path's sink (`record`) and the billing queries. */
  usage: UsageService;
  startedAt: number;
  /** Verifies API keys (cached, invalidated over Redis pub/sub). */
  auth: Authenticator;
  /** Web console sessions: a key or an OIDC sign-in exchanged for an HttpOnly cookie (issue #26). */
  sessions: ConsoleSessions;
  /** OIDC sign-in for the console; null when OIDC_ISSUER_URL is not set. */
  oidc: OidcSignIn | null;
  /** Tenants, API keys and their audit trail. */
  keys: KeyService;
  /** Prices, spend and invoices (issue #17). */
  billing: PriceBook;
  /** Credit top-ups (the ledger); the balances live in the limiter. */
  credits: CreditService;
  /** Webhook endpoints, the delivery log and key.expiring scans (issue #17). */
  webhooks: WebhookService;
}

/** What a door reads of the process lifecycle (src/app/lifecycle.ts owns it). */
export interface ShutdownState {
  readonly isShuttingDown: boolean;
  readonly state: string;
}
