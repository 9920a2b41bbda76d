/**
 * The one place that reads environment variables. Everything is parsed and
 * validated at start-up; a bad value stops the process with a message that
 * names the variable, instead of failing later in some request.
 */
import path from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { isWellFormedKey } from '../ids/key-format';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], {
    errorMap: () => ({ message: 'expected true or false' }),
  })
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const url = (protocols: string[]) =>
  z
    .string()
    .url('expected a URL')
    .refine((v) => protocols.some((p) => v.startsWith(`${p}://`)), {
      message: `expected a URL starting with ${protocols.map((p) => `${p}://`).join(' or ')}`,
    });

/** onnxruntime execution providers modelgate knows, in no particular order. */
export const EXECUTION_PROVIDER_NAMES = ['cuda', 'cpu'] as const;
export type ExecutionProviderName = (typeof EXECUTION_PROVIDER_NAMES)[number];

const providers = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))
  .pipe(z.array(z.enum(EXECUTION_PROVIDER_NAMES)).min(1, 'name at least one provider'));

/** OTEL_TRACES_SAMPLER values (the OpenTelemetry SDK specification's names). */
export const TRACE_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type TraceSamplerName = (typeof TRACE_SAMPLERS)[number];

/** OTLP headers: `key=value,key2=value2`, values percent-encoded (the OTLP exporter specification). */
const otlpHeaders = z.string().transform((v, ctx) => {
  const headers: Record<string, string> = {};
  for (const pair of v.split(',')) {
    if (pair.trim() === '') continue;
    const at = pair.indexOf('=');
    const name = at > 0 ? pair.slice(0, at).trim() : '';
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected key=value pairs separated by commas' });
      return z.NEVER;
    }
    try {
      headers[name.toLowerCase()] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `the value of ${name} is not valid percent-encoding` });
      return z.NEVER;
    }
  }
  return headers;
});

/** Every variable modelgate reads, with its default. `.env.example` documents each. */
const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(0, 65535).default('4000'),
  HOST: z.string().min(1).default('0.0.0.0'),
  // The Open Inference Protocol over gRPC (Triton's port); 0 serves no gRPC.
  GRPC_PORT: int(0, 65535).default('8001'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool.optional(),

  DATABASE_URL: url(['postgres', 'postgresql']).optional(),
  // A session connection to the same database for what transaction pooling (PgBouncer) cannot carry:
  // LISTEN (key invalidations) and migrations (the schema engine's session advisory lock).
  DATABASE_DIRECT_URL: url(['postgres', 'postgresql']).optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_POOL_SIZE: int(1, 200).default('10'),
  DATABASE_CONNECT_RETRY_MAX_MS: int(100, 600_000).default('30000'),
  MIGRATE_ON_START: bool.default('true'),

  REDIS_URL: url(['redis', 'rediss']).optional(),
  REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9:_\-.]*$/, 'letters, digits and : _ - . only').default('mg:'),

  MODEL_REPOSITORY: z.string().min(1).default('models'),
  EXECUTION_PROVIDERS: providers.default('cpu'),
  // The fleet-wide model catalog (issue #23): where this replica caches published weights by digest,
  // how often it reconciles with the catalog (catching missed notifications), and the upload bound.
  MODEL_CACHE_DIR: z.string().min(1).optional(),
  MODEL_RECONCILE_INTERVAL_MS: int(100, 3_600_000).default('30000'),
  MODEL_UPLOAD_MAX_BYTES: int(1, 4_294_967_296).default('268435456'),
  // Per tenant, its private models (names "<tenant id>.<name>") desired LOADED, and their weights' bytes.
  MODEL_TENANT_MAX_MODELS: int(0, 1_000_000).default('20'),
  MODEL_TENANT_MAX_BYTES: int(0, 1_099_511_627_776).default('2147483648'),
  // Uploads are opened in a child process bounded in time and resident memory (issue #23 item 7).
  MODEL_VALIDATE_TIMEOUT_MS: int(100, 3_600_000).default('120000'),
  MODEL_VALIDATE_MAX_MEMORY_BYTES: int(16_777_216, 1_099_511_627_776).default('4294967296'),
  // Each replica reports its applied catalog generation in Postgres this often (gone after 3 missed beats).
  MODEL_REPLICA_HEARTBEAT_MS: int(100, 600_000).default('5000'),
  // Weights no catalog version names (and unfinished uploads) are deleted once this old.
  MODEL_BLOB_GC_GRACE_MS: int(0, 2_592_000_000).default('3600000'),
  INFERENCE_WORKERS: int(1, 256).optional(),
  // One gateway process per core on a big host ('auto'), all behind one port.
  GATEWAY_PROCESSES: z.union([z.literal('auto'), int(1, 1024)]).default('1'),
  // Set by the primary for a replacement process: take connections only once ready.
  GATEWAY_LISTEN_WHEN_READY: bool.default('false'),
  INFERENCE_INTRA_OP_THREADS: int(1, 256).default('1'),
  // Workers beyond INFERENCE_WORKERS that run batches only while the event loop is mostly idle.
  INFERENCE_IDLE_LOOP_WORKERS: int(0, 256).optional(),
  // Linux nice value of the model threads (each worker and the onnxruntime threads it starts); above
  // 0, a saturated CPU serves the event loop first. Off by default: no gain measured here (README).
  INFERENCE_WORKER_NICE: int(0, 19).default('0'),
  INFERENCE_DEFAULT_TIMEOUT_MS: int(1, 600_000).default('10000'),
  INFERENCE_MAX_TIMEOUT_MS: int(1, 600_000).default('60000'),
  INFERENCE_MAX_QUEUE_SIZE: int(1, 1_000_000).default('1024'),
  INFERENCE_MAX_ITEMS_PER_REQUEST: int(1, 100_000).default('256'),
  INFERENCE_MAX_BYTES_PER_REQUEST: int(1, 1_073_741_824).default('16777216'),
  // Response cache (issue #25): bytes of cached answers per process (0: off for every model), and
  // the share of a request's compute units a cache hit is billed (rounded up to whole units).
  RESPONSE_CACHE_MAX_BYTES: int(0, 68_719_476_736).default('67108864'),
  RESPONSE_CACHE_BILLED_FRACTION: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'a number from 0 to 1')
    .transform(Number)
    .pipe(z.number().min(0).max(1))
    .default('0.1'),

  // Keys (issue #5)
  KEY_CACHE_TTL_MS: int(0, 10_000).default('10000'),
  KEY_CACHE_MAX_ENTRIES: int(1, 10_000_000).default('100000'),
  // While the database is unreachable, a key verified at most this long ago is still served from the cache (0: never).
  KEY_CACHE_STALE_MAX_MS: int(0, 86_400_000).default('300000'),
  KEY_LAST_USED_GRANULARITY_MS: int(1000, 86_400_000).default('60000'),
  KEY_ENVIRONMENT: z.enum(['live', 'test']).default('live'),
  // First start: create the first admin key (printed once on stderr) when the database never had one.
  BOOTSTRAP_ADMIN: bool.default('true'),
  // ...or store this key as that first admin key instead of a random one (never printed).
  MODELGATE_BOOTSTRAP_KEY: z.string().refine(isWellFormedKey, 'expected a modelgate key (mg_live_… or mg_test_…, e.g. from `modelgate keys generate`)').optional(),

  // Web console sessions (issue #26): a key (or an OIDC sign-in) exchanged for an HttpOnly cookie.
  CONSOLE_SESSION_IDLE_TIMEOUT_MS: int(1000, 86_400_000).default('1800000'),
  CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS: int(1000, 2_592_000_000).default('28800000'),
  // auto: Secure when the request came over TLS (behind a TLS-terminating proxy set it to always).
  CONSOLE_SESSION_COOKIE_SECURE: z.enum(['auto', 'always', 'never']).default('auto'),
  // The request log links each record's trace id here ({traceId} replaced), e.g. a Jaeger or Tempo UI; unset: the id is shown as text.
  CONSOLE_TRACE_URL_TEMPLATE: url(['http', 'https'])
    .refine((v) => v.includes('{traceId}'), 'expected {traceId} in the URL, e.g. http://jaeger:16686/trace/{traceId}')
    .optional(),
  // OIDC single sign-on for the console; off unless OIDC_ISSUER_URL is set (then the rest are checked).
  OIDC_ISSUER_URL: url(['http', 'https']).optional(),
  OIDC_CLIENT_ID: z.string().min(1).optional(),
  OIDC_CLIENT_SECRET: z.string().min(1).optional(),
  OIDC_REDIRECT_URL: url(['http', 'https']).optional(),
  OIDC_SCOPES: z.string().min(1).default('openid email profile'),
  OIDC_ROLE_CLAIM: z.string().regex(/^[A-Za-z0-9_:./-]+$/, 'a claim name').default('roles'),
  // role=scope,scope;role2=scope: which gateway scopes each provider role grants (a person gets the union).
  OIDC_ROLE_SCOPES: z.string().optional(),
  // The tenant (name) an OIDC sign-in acts in.
  OIDC_TENANT: z.string().min(1).optional(),

  // Rate limits and quotas (issue #6); a tenant or key override replaces these defaults.
  DEFAULT_REQUESTS_PER_MINUTE: int(1, 100_000_000).default('600'),
  DEFAULT_COMPUTE_UNITS_PER_MINUTE: int(1, 1_000_000_000).default('6000'),
  DEFAULT_MONTHLY_COMPUTE_UNIT_QUOTA: int(0, 2_000_000_000).optional(),
  RATE_LIMIT_FAILURE_MODE: z.enum(['open', 'closed']).default('open'),
  RATE_LIMITS_ENABLED: bool.default('true'),

  // Usage records (issue #7)
  USAGE_FLUSH_INTERVAL_MS: int(10, 60_000).default('250'),
  USAGE_FLUSH_BATCH_SIZE: int(1, 50_000).default('4000'),
  USAGE_BUFFER_MAX_RECORDS: int(100, 10_000_000).default('100000'),
  USAGE_SPOOL_DIR: z.string().min(1).optional(),
  USAGE_WAL_SEGMENT_MAX_RECORDS: int(100, 10_000_000).default('50000'),
  // UsageRecord's monthly partitions (issue #27): made this many months ahead, at start and every interval.
  USAGE_PARTITION_MONTHS_AHEAD: int(1, 24).default('3'),
  USAGE_PARTITION_MAINTENANCE_INTERVAL_MS: int(1000, 7 * 24 * 3_600_000).default(String(6 * 3_600_000)),
  // Raw records are kept for the current month and this many before it (whole partitions dropped); unset: kept forever.
  // The hourly and daily rollups are never dropped, so summaries and invoices of older months keep their totals.
  USAGE_RETENTION_MONTHS: int(1, 1200).optional(),

  // Webhooks (issue #17): 32 bytes, base64 or hex, the same on every replica; unset in embedded mode: a key file in DATA_DIR.
  WEBHOOK_SECRET_ENCRYPTION_KEY: z
    .string()
    .refine((v) => secretKeyBytes(v) !== null, 'expected 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)')
    .optional(),
  WEBHOOK_POLL_INTERVAL_MS: int(10, 600_000).default('1000'),
  WEBHOOK_TIMEOUT_MS: int(100, 120_000).default('10000'),
  WEBHOOK_MAX_ATTEMPTS: int(1, 100).default('12'),
  WEBHOOK_RETRY_BASE_MS: int(10, 3_600_000).default('5000'),
  WEBHOOK_RETRY_MAX_MS: int(10, 86_400_000).default('3600000'),
  WEBHOOK_DISPATCH_CONCURRENCY: int(1, 1000).default('16'),
  WEBHOOK_KEY_EXPIRY_DAYS: int(1, 365).default('7'),
  WEBHOOK_KEY_EXPIRY_SCAN_INTERVAL_MS: int(100, 86_400_000).default('60000'),
  // RATE_LIMITED requests of one key within one UTC minute that make a ratelimit.breached event.
  WEBHOOK_RATE_LIMIT_BURST: int(1, 1_000_000).default('100'),
  // Outbox rows (events and their delivery log) older than this are deleted; at least 40 so no dedupe key of a live period goes.
  WEBHOOK_RETENTION_DAYS: int(40, 3650).default('90'),
  // Off: webhook URLs that name or resolve to loopback, private or link-local addresses are refused (SSRF).
  WEBHOOK_ALLOW_PRIVATE_ADDRESSES: bool.default('false'),

  BODY_LIMIT_BYTES: int(1024, 1_073_741_824).default('20971520'),
  SHUTDOWN_DRAIN_TIMEOUT_MS: int(0, 600_000).default('10000'),
  SHUTDOWN_READINESS_GRACE_MS: int(0, 600_000).default('5000'),

  GRAPHQL_INTROSPECTION: bool.optional(),
  GRAPHQL_MAX_DEPTH: int(1, 100).default('12'),
  GRAPHQL_MAX_ALIASES: int(1, 1000).default('30'),
  GRAPHQL_MAX_TOKENS: int(10, 1_000_000).default('5000'),
  GRAPHQL_MAX_COST: int(1, 10_000_000).default('20000'),
  // JSON list values per request (all variables together): each costs event-loop time to coerce.
  GRAPHQL_MAX_LIST_ELEMENTS: int(1, 10_000_000).default('16384'),

  // OpenTelemetry tracing: the SDK's standard variables. Spans are exported only when an endpoint is set.
  OTEL_SDK_DISABLED: bool.default('false'),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none']).default('otlp'),
  OTEL_EXPORTER_OTLP_ENDPOINT: url(['http', 'https']).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url(['http', 'https']).optional(),
  OTEL_EXPORTER_OTLP_HEADERS: otlpHeaders.optional(),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: otlpHeaders.optional(),
  // One export's limit, retries included (the exporter retries a refused or failed send with backoff).
  OTEL_EXPORTER_OTLP_TIMEOUT: int(1, 600_000).default('10000'),
  OTEL_SERVICE_NAME: z.string().min(1).max(256).default('modelgate'),
  OTEL_TRACES_SAMPLER: z.enum(TRACE_SAMPLERS).default('parentbased_always_on'),
  // Batch span processor: how often spans are sent, how many may wait (beyond it new ones are dropped).
  OTEL_BSP_SCHEDULE_DELAY: int(1, 600_000).default('5000'),
  OTEL_BSP_MAX_QUEUE_SIZE: int(1, 1_000_000).default('2048'),
  OTEL_TRACES_SAMPLER_ARG: z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'expected a probability between 0 and 1')
    .transform(Number)
    .optional(),
});

export type Env = z.input<typeof envSchema>;

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  /** Gateway processes sharing the port (node:cluster); 1 runs the gateway in this process. */
  processes: number;
  /** Listen only once /readyz would say ready (a replacement joining processes that already serve the port). */
  listenWhenReady: boolean;
  port: number;
  host: string;
  /** The gRPC door's port (on `host`); 0: no gRPC listener. */
  grpcPort: number;
  logLevel: string;
  logPretty: boolean;
  /** directUrl: a session connection (DATABASE_DIRECT_URL) for LISTEN and migrations when `url` goes through a transaction pooler; absent: `url`. */
  database: { mode: 'postgres'; url: string; poolSize: number; directUrl?: string } | { mode: 'embedded'; dataDir: string };
  databaseConnectRetryMaxMs: number;
  migrateOnStart: boolean;
  redis: { url: string; keyPrefix: string } | null;
  /** Prefix for Redis keys even in embedded mode (in-process stores use it for names). */
  redisKeyPrefix: string;
  models: {
    repository: string;
    executionProviders: ExecutionProviderName[];
    workers: number;
    /** Extra workers on the event loop's own core, given batches only while the loop is mostly idle. */
    idleLoopWorkers: number;
    intraOpThreads: number;
    /** Nice value of the model threads (Linux; elsewhere ignored). */
    workerNice: number;
    defaultTimeoutMs: number;
    maxTimeoutMs: number;
    maxQueueSize: number;
    maxItemsPerRequest: number;
    maxBytesPerRequest: number;
    /** Local cache of catalog weights, one file per SHA-256 digest (default DATA_DIR/model-cache). */
    cacheDir: string;
    /** Periodic catalog reconcile on each replica (catches missed pg_notify messages). */
    reconcileIntervalMs: number;
    /** Largest model.onnx a publish accepts (raw bytes, before base64). */
    uploadMaxBytes: number;
    /** Per tenant: private models with a LOADED version, and the bytes of their LOADED weights. */
    tenantMaxModels: number;
    tenantMaxBytes: number;
    /** Bounds of the child process that opens an upload before it may serve. */
    validateTimeoutMs: number;
    validateMaxMemoryBytes: number;
    /** How often this replica writes its catalog state to ModelReplica. */
    replicaHeartbeatMs: number;
    /** Age past which unreferenced weights and unfinished uploads are deleted. */
    blobGcGraceMs: number;
  };
  /** Response cache for models whose config.json opts in (`response_cache: { enable: true }`). */
  responseCache: { maxBytes: number; billedFraction: number };
  keys: { cacheTtlMs: number; cacheMaxEntries: number; cacheStaleMaxMs: number; lastUsedGranularityMs: number; environment: 'live' | 'test' };
  /** Web console sessions (src/auth/console-sessions.ts); oidc null: sign-in with a key only. */
  console: ConsoleConfig;
  /** First-start admin key: enabled, and the operator's own key (null: generate one and print it once). */
  bootstrap: { enabled: boolean; key: string | null };
  limits: {
    enabled: boolean;
    failureMode: 'open' | 'closed';
    defaultRequestsPerMinute: number;
    defaultComputeUnitsPerMinute: number;
    /** null: no monthly quota unless a tenant sets one. */
    defaultMonthlyComputeUnitQuota: number | null;
  };
  usage: {
    flushIntervalMs: number;
    flushBatchSize: number;
    bufferMaxRecords: number;
    spoolDir: string;
    walSegmentMaxRecords: number;
    partitionMonthsAhead: number;
    partitionMaintenanceIntervalMs: number;
    /** Whole months of raw records kept before the current one; null: all. */
    retentionMonths: number | null;
  };
  webhooks: {
    /** The AES-256-GCM key for stored endpoint secrets; null: embedded mode uses keyFile, Postgres mode cannot create or deliver webhooks. */
    secretKey: Buffer | null;
    /** Where embedded mode keeps a generated key when WEBHOOK_SECRET_ENCRYPTION_KEY is unset. */
    keyFile: string;
    pollIntervalMs: number;
    timeoutMs: number;
    maxAttempts: number;
    retryBaseMs: number;
    retryMaxMs: number;
    concurrency: number;
    keyExpiryDays: number;
    keyExpiryScanIntervalMs: number;
    rateLimitBurst: number;
    allowPrivateAddresses: boolean;
    retentionDays: number;
  };
  bodyLimitBytes: number;
  shutdownDrainTimeoutMs: number;
  /** After SIGTERM: how long /readyz says 503 while new requests are still served (load balancers' lag). */
  shutdownReadinessGraceMs: number;
  graphql: { introspection: boolean; maxDepth: number; maxAliases: number; maxTokens: number; maxCost: number; maxListElements: number };
  tracing: TracingConfig;
}

export interface ConsoleConfig {
  idleTimeoutMs: number;
  absoluteTimeoutMs: number;
  cookieSecure: 'auto' | 'always' | 'never';
  oidc: OidcConfig | null;
  /** Where the request log links a trace id: a URL with {traceId}; null: the id is shown as text. */
  traceUrlTemplate: string | null;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  /** null: a public client (PKCE only). */
  clientSecret: string | null;
  redirectUrl: string;
  scopes: string;
  roleClaim: string;
  /** Provider role → gateway scopes. */
  roleScopes: Record<string, string[]>;
  tenant: string;
  /** Plain HTTP to the provider: only for a loopback issuer (a provider a test or a laptop runs). */
  allowInsecure: boolean;
}

export interface TracingConfig {
  /** Where spans go (OTLP/HTTP, JSON); null: none are recorded, trace context is still read and answered. */
  exporter: { url: string; headers: Record<string, string>; timeoutMs: number } | null;
  serviceName: string;
  sampler: TraceSamplerName;
  /** The ratio of the *traceidratio samplers (OTEL_TRACES_SAMPLER_ARG, default 1). */
  samplerRatio: number;
  batch: { scheduledDelayMs: number; maxQueueSize: number };
}

/** The traces URL: the signal-specific endpoint as given, else the base endpoint + v1/traces (OTLP exporter specification). */
function tracesUrl(base: string | undefined, traces: string | undefined): string | null {
  if (traces) return traces;
  if (!base) return null;
  return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
}

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the environment; throws ConfigError naming each bad variable.
 * Why over 80 lines: one object literal, a field per setting, mirroring the Config type.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  // An empty string means "not set": docker-compose and shells often pass VAR=.
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') cleaned[key] = value.trim();
  }
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? '?');
        // URLs and headers may carry credentials; keys are secrets.
        const shown = name.includes('URL') || name.endsWith('_KEY') || name.includes('OTLP') ? '' : ` (got ${JSON.stringify(cleaned[name] ?? '')})`;
        return `${name}: ${issue.message}${shown}`;
      }),
    );
  }
  const e = parsed.data;
  if (e.NODE_ENV === 'production' && e.WEBHOOK_SECRET_ENCRYPTION_KEY) {
    const weak = weakSecretKeyReason(e.WEBHOOK_SECRET_ENCRYPTION_KEY);
    if (weak) throw new ConfigError([`WEBHOOK_SECRET_ENCRYPTION_KEY: ${weak}; production refuses it. ${SECRET_KEY_HOW_TO}`]);
  }
  if (e.INFERENCE_DEFAULT_TIMEOUT_MS > e.INFERENCE_MAX_TIMEOUT_MS) {
    throw new ConfigError([
      `INFERENCE_DEFAULT_TIMEOUT_MS: must not exceed INFERENCE_MAX_TIMEOUT_MS (${e.INFERENCE_MAX_TIMEOUT_MS})`,
    ]);
  }
  const consoleConfig = consoleConfigFrom(e);
  // A publish's weights sit unreferenced while they are inspected: GC must not take them meanwhile.
  if (e.MODEL_BLOB_GC_GRACE_MS <= e.MODEL_VALIDATE_TIMEOUT_MS) {
    throw new ConfigError([
      `MODEL_BLOB_GC_GRACE_MS: must exceed MODEL_VALIDATE_TIMEOUT_MS (${e.MODEL_VALIDATE_TIMEOUT_MS}): weights stay unreferenced while a publish inspects them`,
    ]);
  }
  const cores = Math.max(1, os.availableParallelism());
  const processes = e.GATEWAY_PROCESSES === 'auto' ? cores : e.GATEWAY_PROCESSES;
  if (processes > 1 && (!e.DATABASE_URL || !e.REDIS_URL)) {
    throw new ConfigError([
      `GATEWAY_PROCESSES: ${processes} processes need DATABASE_URL and REDIS_URL (the embedded database and in-process limits belong to one process)`,
    ]);
  }
  // Each process's event loop (GraphQL, auth, batching) keeps a core; the rest run models, shared by the processes.
  const workers =
    e.INFERENCE_WORKERS ?? Math.max(1, Math.floor(Math.max(1, cores - processes) / processes / e.INFERENCE_INTRA_OP_THREADS));
  // The core kept for the event loop sits nearly idle under batched traffic (a
  // 64-item request costs the loop ~1 ms, its run ~10): one more worker takes
  // it then, and stays out of rotation while the loop is busy, so small
  // requests keep their latency. Default one per process when the sizing is ours.
  const idleLoopWorkers = e.INFERENCE_IDLE_LOOP_WORKERS ?? (e.INFERENCE_WORKERS === undefined ? 1 : 0);
  return {
    nodeEnv: e.NODE_ENV,
    processes,
    listenWhenReady: e.GATEWAY_LISTEN_WHEN_READY,
    port: e.PORT,
    host: e.HOST,
    grpcPort: e.GRPC_PORT,
    logLevel: e.LOG_LEVEL,
    logPretty: e.LOG_PRETTY ?? Boolean(process.stdout.isTTY),
    database: e.DATABASE_URL
      ? { mode: 'postgres', url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE, ...(e.DATABASE_DIRECT_URL ? { directUrl: e.DATABASE_DIRECT_URL } : {}) }
      : { mode: 'embedded', dataDir: path.resolve(cwd, e.DATA_DIR, 'pglite') },
    databaseConnectRetryMaxMs: e.DATABASE_CONNECT_RETRY_MAX_MS,
    migrateOnStart: e.MIGRATE_ON_START,
    redis: e.REDIS_URL ? { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX } : null,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    models: {
      repository: path.resolve(cwd, e.MODEL_REPOSITORY),
      executionProviders: e.EXECUTION_PROVIDERS,
      workers,
      idleLoopWorkers,
      intraOpThreads: e.INFERENCE_INTRA_OP_THREADS,
      workerNice: e.INFERENCE_WORKER_NICE,
      defaultTimeoutMs: e.INFERENCE_DEFAULT_TIMEOUT_MS,
      maxTimeoutMs: e.INFERENCE_MAX_TIMEOUT_MS,
      maxQueueSize: e.INFERENCE_MAX_QUEUE_SIZE,
      maxItemsPerRequest: e.INFERENCE_MAX_ITEMS_PER_REQUEST,
      maxBytesPerRequest: e.INFERENCE_MAX_BYTES_PER_REQUEST,
      cacheDir: path.resolve(cwd, e.MODEL_CACHE_DIR ?? path.join(e.DATA_DIR, 'model-cache')),
      reconcileIntervalMs: e.MODEL_RECONCILE_INTERVAL_MS,
      uploadMaxBytes: e.MODEL_UPLOAD_MAX_BYTES,
      tenantMaxModels: e.MODEL_TENANT_MAX_MODELS,
      tenantMaxBytes: e.MODEL_TENANT_MAX_BYTES,
      validateTimeoutMs: e.MODEL_VALIDATE_TIMEOUT_MS,
      validateMaxMemoryBytes: e.MODEL_VALIDATE_MAX_MEMORY_BYTES,
      replicaHeartbeatMs: e.MODEL_REPLICA_HEARTBEAT_MS,
      blobGcGraceMs: e.MODEL_BLOB_GC_GRACE_MS,
    },
    responseCache: { maxBytes: e.RESPONSE_CACHE_MAX_BYTES, billedFraction: e.RESPONSE_CACHE_BILLED_FRACTION },
    keys: {
      cacheTtlMs: e.KEY_CACHE_TTL_MS,
      cacheMaxEntries: e.KEY_CACHE_MAX_ENTRIES,
      cacheStaleMaxMs: e.KEY_CACHE_STALE_MAX_MS,
      lastUsedGranularityMs: e.KEY_LAST_USED_GRANULARITY_MS,
      environment: e.KEY_ENVIRONMENT,
    },
    console: consoleConfig,
    bootstrap: { enabled: e.BOOTSTRAP_ADMIN, key: e.MODELGATE_BOOTSTRAP_KEY ?? null },
    limits: {
      enabled: e.RATE_LIMITS_ENABLED,
      failureMode: e.RATE_LIMIT_FAILURE_MODE,
      defaultRequestsPerMinute: e.DEFAULT_REQUESTS_PER_MINUTE,
      defaultComputeUnitsPerMinute: e.DEFAULT_COMPUTE_UNITS_PER_MINUTE,
      defaultMonthlyComputeUnitQuota: e.DEFAULT_MONTHLY_COMPUTE_UNIT_QUOTA ?? null,
    },
    usage: {
      flushIntervalMs: e.USAGE_FLUSH_INTERVAL_MS,
      flushBatchSize: e.USAGE_FLUSH_BATCH_SIZE,
      bufferMaxRecords: e.USAGE_BUFFER_MAX_RECORDS,
      spoolDir: path.resolve(cwd, e.USAGE_SPOOL_DIR ?? path.join(e.DATA_DIR, 'usage-spool')),
      walSegmentMaxRecords: e.USAGE_WAL_SEGMENT_MAX_RECORDS,
      partitionMonthsAhead: e.USAGE_PARTITION_MONTHS_AHEAD,
      partitionMaintenanceIntervalMs: e.USAGE_PARTITION_MAINTENANCE_INTERVAL_MS,
      retentionMonths: e.USAGE_RETENTION_MONTHS ?? null,
    },
    webhooks: {
      secretKey: e.WEBHOOK_SECRET_ENCRYPTION_KEY ? secretKeyBytes(e.WEBHOOK_SECRET_ENCRYPTION_KEY) : null,
      keyFile: path.resolve(cwd, e.DATA_DIR, 'webhook-secret.key'),
      pollIntervalMs: e.WEBHOOK_POLL_INTERVAL_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: Math.max(e.WEBHOOK_RETRY_BASE_MS, e.WEBHOOK_RETRY_MAX_MS),
      concurrency: e.WEBHOOK_DISPATCH_CONCURRENCY,
      keyExpiryDays: e.WEBHOOK_KEY_EXPIRY_DAYS,
      keyExpiryScanIntervalMs: e.WEBHOOK_KEY_EXPIRY_SCAN_INTERVAL_MS,
      rateLimitBurst: e.WEBHOOK_RATE_LIMIT_BURST,
      allowPrivateAddresses: e.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
      retentionDays: e.WEBHOOK_RETENTION_DAYS,
    },
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    shutdownDrainTimeoutMs: e.SHUTDOWN_DRAIN_TIMEOUT_MS,
    shutdownReadinessGraceMs: e.SHUTDOWN_READINESS_GRACE_MS,
    graphql: {
      introspection: e.GRAPHQL_INTROSPECTION ?? e.NODE_ENV !== 'production',
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxCost: e.GRAPHQL_MAX_COST,
      maxListElements: e.GRAPHQL_MAX_LIST_ELEMENTS,
    },
    tracing: {
      exporter: exporterConfig(e),
      serviceName: e.OTEL_SERVICE_NAME,
      sampler: e.OTEL_TRACES_SAMPLER,
      samplerRatio: e.OTEL_TRACES_SAMPLER_ARG ?? 1,
      batch: { scheduledDelayMs: e.OTEL_BSP_SCHEDULE_DELAY, maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE },
    },
  };
}

function exporterConfig(e: z.output<typeof envSchema>): TracingConfig['exporter'] {
  if (e.OTEL_SDK_DISABLED || e.OTEL_TRACES_EXPORTER === 'none') return null;
  const url = tracesUrl(e.OTEL_EXPORTER_OTLP_ENDPOINT, e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  // The signal-specific headers win over the shared ones, key by key.
  return url ? { url, headers: { ...e.OTEL_EXPORTER_OTLP_HEADERS, ...e.OTEL_EXPORTER_OTLP_TRACES_HEADERS }, timeoutMs: e.OTEL_EXPORTER_OTLP_TIMEOUT } : null;
}

/** The console's sessions and OIDC settings; throws ConfigError for a half-configured OIDC or timeouts that contradict. */
function consoleConfigFrom(e: z.output<typeof envSchema>): ConsoleConfig {
  const issues: string[] = [];
  if (e.CONSOLE_SESSION_IDLE_TIMEOUT_MS > e.CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS) {
    issues.push(`CONSOLE_SESSION_IDLE_TIMEOUT_MS: must not exceed CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS (${e.CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS})`);
  }
  let oidc: OidcConfig | null = null;
  const named = (['OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_REDIRECT_URL', 'OIDC_ROLE_SCOPES', 'OIDC_TENANT'] as const).filter((n) => e[n] !== undefined);
  if (!e.OIDC_ISSUER_URL) {
    if (named.length > 0) issues.push(`OIDC_ISSUER_URL: not set, but ${named.join(', ')} ${named.length === 1 ? 'is' : 'are'}: set it to turn OIDC sign-in on, or unset the others`);
  } else {
    for (const n of ['OIDC_CLIENT_ID', 'OIDC_REDIRECT_URL', 'OIDC_ROLE_SCOPES', 'OIDC_TENANT'] as const) if (e[n] === undefined) issues.push(`${n}: required when OIDC_ISSUER_URL is set`);
    const issuer = new URL(e.OIDC_ISSUER_URL);
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname);
    if (issuer.protocol === 'http:' && !loopback) issues.push('OIDC_ISSUER_URL: expected https:// (plain http only for a loopback provider)');
    const roleScopes = e.OIDC_ROLE_SCOPES === undefined ? {} : parseRoleScopes(e.OIDC_ROLE_SCOPES, issues);
    if (issues.length === 0 && e.OIDC_CLIENT_ID && e.OIDC_REDIRECT_URL && e.OIDC_TENANT) {
      oidc = {
        issuer: e.OIDC_ISSUER_URL,
        clientId: e.OIDC_CLIENT_ID,
        clientSecret: e.OIDC_CLIENT_SECRET ?? null,
        redirectUrl: e.OIDC_REDIRECT_URL,
        scopes: e.OIDC_SCOPES,
        roleClaim: e.OIDC_ROLE_CLAIM,
        roleScopes,
        tenant: e.OIDC_TENANT,
        allowInsecure: issuer.protocol === 'http:',
      };
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { idleTimeoutMs: e.CONSOLE_SESSION_IDLE_TIMEOUT_MS, absoluteTimeoutMs: e.CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS, cookieSecure: e.CONSOLE_SESSION_COOKIE_SECURE, oidc, traceUrlTemplate: e.CONSOLE_TRACE_URL_TEMPLATE ?? null };
}

/** `admin=admin;finance=usage:read` → { admin: ['admin'], finance: ['usage:read'] }; every scope must be one the gateway has. */
function parseRoleScopes(value: string, issues: string[]): Record<string, string[]> {
  const map: Record<string, string[]> = {};
  for (const entry of value.split(';').map((x) => x.trim()).filter(Boolean)) {
    const at = entry.indexOf('=');
    const role = at > 0 ? entry.slice(0, at).trim() : '';
    const scopes = entry.slice(at + 1).split(',').map((x) => x.trim()).filter(Boolean);
    const unknown = scopes.filter((s) => !(CONSOLE_SCOPES as readonly string[]).includes(s));
    if (!role || scopes.length === 0) issues.push(`OIDC_ROLE_SCOPES: expected role=scope,scope;role2=scope (got an entry "${entry}")`);
    else if (unknown.length > 0) issues.push(`OIDC_ROLE_SCOPES: unknown scope ${unknown.join(', ')} for role ${role} (known: ${CONSOLE_SCOPES.join(', ')})`);
    else map[role] = scopes;
  }
  if (issues.length === 0 && Object.keys(map).length === 0) issues.push('OIDC_ROLE_SCOPES: names no role');
  return map;
}

/** The gateway's scopes (auth/principal.ts SCOPES); repeated here because ground code imports no domain. */
const CONSOLE_SCOPES = ['inference', 'usage:read', 'keys:manage', 'models:manage', 'admin'] as const;

/** How an operator makes a good key (named in every refusal). */
const SECRET_KEY_HOW_TO = 'Generate one with `openssl rand -hex 32` (the same on every replica; rotate with `modelgate webhooks reencrypt-secrets`)';

/**
 * Why a well-formed 32-byte key is still not a secret, or null. A key from a
 * random source has ~30 distinct byte values out of 32 (fewer than 16 has a
 * probability below 10^-20); an all-zero placeholder, a repeated pattern
 * (`0123…cdef` twice, `abab…`) or a sequence has far fewer, or a constant step.
 */
export function weakSecretKeyReason(value: string): string | null {
  const bytes = secretKeyBytes(value);
  if (!bytes) return 'expected 32 bytes as 64 hex digits or base64';
  if (bytes.every((b) => b === 0)) return 'is all zeros (an example placeholder, not a secret)';
  if (new Set(bytes).size < 16) return `has only ${new Set(bytes).size} distinct byte values of 32 (a pattern, not random bytes)`;
  const step = (bytes[1]! - bytes[0]! + 256) % 256;
  if (bytes.every((b, i) => i === 0 || (b - bytes[i - 1]! + 256) % 256 === step)) return 'is a counting sequence, not random bytes';
  return null;
}

/**
 * A webhook encryption key read from the variable an operator names (the
 * rotation command's --from-key-env / --to-key-env): present, 32 bytes, and
 * (for the new key, `strict`) not a weak one. Throws ConfigError naming it.
 */
export function loadNamedSecretKey(env: NodeJS.ProcessEnv, name: string, strict: boolean): Buffer {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError([`${name}: not set (it should hold a 32-byte WEBHOOK_SECRET_ENCRYPTION_KEY, hex or base64)`]);
  const bytes = secretKeyBytes(value);
  if (!bytes) throw new ConfigError([`${name}: expected 32 bytes as 64 hex digits or base64 (e.g. \`openssl rand -hex 32\`)`]);
  const weak = strict ? weakSecretKeyReason(value) : null;
  if (weak) throw new ConfigError([`${name}: ${weak}. ${SECRET_KEY_HOW_TO}`]);
  return bytes;
}

/** 32 key bytes from 64 hex digits or base64; null when it is neither. */
function secretKeyBytes(value: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) {
    const bytes = Buffer.from(value, 'base64');
    return bytes.length === 32 ? bytes : null;
  }
  return null;
}

/** Names of every variable, for documentation checks. */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape);

/** What the `modelgate` CLI reads to choose its target: a gateway (remote) or a database (direct). */
export interface CliTargetEnv {
  /** MODELGATE_URL: a running gateway's base URL. */
  gatewayUrl: string | null;
  /** MODELGATE_ADMIN_KEY: the key the CLI presents to that gateway (never taken from the command line). */
  adminKey: string | null;
  /** DATABASE_URL or DATA_DIR is set: the environment also names a database. */
  databaseNamed: boolean;
}

const cliEnvSchema = z.object({
  MODELGATE_URL: url(['http', 'https']).optional(),
  MODELGATE_ADMIN_KEY: z.string().optional(),
});

/** The CLI's own variables; throws ConfigError naming a bad one (a URL's value is not echoed: it may hold a password). */
export function loadCliTargetEnv(env: NodeJS.ProcessEnv = process.env): CliTargetEnv {
  const value = (name: string): string | undefined => env[name]?.trim() || undefined;
  const parsed = cliEnvSchema.safeParse({ MODELGATE_URL: value('MODELGATE_URL'), MODELGATE_ADMIN_KEY: value('MODELGATE_ADMIN_KEY') });
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => `${String(issue.path[0] ?? '?')}: ${issue.message}`));
  return {
    gatewayUrl: parsed.data.MODELGATE_URL ?? null,
    adminKey: parsed.data.MODELGATE_ADMIN_KEY ?? null,
    databaseNamed: value('DATABASE_URL') !== undefined || value('DATA_DIR') !== undefined,
  };
}
