import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadCliTargetEnv, loadConfig } from '.';

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
});
