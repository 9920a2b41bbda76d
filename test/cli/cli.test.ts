/**
 * The real `modelgate` CLI (node dist/cli/main.js, built by `npm run build:ts`)
 * against a fresh Postgres database of its own (so `admin bootstrap` starts
 * from nothing) and against an embedded data directory, with a gateway on the
 * same database using the keys it prints.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { graphql, REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { freePort } from '../helpers/capture';
import { beforeExpiry, STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const CLI = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');
const KEY = /^mg_(live|test)_[0-9A-Za-z]{49}$/;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(env: Record<string, string>, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, cwd: REPO_ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

const ME = '{ me { scopes allowedModels expiresAt tenant { name } } }';

describe('modelgate CLI on PostgreSQL', () => {
  const dbName = `${testEnv.databaseName}_cli`;
  let env: Record<string, string>;
  let gw: TestGateway;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${dbName}"`);
    await admin.end();
    const url = new URL(testEnv.databaseUrl);
    url.pathname = `/${dbName}`;
    env = { DATABASE_URL: url.toString(), REDIS_URL: testEnv.redisUrl, REDIS_KEY_PREFIX: `${testEnv.redisPrefix}cli:` };
    // The first CLI run migrates the empty database, as the gateway would.
    const first = await cli(env, 'tenants', 'list');
    expect(first).toMatchObject({ code: 0, stdout: '(none)' });
    gw = await startGateway({ ...env, KEY_CACHE_TTL_MS: '10000' });
  });
  afterAll(async () => {
    await gw?.close();
    const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
  });

  it('bootstraps the first admin key once, printing only the key on stdout', async () => {
    const run = await cli(env, 'admin', 'bootstrap');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(KEY);
    expect(run.stderr).toContain('shown only once');
    const me = await graphql<{ me: { scopes: string[]; tenant: { name: string } } }>(gw.url, ME, {}, authHeaders(run.stdout));
    expect(me.body.data?.me).toMatchObject({ scopes: ['ADMIN'], tenant: { name: 'admin' } });

    const again = await cli(env, 'admin', 'bootstrap');
    expect(again.code).toBe(3);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/already exists/);
    const againJson = await cli(env, 'admin', 'bootstrap', '--json');
    expect(againJson.code).toBe(3);
    expect(JSON.parse(againJson.stdout)).toEqual({ created: false });
  });

  it('creates a tenant and a scoped, expiring, model-limited key the gateway accepts', async () => {
    expect(await cli(env, 'tenants', 'create', 'acme', '--rpm', '120')).toMatchObject({ code: 0 });
    const dup = await cli(env, 'tenants', 'create', 'acme');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/Tenant "acme" already exists/);
    const list = await cli(env, 'tenants', 'list', '--json');
    expect(JSON.parse(list.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'acme', requestsPerMinute: 120 })]));

    const created = await cli(env, 'keys', 'create', '--tenant', 'acme', '--scopes', 'inference,usage:read', '--models', 'fashion-cnn,fashion-mlp', '--expires', '30d');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(KEY);
    const me = await graphql<{ me: { scopes: string[]; allowedModels: string[]; expiresAt: string } }>(gw.url, ME, {}, authHeaders(created.stdout));
    expect(me.body.data?.me.scopes).toEqual(['INFERENCE', 'USAGE_READ']);
    expect(me.body.data?.me.allowedModels).toEqual(['fashion-cnn', 'fashion-mlp']);
    const days = (Date.parse(me.body.data!.me.expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);

    const keys = await cli(env, 'keys', 'list', '--tenant', 'acme', '--json');
    expect(keys.stdout).not.toContain(created.stdout);
    expect(keys.stdout).not.toContain('hash');
    expect(JSON.parse(keys.stdout)).toHaveLength(1);
  });

  it('explains an unknown tenant, a bad scope and a bad duration, and creates nothing', async () => {
    const before = JSON.parse((await cli(env, 'keys', 'list', '--json')).stdout) as unknown[];
    const unknown = await cli(env, 'keys', 'create', '--tenant', 'nobody', '--scopes', 'inference');
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/Unknown tenant "nobody"/);
    const scope = await cli(env, 'keys', 'create', '--tenant', 'acme', '--scopes', 'inference,superuser');
    expect(scope).toMatchObject({ code: 2, stdout: '' });
    expect(scope.stderr).toMatch(/Unknown scope "superuser"; valid scopes: inference, usage:read, keys:manage, models:manage, admin/);
    const duration = await cli(env, 'keys', 'create', '--tenant', 'acme', '--scopes', 'inference', '--expires', '30 days');
    expect(duration).toMatchObject({ code: 2, stdout: '' });
    expect(duration.stderr).toMatch(/Invalid duration "30 days"/);
    const grace = await cli(env, 'keys', 'rotate', 'mg_live_whatever', '--grace', 'forever');
    expect(grace.code).toBe(2);
    expect(grace.stderr).toMatch(/Invalid duration "forever"/);
    const after = JSON.parse((await cli(env, 'keys', 'list', '--json')).stdout) as unknown[];
    expect(after).toHaveLength(before.length);
  });

  it('rotates with a grace period and revokes by prefix; a running gateway drops the revoked key at once', async () => {
    const created = await cli(env, 'keys', 'create', '--tenant', 'acme', '--scopes', 'inference', '--name', 'rotating');
    const oldKey = created.stdout;
    expect((await graphql(gw.url, ME, {}, authHeaders(oldKey))).status).toBe(200); // cached by the gateway now

    const rotated = await cli(env, 'keys', 'rotate', oldKey.slice(0, 16), '--grace', '1h');
    expect(rotated.code).toBe(0);
    const newKey = rotated.stdout;
    expect(newKey).toMatch(KEY);
    expect(rotated.stderr).toMatch(/works until/);
    expect((await graphql(gw.url, ME, {}, authHeaders(oldKey))).status).toBe(200);
    const newKeyCachedAt = Date.now(); // at or before the read that caches it
    expect((await graphql(gw.url, ME, {}, authHeaders(newKey))).status).toBe(200);

    const revoked = await cli(env, 'keys', 'revoke', newKey.slice(0, 16));
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/revoked/);
    // The gateway's cache would hold the key for 10 s; the CLI's broadcast drops it before that (delivery is asynchronous: poll).
    const status = await until('the gateway to refuse the revoked key', async () => (await graphql(gw.url, ME, {}, authHeaders(newKey))).status, {
      accept: (s) => s !== 200,
      timeoutMs: beforeExpiry(newKeyCachedAt, 10_000),
    });
    expect(status).toBe(401);
    const missing = await cli(env, 'keys', 'revoke', 'mg_live_00000000');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Unknown API key/);
  });

  it('shows and updates a key, and updates, suspends and resumes a tenant; the running gateway applies each change', async () => {
    const tenant = await cli(env, 'tenants', 'create', 'lifecycle');
    expect(tenant.code).toBe(0);
    const created = await cli(env, 'keys', 'create', '--tenant', 'lifecycle', '--scopes', 'inference,usage:read', '--name', 'lc');
    const key = created.stdout;
    const prefix = key.slice(0, 16);
    // Each wait below is bounded by the key cache's TTL (10 s) counted from the read that cached the entry, not by speed.
    let cachedAt = Date.now();
    const meRead = () => {
      cachedAt = Date.now();
      return graphql<{ me: { scopes: string[]; allowedModels: string[] } }>(gw.url, ME, {}, authHeaders(key));
    };
    expect((await meRead()).status).toBe(200);

    const updated = await cli(env, 'keys', 'update', prefix, '--scopes', 'inference', '--models', 'fashion-cnn', '--rpm', '7', '--meta', 'owner=ana,team=ml', '--json');
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ prefix, scopes: ['inference'], allowedModels: ['fashion-cnn'], requestsPerMinute: 7, metadata: { owner: 'ana', team: 'ml' } });
    const me = await until('the gateway to apply the key update', meRead, { accept: (r) => r.body.data?.me.scopes.length === 1, timeoutMs: beforeExpiry(cachedAt, 10_000) });
    expect(me.body.data?.me).toMatchObject({ scopes: ['INFERENCE'], allowedModels: ['fashion-cnn'] });

    const shown = await cli(env, 'keys', 'show', prefix);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/scopes: +inference\n/);
    expect(shown.stdout).toMatch(/rpm: +7\n/);
    expect(JSON.parse(/metadata: +(.*)$/m.exec(shown.stdout)?.[1] ?? 'null')).toEqual({ owner: 'ana', team: 'ml' });
    expect(shown.stdout).toContain('tenant:    lifecycle');
    expect(shown.stdout + shown.stderr).not.toContain(key.slice(16));
    const nothing = await cli(env, 'keys', 'update', prefix);
    expect(nothing.code).toBe(2);

    const limits = await cli(env, 'tenants', 'update', 'lifecycle', '--rpm', '99', '--monthly-quota', '1000', '--json');
    expect(limits.code).toBe(0);
    expect(JSON.parse(limits.stdout)).toMatchObject({ name: 'lifecycle', requestsPerMinute: 99, monthlyComputeUnitQuota: 1000 });
    const cleared = await cli(env, 'tenants', 'update', 'lifecycle', '--rpm', 'default', '--json');
    expect(cleared.code).toBe(0);
    expect(JSON.parse(cleared.stdout)).toMatchObject({ requestsPerMinute: null, monthlyComputeUnitQuota: 1000 });

    // Cache the principal afresh (the commands above took longer than its TTL on a busy machine), so seeing the
    // suspension before that entry expires proves the CLI's invalidation reached the gateway.
    expect((await meRead()).status).toBe(200);
    const suspended = await cli(env, 'tenants', 'suspend', 'lifecycle');
    expect(suspended).toMatchObject({ code: 0 });
    expect(suspended.stdout).toMatch(/SUSPENDED/);
    const meStatus = async () => (await meRead()).status;
    let status = await until('the gateway to apply the suspension', meStatus, { accept: (s) => s !== 200, timeoutMs: beforeExpiry(cachedAt, 10_000) });
    expect(status).toBe(403);
    expect((await cli(env, 'tenants', 'resume', 'lifecycle')).code).toBe(0);
    status = await until('the gateway to apply the resume', meStatus, { accept: (s) => s !== 403, timeoutMs: beforeExpiry(cachedAt, 10_000) });
    expect(status).toBe(200);

    const db = new pg.Client({ connectionString: env['DATABASE_URL'] });
    await db.connect();
    try {
      const rows = await db.query(`SELECT action FROM "AuditEvent" WHERE "tenantId" = (SELECT id FROM "Tenant" WHERE name = 'lifecycle') ORDER BY "createdAt", action`);
      expect(rows.rows.map((r: { action: string }) => r.action)).toEqual(['tenant.create', 'apikey.create', 'apikey.update', 'tenant.update', 'tenant.update', 'tenant.suspend', 'tenant.resume']);
    } finally {
      await db.end();
    }
  });
});

describe('modelgate CLI on the embedded database', () => {
  it('bootstraps into DATA_DIR, and a gateway on that directory accepts the key; ./.data is a default it announces', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'modelgate-cli-'));
    const dataDir = path.join(cwd, '.data');
    const boot = await cli({ DATA_DIR: dataDir }, 'admin', 'bootstrap', '--tenant', 'ops', '--json');
    expect(boot.code).toBe(0);
    const created = JSON.parse(boot.stdout) as { plaintext: string; apiKey: { tenant: string; scopes: string[]; prefix: string } };
    expect(created.plaintext).toMatch(KEY);
    expect(created.apiKey).toMatchObject({ tenant: 'ops', scopes: ['admin'], prefix: created.plaintext.slice(0, 16) });
    expect(boot.stderr.split('\n')[0]).toBe(`modelgate: embedded data dir ${dataDir} (direct)`);
    const run = { stdout: created.plaintext };
    const gw = await startGateway({ DATA_DIR: dataDir }, { mode: 'embedded' });
    try {
      const me = await graphql<{ me: { tenant: { name: string } } }>(gw.url, ME, {}, authHeaders(run.stdout));
      expect(me.body.data?.me.tenant.name).toBe('ops');
    } finally {
      await gw.close();
    }
    // Nothing named, run where ./.data holds that database: used, and the line says it is the default.
    const byDefault = await new Promise<Run>((resolve) =>
      execFile(process.execPath, [CLI, 'tenants', 'list', '--json'], { env: { PATH: process.env['PATH'] ?? '' }, cwd }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout: stdout.trim(), stderr: stderr.trim() }),
      ),
    );
    expect(byDefault.code).toBe(0);
    expect(byDefault.stderr.split('\n')[0]).toMatch(/^modelgate: embedded data dir .* \(direct\) — DEFAULT, nothing else named/);
    expect(byDefault.stderr).toContain(`modelgate: embedded data dir ${dataDir} (direct) — DEFAULT`);
    expect((JSON.parse(byDefault.stdout) as { name: string }[]).map((t) => t.name)).toEqual(['ops']);
  });
});

describe('modelgate CLI conventions', () => {
  const emptyCwdEnv = (): Record<string, string> => ({});

  it('prints its version and exits 0', async () => {
    const run = await cli({}, '--version');
    expect(run).toMatchObject({ code: 0, stdout: (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version });
  });

  it('describes every subcommand in its help', async () => {
    for (const group of [[], ['tenants'], ['keys'], ['admin']]) {
      const help = await cli({}, ...group, '--help');
      expect(help.code).toBe(0);
      const commands = help.stdout.split('Commands:')[1]?.split('\n').filter((l) => /^ {2}\S/.test(l) && !l.includes('help [command]')) ?? [];
      expect(commands.length).toBeGreaterThan(0);
      // "name [options] <arg>  description": a line with only the name has no description.
      for (const line of commands) expect(line.trim()).toMatch(/\S+.*\s{2,}\S/);
    }
  });

  it('exits 2 on a usage error: unknown command, unknown option, bad --timeout', async () => {
    expect((await cli({}, 'bogus')).code).toBe(2);
    expect((await cli({}, 'tenants', 'list', '--bogus')).code).toBe(2);
    const timeout = await cli({ DATABASE_URL: testEnv.databaseUrl }, '--timeout', 'soon', 'tenants', 'list');
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toMatch(/Invalid duration "soon"/);
  });

  it('does not fall back to a new embedded database when no database is named', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'modelgate-cli-nodb-'));
    const run = await new Promise<Run>((resolve) =>
      execFile(process.execPath, [CLI, 'keys', 'revoke', 'mg_live_00000000'], { env: { PATH: process.env['PATH'] ?? '', ...emptyCwdEnv() }, cwd: dir }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout: stdout.trim(), stderr: stderr.trim() }),
      ),
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/no target named: none of --url \/ MODELGATE_URL .* is set, and there is no embedded database in /);
    expect(existsSync(path.join(dir, '.data'))).toBe(false);
  });

  it('names the database it talks to, and exits 4 within --timeout when it cannot reach it', async () => {
    const ok = await cli({ DATABASE_URL: testEnv.databaseUrl }, 'tenants', 'list', '--json');
    expect(ok.code).toBe(0);
    const u = new URL(testEnv.databaseUrl);
    expect(ok.stderr).toContain(`modelgate: database postgresql://${u.username}@${u.hostname}:${u.port || '5432'}${u.pathname} (direct)`);
    // A password in the URL never reaches the terminal.
    const secret = new URL(testEnv.databaseUrl);
    secret.password = 'hunter2';
    const redacted = await cli({ DATABASE_URL: secret.toString() }, 'tenants', 'list', '--json');
    expect(redacted.code).toBe(0);
    expect(redacted.stderr).toContain(`modelgate: database postgresql://${u.username}:***@${u.hostname}`);
    expect(redacted.stderr).not.toContain('hunter2');
    expect(Array.isArray(JSON.parse(ok.stdout))).toBe(true);

    const port = await freePort();
    const down = await cli({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/nothing` }, '--timeout', '1s', 'tenants', 'list');
    expect(down.code).toBe(4);
    expect(down.stderr).toContain(`modelgate: database postgresql://postgres@127.0.0.1:${port}/nothing (direct)`);
    expect(down.stderr).toMatch(new RegExp(`cannot reach database postgresql://postgres@127.0.0.1:${port}/nothing within 1 s`));
    // One line of outcome, not a retry log per attempt.
    expect(down.stderr).not.toMatch(/retrying/);
  });

  it('generates a well-formed key without a database', async () => {
    const run = await cli({}, 'keys', 'generate', '--env', 'test');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^mg_test_[0-9A-Za-z]{49}$/);
    expect(run.stderr).toBe('modelgate: no target (keys generate stores nothing)');
    const json = await cli({}, 'keys', 'generate', '--json');
    const generated = JSON.parse(json.stdout) as { plaintext: string; prefix: string };
    expect(generated.plaintext).toMatch(KEY);
    expect(generated.prefix).toBe(generated.plaintext.slice(0, 16));
  });
});
