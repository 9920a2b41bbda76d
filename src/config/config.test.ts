import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadCliTargetEnv, loadConfig } from '.';
import { SCOPES } from '../auth/principal';

describe('config', () => {
  it('uses embedded defaults when nothing is set', () => {
    const config = loadConfig({}, '/srv/app');
    expect(config.port).toBe(4000);
    expect(config.database).toEqual({ mode: 'embedded', dataDir: '/srv/app/.data/pglite' });
    expect(config.redis).toBeNull();
    expect(config.models.executionProviders).toEqual(['cpu']);
    expect(config.graphql.introspection).toBe(true);
  });

  it('adds one idle-loop inference worker to its own sizing, none to an explicit INFERENCE_WORKERS', () => {
    expect(loadConfig({}).models.idleLoopWorkers).toBe(1);
    expect(loadConfig({ INFERENCE_WORKERS: '3' }).models.idleLoopWorkers).toBe(0);
    expect(loadConfig({ INFERENCE_WORKERS: '3', INFERENCE_IDLE_LOOP_WORKERS: '2' }).models.idleLoopWorkers).toBe(2);
  });

  it('runs model threads at the process priority unless told otherwise, and refuses a nice the kernel does not have', () => {
    expect(loadConfig({}).models.workerNice).toBe(0);
    expect(loadConfig({ INFERENCE_WORKER_NICE: '10' }).models.workerNice).toBe(10);
    expect(() => loadConfig({ INFERENCE_WORKER_NICE: '20' })).toThrow(/INFERENCE_WORKER_NICE/);
    expect(() => loadConfig({ INFERENCE_WORKER_NICE: '-5' })).toThrow(/INFERENCE_WORKER_NICE/);
  });

  it('reads the webhook encryption key as hex or base64 and refuses anything else without echoing it', () => {
    const bytes = Buffer.alloc(32, 9);
    expect(loadConfig({ WEBHOOK_SECRET_ENCRYPTION_KEY: bytes.toString('hex') }).webhooks.secretKey).toEqual(bytes);
    expect(loadConfig({ WEBHOOK_SECRET_ENCRYPTION_KEY: bytes.toString('base64') }).webhooks.secretKey).toEqual(bytes);
    expect(loadConfig({}, '/srv/app').webhooks).toMatchObject({ secretKey: null, keyFile: '/srv/app/.data/webhook-secret.key', allowPrivateAddresses: false, pollIntervalMs: 1000 });
    for (const bad of ['short', Buffer.alloc(16).toString('hex'), Buffer.alloc(31).toString('base64')]) {
      let error: unknown;
      try {
        loadConfig({ WEBHOOK_SECRET_ENCRYPTION_KEY: bad });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(String(error)).toContain('WEBHOOK_SECRET_ENCRYPTION_KEY: expected 32 bytes');
      expect(String(error)).not.toContain(bad);
    }
  });

  it('reads real servers and turns introspection off in production', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: 'postgresql://u@db:5432/x',
      REDIS_URL: 'redis://cache:6379',
      EXECUTION_PROVIDERS: 'cuda, cpu',
    });
    expect(config.database).toMatchObject({ mode: 'postgres', url: 'postgresql://u@db:5432/x' });
    expect(config.redis?.url).toBe('redis://cache:6379');
    expect(config.models.executionProviders).toEqual(['cuda', 'cpu']);
    expect(config.graphql.introspection).toBe(false);
  });

  it.each([
    ['PORT', 'abc', /PORT: expected a whole number/],
    ['PORT', '70000', /PORT: .*65535/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL: expected a URL starting with postgres/],
    ['REDIS_URL', 'nope', /REDIS_URL: expected a URL/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL:/],
    ['EXECUTION_PROVIDERS', 'tpu', /EXECUTION_PROVIDERS:/],
    ['GRAPHQL_INTROSPECTION', 'maybe', /GRAPHQL_INTROSPECTION: expected true or false/],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318', /OTEL_EXPORTER_OTLP_ENDPOINT: expected a URL/],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'grpc://collector:4317', /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected a URL starting with http/],
    ['OTEL_TRACES_SAMPLER', 'sometimes', /OTEL_TRACES_SAMPLER:/],
    ['OTEL_TRACES_SAMPLER_ARG', '1.5', /OTEL_TRACES_SAMPLER_ARG: expected a probability between 0 and 1/],
    ['OTEL_EXPORTER_OTLP_HEADERS', 'no-equals-sign', /OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs/],
    ['OTEL_SDK_DISABLED', 'perhaps', /OTEL_SDK_DISABLED: expected true or false/],
  ])('rejects %s=%s with a message naming the variable', (name, value, pattern) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(pattern);
  });

  it('never echoes URL values (they may hold passwords)', () => {
    try {
      loadConfig({ DATABASE_URL: 'mysql://user:hunter2@x' });
      throw new Error('should have thrown');
    } catch (error) {
      expect(String(error)).not.toContain('hunter2');
    }
  });

  it('exports spans only when an OTLP endpoint is set, to the signal path under the base endpoint', () => {
    expect(loadConfig({}).tracing).toEqual({
      exporter: null,
      serviceName: 'modelgate',
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
      batch: { scheduledDelayMs: 5000, maxQueueSize: 2048 },
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing.exporter).toEqual({ url: 'http://collector:4318/v1/traces', headers: {}, timeoutMs: 10000 });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/otlp/' }).tracing.exporter?.url).toBe('http://collector:4318/otlp/v1/traces');
    // The signal-specific endpoint is used as given and wins over the base one.
    const both = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/traces' });
    expect(both.tracing.exporter?.url).toBe('https://b/traces');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_SDK_DISABLED: 'true' }).tracing.exporter).toBeNull();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing.exporter).toBeNull();
  });

  it('reads OTLP headers (percent-decoded, signal-specific ones winning) and the sampler', () => {
    const config = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Basic%20abc, x-tenant=one',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=two',
      OTEL_SERVICE_NAME: 'gateway-eu',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
    });
    expect(config.tracing).toEqual({
      exporter: { url: 'http://a:4318/v1/traces', headers: { authorization: 'Basic abc', 'x-tenant': 'two' }, timeoutMs: 2500 },
      serviceName: 'gateway-eu',
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.25,
      batch: { scheduledDelayMs: 5000, maxQueueSize: 2048 },
    });
  });

  it('never echoes OTLP headers (they may hold tokens)', () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=%E0%A4%A' })).toThrow(/OTEL_EXPORTER_OTLP_HEADERS/);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=%E0%A4%A' })).not.toThrow(/%E0/);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: ' ' }).database.mode).toBe('embedded');
  });

  it('makes the process exit 2 with the variable named', () => {
    const result = spawnSync(process.execPath, [path.resolve(__dirname, '../../dist/main.js')], {
      env: { PATH: process.env['PATH'], PORT: 'not-a-port' },
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('PORT: expected a whole number');
  });
});

describe('console sessions and OIDC', () => {
  const oidc = {
    OIDC_ISSUER_URL: 'https://idp.example.com/realms/acme',
    OIDC_CLIENT_ID: 'console',
    OIDC_REDIRECT_URL: 'https://gw.example.com/console/oidc/callback',
    OIDC_ROLE_SCOPES: 'finance=usage:read; platform-admin=admin,keys:manage',
    OIDC_TENANT: 'acme',
  };
  const issues = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues;
      throw error;
    }
    return [];
  };

  it('has session defaults, no OIDC unless an issuer is set, and reads the role mapping', () => {
    expect(loadConfig({}).console).toEqual({ idleTimeoutMs: 1_800_000, absoluteTimeoutMs: 28_800_000, cookieSecure: 'auto', oidc: null, traceUrlTemplate: null });
    expect(loadConfig(oidc).console.oidc).toEqual({
      issuer: oidc.OIDC_ISSUER_URL,
      clientId: 'console',
      clientSecret: null,
      redirectUrl: oidc.OIDC_REDIRECT_URL,
      scopes: 'openid email profile',
      roleClaim: 'roles',
      roleScopes: { finance: ['usage:read'], 'platform-admin': ['admin', 'keys:manage'] },
      tenant: 'acme',
      allowInsecure: false,
    });
  });

  it('reads the trace link template, which must be an http(s) URL naming {traceId}', () => {
    expect(loadConfig({ CONSOLE_TRACE_URL_TEMPLATE: 'http://jaeger:16686/trace/{traceId}' }).console.traceUrlTemplate).toBe('http://jaeger:16686/trace/{traceId}');
    expect(issues({ CONSOLE_TRACE_URL_TEMPLATE: 'http://jaeger:16686/search' })).toEqual([expect.stringMatching(/^CONSOLE_TRACE_URL_TEMPLATE: expected \{traceId\}/)]);
    expect(issues({ CONSOLE_TRACE_URL_TEMPLATE: 'javascript:alert({traceId})' })).toEqual([expect.stringMatching(/^CONSOLE_TRACE_URL_TEMPLATE: expected a URL starting with http:\/\/ or https:\/\//)]);
  });

  it('stops on contradictory timeouts, a half-configured OIDC, an unknown scope or plain HTTP to a remote provider', () => {
    expect(issues({ CONSOLE_SESSION_IDLE_TIMEOUT_MS: '60000', CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS: '30000' })).toEqual([expect.stringMatching(/^CONSOLE_SESSION_IDLE_TIMEOUT_MS: must not exceed/)]);
    expect(issues({ OIDC_CLIENT_ID: 'console' })).toEqual([expect.stringMatching(/^OIDC_ISSUER_URL: not set, but OIDC_CLIENT_ID is/)]);
    expect(issues({ OIDC_ISSUER_URL: oidc.OIDC_ISSUER_URL })).toEqual(['OIDC_CLIENT_ID', 'OIDC_REDIRECT_URL', 'OIDC_ROLE_SCOPES', 'OIDC_TENANT'].map((n) => `${n}: required when OIDC_ISSUER_URL is set`));
    expect(issues({ ...oidc, OIDC_ROLE_SCOPES: 'finance=usage:write' })).toEqual([expect.stringMatching(/^OIDC_ROLE_SCOPES: unknown scope usage:write for role finance/)]);
    expect(issues({ ...oidc, OIDC_ROLE_SCOPES: 'finance' })).toEqual([expect.stringMatching(/^OIDC_ROLE_SCOPES: expected role=scope/)]);
    expect(issues({ ...oidc, OIDC_ISSUER_URL: 'http://idp.example.com' })).toEqual([expect.stringMatching(/^OIDC_ISSUER_URL: expected https:\/\//)]);
    expect(loadConfig({ ...oidc, OIDC_ISSUER_URL: 'http://127.0.0.1:9000' }).console.oidc?.allowInsecure).toBe(true);
  });

  it('knows the same scopes as the auth domain (the mapping is checked against a copy: config imports no domain)', () => {
    for (const scope of SCOPES) expect(issues({ ...oidc, OIDC_ROLE_SCOPES: `r=${scope}` })).toEqual([]);
    expect(issues({ ...oidc, OIDC_ROLE_SCOPES: 'r=nope' })).toHaveLength(1);
  });
});

describe('the CLI target variables', () => {
  it('reads MODELGATE_URL and MODELGATE_ADMIN_KEY, empty meaning unset, and whether a database is named', () => {
    expect(loadCliTargetEnv({})).toEqual({ gatewayUrl: null, adminKey: null, databaseNamed: false });
    expect(loadCliTargetEnv({ MODELGATE_URL: ' http://gw:4000 ', MODELGATE_ADMIN_KEY: 'k', DATA_DIR: ' ' })).toEqual({ gatewayUrl: 'http://gw:4000', adminKey: 'k', databaseNamed: false });
    expect(loadCliTargetEnv({ MODELGATE_URL: '', DATABASE_URL: 'postgresql://db/x' }).databaseNamed).toBe(true);
  });

  it('names a bad MODELGATE_URL without echoing it (it may hold a password)', () => {
    let error: unknown;
    try {
      loadCliTargetEnv({ MODELGATE_URL: 'postgresql://u:hunter2@db/x' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/MODELGATE_URL: expected a URL starting with http:\/\/ or https:\/\//);
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('refuses an all-zero, patterned or counting WEBHOOK_SECRET_ENCRYPTION_KEY in production only, and accepts random bytes', () => {
    const zero = '0'.repeat(64);
    const weak = [zero, 'ab'.repeat(32), '0123456789abcdef'.repeat(4), Buffer.from(Array.from({ length: 32 }, (_, i) => i * 3)).toString('base64')];
    for (const key of weak) {
      expect(() => loadConfig({ NODE_ENV: 'production', WEBHOOK_SECRET_ENCRYPTION_KEY: key })).toThrow(/^Invalid configuration:\n {2}- WEBHOOK_SECRET_ENCRYPTION_KEY: .*production refuses it.*openssl rand -hex 32/);
      expect(loadConfig({ NODE_ENV: 'development', WEBHOOK_SECRET_ENCRYPTION_KEY: key }).webhooks.secretKey?.length).toBe(32);
    }
    const random = '3f9c1be07a5d24e8c61f0b93d47a28e5c0b17f6e9a3d52c84e01b76fa9c3d25e';
    expect(loadConfig({ NODE_ENV: 'production', WEBHOOK_SECRET_ENCRYPTION_KEY: random }).webhooks.secretKey?.toString('hex')).toBe(random);
    let message = '';
    try {
      loadConfig({ NODE_ENV: 'production', WEBHOOK_SECRET_ENCRYPTION_KEY: zero });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('all zeros');
    expect(message).not.toContain(zero);
  });
});
