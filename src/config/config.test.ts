import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadConfig } from '.';

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
