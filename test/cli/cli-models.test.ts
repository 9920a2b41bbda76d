/**
 * The real `modelgate` CLI (node dist/cli/main.js) on the fleet-wide model
 * catalog (issue #23), through a production gateway (node dist/main.js) on a
 * database of its own (catalog models are fleet-wide: on the run's shared
 * database every other test's gateway would load them): `models publish` of
 * a Triton-layout folder and of one .onnx file, `models list`, `models
 * traffic`, `models unload`, a tenant's models:manage key publishing its
 * private model and refused a public name, and usage errors.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, REPO_ROOT, runCli, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { testEnv } from '../helpers/env';
import { applyMigrations } from '../../src/db/migrate';
import { Database } from '../../src/db/database';
import { KeyService } from '../../src/keys/key.service';
import { createLogger } from '../../src/log/logger';
import type { Scope } from '../../src/auth/principal';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS + 120_000);

const CNN_DIR = path.join(REPO_ROOT, 'models', 'fashion-cnn');
const dbName = `${testEnv.databaseName}_climodels`;
const dbUrl = (() => {
  const url = new URL(testEnv.databaseUrl);
  url.pathname = `/${dbName}`;
  return url.toString();
})();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function cli(env: Record<string, string>, ...args: string[]): Promise<Run> {
  const run = await runCli(args, env);
  return { code: run.code, stdout: run.stdout.trim(), stderr: run.stderr.trim() };
}

function json<T>(run: Run): T {
  if (run.code !== 0) throw new Error(`exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

describe('modelgate models: publish, list, traffic, unload through a gateway', () => {
  const name = `cli-cnn-${randomBytes(3).toString('hex')}`;
  let gw: ProductionGateway;
  let keyDb: Database;
  let admin: Record<string, string>;
  let tenant: { id: string; env: Record<string, string> };
  let folder: string;

  beforeAll(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await adminQuery(`CREATE DATABASE "${dbName}"`);
    await applyMigrations({ kind: 'postgres', url: dbUrl });
    const log = createLogger({ level: 'silent', pretty: false });
    keyDb = new Database({ database: { mode: 'postgres', url: dbUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, log);
    await keyDb.start();
    const keys = new KeyService(keyDb, { invalidate: async () => undefined }, log, 'test');
    const keyFor = async (scopes: Scope[]) => {
      const caller = { principal: null, actor: 'test' };
      const t = await keys.createTenant(caller, { name: `tenant-${randomBytes(5).toString('hex')}` });
      return { id: t.id, key: (await keys.createApiKey(caller, { tenant: t.id, name: 'cli models', scopes, allowedModels: [], expiresAt: null })).plaintext };
    };
    const [adminKey, tenantKey] = [await keyFor(['admin']), await keyFor(['inference', 'models:manage'])];
    gw = await ProductionGateway.start({
      ...productionEnv({ databaseUrl: dbUrl }),
      MIGRATE_ON_START: 'false',
      MODEL_REPOSITORY: mkdtempSync(path.join(os.tmpdir(), 'mg-seed-')),
      INFERENCE_WORKERS: '1',
      MODEL_RECONCILE_INTERVAL_MS: '600000',
    });
    admin = { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: adminKey.key };
    tenant = { id: tenantKey.id, env: { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: tenantKey.key } };
    // A Triton-layout folder: config.json (the model's name) and versions 1 and 2.
    folder = path.join(mkdtempSync(path.join(os.tmpdir(), 'mg-publish-')), name);
    for (const v of ['1', '2']) {
      mkdirSync(path.join(folder, v), { recursive: true });
      copyFileSync(path.join(CNN_DIR, '1', 'model.onnx'), path.join(folder, v, 'model.onnx'));
    }
    const config = JSON.parse(readFileSync(path.join(CNN_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, name }));
  });

  afterAll(async () => {
    await gw?.stop();
    await keyDb?.close();
    await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  });

  it('publishes a folder (every version, one call) and lists it with each version READY', async () => {
    const published = json<{ name: string; versions: string[] }>(await cli(admin, 'models', 'publish', folder, '--json'));
    expect(published).toMatchObject({ name, versions: ['1', '2'] });
    const listed = json<{ name: string; versions: { version: string; status: string }[] }[]>(await cli(admin, 'models', 'list', '--json'));
    expect(listed.find((m) => m.name === name)?.versions).toEqual([
      { version: '1', status: 'READY', reason: null },
      { version: '2', status: 'READY', reason: null },
    ]);
    const human = await cli(admin, 'models', 'list');
    expect(human.stdout).toMatch(new RegExp(`^${name} +2 +1:READY 2:READY$`, 'm'));
  });

  it('splits traffic, refuses a split that does not sum to 100 (exit 1), and clears it', async () => {
    const split = json<{ version: string; trafficPercent: number }[]>(await cli(admin, 'models', 'traffic', name, '1=90', '2=10', '--json'));
    expect(split).toEqual([
      { version: '1', trafficPercent: 90, desiredState: 'LOADED' },
      { version: '2', trafficPercent: 10, desiredState: 'LOADED' },
    ]);
    const bad = await cli(admin, 'models', 'traffic', name, '1=50');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/sum to 50, not 100 \(BAD_USER_INPUT/);
    expect((await cli(admin, 'models', 'traffic', name, '1=x')).code).toBe(2);
    expect((await cli(admin, 'models', 'traffic', name)).code).toBe(2);
    const cleared = await cli(admin, 'models', 'traffic', name, '--clear');
    expect(cleared).toMatchObject({ code: 0, stdout: `${name}: no split` });
  });

  it('publishes one .onnx file as a version (streamed upload) and unloads one version', async () => {
    const uploaded = json<{ name: string; version: string; digest: string }>(await cli(admin, 'models', 'publish', path.join(folder, '1', 'model.onnx'), '--name', name, '--model-version', '3', '--json'));
    expect(uploaded).toMatchObject({ name, version: '3' });
    expect(uploaded.digest).toMatch(/^[0-9a-f]{64}$/);
    const unloaded = await cli(admin, 'models', 'unload', name, '--model-version', '2');
    expect(unloaded).toMatchObject({ code: 0 });
    expect(unloaded.stdout).toBe(`${name}: 1:READY 2:UNLOADED 3:READY`);
    expect((await cli(admin, 'models', 'unload', `no-such-${name}`)).code).toBe(1);
  });

  it("a models:manage key publishes its tenant's private model and is refused a public name (exit 5)", async () => {
    const own = `${tenant.id}.cnn`;
    const mine = await cli(tenant.env, 'models', 'publish', path.join(folder, '1', 'model.onnx'), '--name', own, '--json');
    expect(mine.code).toBe(0);
    const list = json<{ name: string }[]>(await cli(tenant.env, 'models', 'list', '--json'));
    expect(list.map((m) => m.name)).toEqual(expect.arrayContaining([own, name]));
    const publicName = await cli(tenant.env, 'models', 'publish', path.join(folder, '1', 'model.onnx'), '--name', `public-${name}`);
    expect(publicName.code).toBe(5);
    expect(publicName.stderr).toMatch(/FORBIDDEN/);
    // Admin keys see every tenant's private models.
    expect(json<{ name: string }[]>(await cli(admin, 'models', 'list', '--json')).map((m) => m.name)).toContain(own);
  });

  it('usage errors: a missing source, a folder with --version, a file that is not .onnx', async () => {
    expect((await cli(admin, 'models', 'publish', path.join(folder, 'nope'))).code).toBe(2);
    expect((await cli(admin, 'models', 'publish', folder, '--model-version', '2')).code).toBe(2);
    expect((await cli(admin, 'models', 'publish', path.join(folder, 'config.json'))).code).toBe(2);
  });
});
