/**
 * The real `modelgate` CLI (node dist/cli/main.js) administering a running
 * production gateway (node dist/main.js, NODE_ENV=production, real Postgres
 * and Redis) through its GraphQL admin API with an admin key: every admin
 * command in remote mode, the key refusals, an unreachable or silent URL,
 * and the target line. One gateway for the whole file.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { beforeExpiry, ProductionGateway, productionEnv, runCli, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { freePort } from '../helpers/capture';
import { testEnv } from '../helpers/env';
import { generateKey } from '../../src/ids/key-format';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const KEY = /^mg_(live|test)_[0-9A-Za-z]{49}$/;
const ME = '{ me { scopes allowedModels tenant { name } } }';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function cli(env: Record<string, string>, ...args: string[]): Promise<Run> {
  const run = await runCli(args, env);
  return { code: run.code, stdout: run.stdout.trim(), stderr: run.stderr.trim() };
}

/** A failure is one line of message per line of stderr, never a stack trace. */
function expectNoStack(run: Run): void {
  expect(run.stderr).not.toMatch(/\n\s+at |Error: |node:internal/);
}

describe('modelgate CLI through a running gateway (remote mode)', () => {
  const id = randomBytes(3).toString('hex');
  const ops = `cliops-${id}`;
  const acme = `cliacme-${id}`;
  let gw: ProductionGateway;
  let direct: Record<string, string>;
  let remote: Record<string, string>;
  let adminKey: string;
  let targetLine: string;

  /** When the last `meUntil` read was sent (at or before the lookup it may have cached). */
  let lastMeReadAt = 0;
  /**
   * `me` with a key until `done` holds (a change reaches the cache asynchronously). Given when the key
   * was cached, the wait ends before that entry's TTL (KEY_CACHE_TTL_MS 10 s) would: expiry must not win it.
   */
  function meUntil(key: string, done: (status: number, scopes: string[] | undefined) => boolean, cachedAt?: number) {
    return until(
      `me with key ${key.slice(0, 16)} to show the change`,
      () => {
        lastMeReadAt = Date.now();
        return gw.graphql<{ me: { scopes: string[] } }>(ME, {}, { authorization: `Bearer ${key}` });
      },
      { accept: (res) => done(res.status, res.body?.data?.me.scopes), ...(cachedAt === undefined ? {} : { timeoutMs: beforeExpiry(cachedAt, 10_000) }) },
    );
  }

  beforeAll(async () => {
    const starting = ProductionGateway.start({
      ...productionEnv(),
      KEY_CACHE_TTL_MS: '10000',
      WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
      WEBHOOK_POLL_INTERVAL_MS: '100',
      WEBHOOK_RETRY_BASE_MS: '100',
      WEBHOOK_RETRY_MAX_MS: '200',
      WEBHOOK_MAX_ATTEMPTS: '2',
    });
    direct = { DATABASE_URL: testEnv.databaseUrl, REDIS_URL: testEnv.redisUrl, REDIS_KEY_PREFIX: testEnv.redisPrefix };
    // The admin key itself is made directly on the database the gateway uses, while the gateway starts.
    const tenant = await cli(direct, 'tenants', 'create', ops);
    expect(tenant.code).toBe(0);
    expect(tenant.stderr).toContain(`modelgate: database ${testEnv.databaseUrl.replace(/\/$/, '')} (direct)`);
    const created = await cli(direct, 'keys', 'create', '--tenant', ops, '--scopes', 'admin', '--name', 'remote admin');
    expect(created.code).toBe(0);
    adminKey = created.stdout;
    expect(adminKey).toMatch(KEY);
    gw = await starting;
    remote = { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: adminKey };
    targetLine = `modelgate: gateway ${gw.url} (remote, key ${adminKey.slice(0, 16)}…)`;
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('creates a tenant and a key (shown once), lists and shows it, and says it talks to the gateway', async () => {
    const tenant = await cli(remote, 'tenants', 'create', acme, '--rpm', '120', '--json');
    expect(tenant.code).toBe(0);
    expect(tenant.stderr.split('\n')[0]).toBe(targetLine);
    expect(tenant.stdout + tenant.stderr).not.toContain(adminKey.slice(16));
    expect(JSON.parse(tenant.stdout)).toMatchObject({ name: acme, status: 'ACTIVE', requestsPerMinute: 120, monthlyComputeUnitQuota: null });

    const created = await cli(remote, 'keys', 'create', '--tenant', acme, '--scopes', 'inference,usage:read', '--models', 'fashion-cnn', '--expires', '30d', '--name', 'web');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(KEY);
    expect(created.stderr).toContain('shown only once');
    const key = created.stdout;
    const me = await gw.graphql<{ me: { scopes: string[]; allowedModels: string[]; tenant: { name: string } } }>(ME, {}, { authorization: `Bearer ${key}` });
    expect(me.body?.data?.me).toEqual({ scopes: ['INFERENCE', 'USAGE_READ'], allowedModels: ['fashion-cnn'], tenant: { name: acme } });

    const listed = await cli(remote, 'keys', 'list', '--tenant', acme, '--json');
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(key.slice(16));
    const rows = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    // Made through the gateway: the audit label is the admin key, not a local user.
    expect(rows[0]).toMatchObject({ prefix: key.slice(0, 16), tenant: acme, scopes: ['inference', 'usage:read'], status: 'active', createdBy: `key:${adminKey.slice(0, 16)}` });

    const [shown, shownJson, directShow, human] = await Promise.all([
      cli(remote, 'keys', 'show', key.slice(0, 16)),
      cli(remote, 'keys', 'show', key.slice(0, 16), '--json'),
      cli(direct, 'keys', 'show', key.slice(0, 16), '--json'),
      cli(remote, 'keys', 'list', '--tenant', acme),
    ]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`tenant:    ${acme}`);
    expect(shown.stdout).toMatch(/scopes: +inference,usage:read\n/);
    expect(shown.stdout).toMatch(/models: +fashion-cnn\n/);
    expect(JSON.parse(shownJson.stdout)).toMatchObject({ prefix: key.slice(0, 16), name: 'web', tenant: acme, allowedModels: ['fashion-cnn'] });

    // The same records as the direct mode prints them.
    const { lastUsedAt: _a, ...remoteView } = JSON.parse(shownJson.stdout) as Record<string, unknown>;
    const { lastUsedAt: _b, ...directView } = JSON.parse(directShow.stdout) as Record<string, unknown>;
    expect(remoteView).toEqual(directView);

    expect(human.stdout.split('\n')[0]).toMatch(/^ID +PREFIX +NAME +TENANT +SCOPES/);
    expect(human.stdout).toContain(key.slice(0, 16));
  });

  it('updates scopes, rotates, and revokes: the gateway refuses the revoked key', async () => {
    const created = await cli(remote, 'keys', 'create', '--tenant', acme, '--scopes', 'inference,usage:read', '--name', 'rotating', '--json');
    expect(created.code).toBe(0);
    const { plaintext: oldKey, apiKey } = JSON.parse(created.stdout) as { plaintext: string; apiKey: { id: string; prefix: string } };
    expect(oldKey).toMatch(KEY);

    const updated = await cli(remote, 'keys', 'update', apiKey.prefix, '--scopes', 'inference', '--rpm', '7', '--meta', 'owner=ana', '--json');
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ id: apiKey.id, scopes: ['inference'], requestsPerMinute: 7, metadata: { owner: 'ana' } });
    expect((await meUntil(oldKey, (_s, scopes) => scopes?.length === 1)).body?.data?.me.scopes).toEqual(['INFERENCE']);

    const rotated = await cli(remote, 'keys', 'rotate', apiKey.id, '--grace', '1h', '--json');
    expect(rotated.code).toBe(0);
    const r = JSON.parse(rotated.stdout) as { plaintext: string; apiKey: { prefix: string; scopes: string[] }; previous: { id: string; status: string; graceUntil: string } };
    expect(r.plaintext).toMatch(KEY);
    expect(r.apiKey.scopes).toEqual(['inference']);
    expect(r.previous).toMatchObject({ id: apiKey.id, status: 'grace' });
    expect(Date.parse(r.previous.graceUntil)).toBeGreaterThan(Date.now());
    expect((await gw.graphql(ME, {}, { authorization: `Bearer ${oldKey}` })).status).toBe(200);
    const newKeyCachedAt = Date.now();
    expect((await gw.graphql(ME, {}, { authorization: `Bearer ${r.plaintext}` })).status).toBe(200);

    const revoked = await cli(remote, 'keys', 'revoke', r.apiKey.prefix);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/revoked$/);
    expect((await meUntil(r.plaintext, (status) => status !== 200, newKeyCachedAt)).status).toBe(401);
    const again = await cli(remote, 'keys', 'revoke', r.apiKey.prefix, '--json');
    expect(JSON.parse(again.stdout)).toMatchObject({ prefix: r.apiKey.prefix, status: 'revoked' });
    const revokedOnly = await cli(remote, 'keys', 'list', '--tenant', acme, '--revoked', '--json');
    expect((JSON.parse(revokedOnly.stdout) as { prefix: string }[]).map((k) => k.prefix)).toEqual([r.apiKey.prefix]);
  });

  it('changes, suspends and resumes a tenant, and lists tenants, with --json parsing each time', async () => {
    const key = (await cli(remote, 'keys', 'create', '--tenant', acme, '--scopes', 'inference')).stdout;
    const limits = await cli(remote, 'tenants', 'update', acme, '--monthly-quota', '1000', '--rpm', 'default', '--json');
    expect(limits.code).toBe(0);
    expect(JSON.parse(limits.stdout)).toMatchObject({ name: acme, requestsPerMinute: null, monthlyComputeUnitQuota: 1000 });
    const suspended = await cli(remote, 'tenants', 'suspend', acme, '--json');
    expect(JSON.parse(suspended.stdout)).toMatchObject({ name: acme, status: 'SUSPENDED' });
    expect((await meUntil(key, (status) => status !== 200)).status).toBe(403);
    const suspendedCachedAt = lastMeReadAt;
    const resumed = await cli(remote, 'tenants', 'resume', acme);
    expect(resumed.stdout).toMatch(new RegExp(`^tenant ${acme} \\(.*\\) ACTIVE`));
    expect((await meUntil(key, (status) => status === 200, suspendedCachedAt)).status).toBe(200);
    const all = await cli(remote, 'tenants', 'list', '--json');
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { name: string }[]).map((t) => t.name)).toEqual(expect.arrayContaining([ops, acme]));
  });

  it('reports the gateway refusing the operation with exit 1 and its message', async () => {
    const [dup, unknown, badScope] = await Promise.all([
      cli(remote, 'tenants', 'create', acme),
      cli(remote, 'keys', 'revoke', 'mg_live_00000000'),
      cli(remote, 'keys', 'create', '--tenant', acme, '--scopes', 'superuser'),
    ]);
    expect(dup).toMatchObject({ code: 1, stdout: '' });
    expect(dup.stderr).toMatch(new RegExp(`Tenant "${acme}" already exists \\(BAD_USER_INPUT, request `));
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/Unknown API key \(NOT_FOUND/);
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toMatch(/Unknown scope "superuser"/);
    expect(badScope.stderr).not.toContain('modelgate: gateway'); // refused before any target was touched
    expectNoStack(unknown);
  });

  it('refuses with exit 5 when the admin key is absent, malformed, unknown or lacks the scope', async () => {
    const stranger = generateKey('live').plaintext;
    const [absent, malformed, unknown, inferenceKey] = await Promise.all([
      cli({ MODELGATE_URL: gw.url }, 'tenants', 'list'),
      cli({ MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: 'hunter2' }, 'tenants', 'list'),
      cli({ MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: stranger }, 'keys', 'revoke', 'mg_live_00000000'),
      cli(remote, 'keys', 'create', '--tenant', acme, '--scopes', 'inference'),
    ]);
    expect(absent).toMatchObject({ code: 5, stdout: '' });
    expect(absent.stderr).toContain(`modelgate: gateway ${gw.url} (remote, key none)`);
    expect(absent.stderr).toMatch(/MODELGATE_ADMIN_KEY is not set/);

    expect(malformed.code).toBe(5);
    expect(malformed.stderr).toMatch(/MODELGATE_ADMIN_KEY is not a modelgate key/);
    expect(malformed.stderr).not.toContain('hunter2');

    expect(unknown).toMatchObject({ code: 5, stdout: '' });
    expect(unknown.stderr).toMatch(new RegExp(`the gateway refused the admin key ${stranger.slice(0, 16)}…: .*\\(UNAUTHENTICATED`));
    expect(unknown.stderr).not.toContain(stranger.slice(16));
    expectNoStack(unknown);

    const weak = await cli({ MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: inferenceKey.stdout }, 'tenants', 'list', '--json');
    expect(weak).toMatchObject({ code: 5, stdout: '' });
    expect(weak.stderr).toMatch(/lacks the scope.*\(FORBIDDEN/);
  });

  it("with a keys:manage key, refuses (exit 5, naming the field) raising an admin-set limit or credits and revoking the tenant's admin key", async () => {
    const tenant = `clipriv-${id}`;
    expect((await cli(remote, 'tenants', 'create', tenant)).code).toBe(0);
    const [manager, target, tenantAdmin] = await Promise.all([
      cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'keys:manage', '--name', 'manager'),
      cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'inference', '--name', 'limited', '--rpm', '10', '--credits', '10/daily', '--json'),
      cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'admin', '--name', 'tenant admin', '--json'),
    ]);
    const managed = { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: manager.stdout };
    const targetId = (JSON.parse(target.stdout) as { apiKey: { id: string } }).apiKey.id;
    const adminId = (JSON.parse(tenantAdmin.stdout) as { apiKey: { id: string } }).apiKey.id;
    const [rpm, credits, revokeAdmin] = await Promise.all([
      cli(managed, 'keys', 'update', targetId, '--rpm', '1000'),
      cli(managed, 'keys', 'update', targetId, '--credits', '1000000000/daily'),
      cli(managed, 'keys', 'revoke', adminId),
    ]);
    expect(rpm).toMatchObject({ code: 5, stdout: '' });
    expect(rpm.stderr).toMatch(/Only an admin may set requestsPerMinute above 10 .*\(FORBIDDEN/);
    expect(credits).toMatchObject({ code: 5, stdout: '' });
    expect(credits.stderr).toMatch(/Only an admin may raise or change credits.*\(FORBIDDEN/);
    expect(revokeAdmin).toMatchObject({ code: 5, stdout: '' });
    expect(revokeAdmin.stderr).toMatch(/Only an admin key may revoke admin keys \(FORBIDDEN/);
    expectNoStack(rpm);
    // Tightening goes through; the admin key was not revoked.
    const lower = await cli(managed, 'keys', 'update', targetId, '--rpm', '5', '--json');
    expect(lower.code).toBe(0);
    const [shown, admin] = await Promise.all([cli(remote, 'keys', 'show', targetId, '--json'), cli(remote, 'keys', 'show', adminId, '--json')]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ requestsPerMinute: 5 });
    expect(JSON.parse(admin.stdout)).toMatchObject({ status: 'active' });
    const stored = await gw.graphql<{ apiKey: { credits: unknown } }>('query($id: ID!) { apiKey(id: $id) { credits { refillAmount refillInterval } } }', { id: targetId }, { authorization: `Bearer ${adminKey}` });
    expect(stored.body?.data?.apiKey.credits).toEqual({ refillAmount: 10, refillInterval: 'DAILY' });
  });

  it('reads the admin key from --admin-key-file with --url', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cli-key-'));
    const file = path.join(dir, 'admin.key');
    writeFileSync(file, `${adminKey}\n`, { mode: 0o600 });
    const run = await cli({}, '--url', gw.url, '--admin-key-file', file, 'keys', 'list', '--tenant', acme, '--json');
    expect(run.code).toBe(0);
    expect(run.stderr.split('\n')[0]).toBe(targetLine);
    expect(Array.isArray(JSON.parse(run.stdout))).toBe(true);
  });

  it('exits 4 without a stack trace when the URL is unreachable, silent or not a gateway', async () => {
    const port = await freePort();
    const down = await cli({ MODELGATE_URL: `http://127.0.0.1:${port}`, MODELGATE_ADMIN_KEY: adminKey }, 'tenants', 'list');
    expect(down).toMatchObject({ code: 4, stdout: '' });
    expect(down.stderr).toMatch(new RegExp(`cannot reach gateway http://127.0.0.1:${port} \\(ECONNREFUSED\\)`));
    expectNoStack(down);

    // Accepts connections and never answers: --timeout bounds the wait.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const silentPort = (silent.address() as net.AddressInfo).port;
      const hung = await cli({ MODELGATE_URL: `http://127.0.0.1:${silentPort}`, MODELGATE_ADMIN_KEY: adminKey }, '--timeout', '1s', 'keys', 'list');
      expect(hung.code).toBe(4);
      expect(hung.stderr).toMatch(/no answer from gateway http:\/\/127\.0\.0\.1:\d+ within 1 s/);
      expectNoStack(hung);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }

    const wrongPath = await cli({ MODELGATE_URL: `${gw.url}/v2`, MODELGATE_ADMIN_KEY: adminKey }, 'tenants', 'list');
    expect(wrongPath.code).toBe(4);
    expect(wrongPath.stderr).toMatch(/has no GraphQL endpoint at .*\/v2\/graphql \(HTTP 404\)/);
  });

  it('never guesses between two targets, and keeps database-only commands off the gateway', async () => {
    const [both, bothEnv, chosen, bootstrap, env] = await Promise.all([
      cli({ ...remote }, '--database-url', testEnv.databaseUrl, '--url', gw.url, 'tenants', 'list'),
      cli({ ...remote, DATABASE_URL: testEnv.databaseUrl }, 'tenants', 'list'),
      // An option chooses: --url beats DATABASE_URL in the environment, and the line says so.
      cli({ DATABASE_URL: testEnv.databaseUrl, MODELGATE_ADMIN_KEY: adminKey }, '--url', gw.url, 'tenants', 'list', '--json'),
      cli(remote, 'admin', 'bootstrap'),
      cli(remote, 'keys', 'create', '--tenant', acme, '--scopes', 'inference', '--env', 'test'),
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--url \(a gateway\) and --database-url \(a database\) name two targets/);
    expect(bothEnv.code).toBe(2);
    expect(bothEnv.stderr).toMatch(/MODELGATE_URL \(a gateway\) and DATABASE_URL \(a database\) are both set/);
    expect(chosen.code).toBe(0);
    expect(chosen.stderr.split('\n')[0]).toBe(targetLine);

    expect(bootstrap).toMatchObject({ code: 2, stdout: '' });
    expect(bootstrap.stderr).toMatch(/admin bootstrap works on a database only, not through a gateway/);
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/--env works only against a database/);
  });
  it('sets money budgets and credit balances with field flags, grants credits through the gateway, and refuses a grant on a database', async () => {
    const tenant = `clicredits-${id}`;
    const made = await cli(remote, 'tenants', 'create', tenant, '--monthly-spend', '5000000:usd', '--json');
    expect(made.code).toBe(0);
    const created = await cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'inference', '--name', 'prepaid', '--credits', '10/daily', '--monthly-spend', '1000000:USD', '--json');
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { plaintext: string; apiKey: { id: string } };
    const grant = await cli(remote, 'credits', 'grant', '--tenant', tenant, '--key', key.apiKey.id, '--amount', '25', '--reason', 'cli test', '--json');
    expect(grant.code).toBe(0);
    expect(JSON.parse(grant.stdout)).toMatchObject({ apiKeyId: key.apiKey.id, amount: 25, balance: 35 });
    // The key's own view: the balance and the money budget, as the limiter holds them.
    const me = await gw.graphql<{ me: { limits: { limits: { name: string; remaining: number; currency: string | null }[] } } }>(
      '{ me { limits { limits { name remaining currency } } } }', {}, { authorization: `Bearer ${key.plaintext}` });
    const limits = me.body!.data!.me.limits.limits;
    expect(limits.find((l) => l.name === 'key_credits')).toMatchObject({ remaining: 35 });
    expect(limits.find((l) => l.name === 'key_monthly_spend')).toMatchObject({ remaining: 1000000, currency: 'USD' });
    expect(limits.find((l) => l.name === 'tenant_monthly_spend')).toMatchObject({ remaining: 5000000, currency: 'USD' });

    // A change made on the database drops the balance the gateways hold in Redis: the next check
    // rebuilds it under the new refill (50 + the 25 granted today), where the old figure was 35.
    const changed = await cli(direct, 'keys', 'update', key.apiKey.id, '--credits', '50/daily', '--json');
    expect({ code: changed.code, stderr: changed.stderr }).toMatchObject({ code: 0 });
    const credits = await until(
      'the key_credits balance to be rebuilt',
      async () =>
        (await gw.graphql<{ me: { limits: { limits: { name: string; remaining: number }[] } } }>('{ me { limits { limits { name remaining } } } }', {}, { authorization: `Bearer ${key.plaintext}` })).body?.data?.me.limits.limits.find(
          (l) => l.name === 'key_credits',
        ),
      { accept: (c) => c !== undefined && c.remaining !== 35 },
    );
    expect(credits).toMatchObject({ remaining: 75 });

    const [badSpend, badCredits, onDatabase] = await Promise.all([
      cli(remote, 'keys', 'update', key.apiKey.id, '--monthly-spend', '12.5USD'),
      cli(remote, 'keys', 'update', key.apiKey.id, '--credits', '10/weekly'),
      cli(direct, 'credits', 'grant', '--tenant', tenant, '--amount', '5'),
    ]);
    expect(badSpend.code).toBe(2);
    expect(badSpend.stderr).toMatch(/--monthly-spend must be <micro-units>:<currency>/);
    expect(badCredits.code).toBe(2);
    expect(badCredits.stderr).toMatch(/--credits must be <n>\/daily, <n>\/monthly, topup/);
    expect(onDatabase.code).toBe(2);
    expect(onDatabase.stderr).toMatch(/credits grant works through a gateway only/);
    expectNoStack(onDatabase);
  });
  it('manages webhooks through the gateway: secret shown once, list, delivery log, redeliver, rotate, delete; refused on a database', async () => {
    const tenant = `cliwebhooks-${id}`;
    expect((await cli(remote, 'tenants', 'create', tenant)).code).toBe(0);
    // Nothing listens on port 1: every attempt fails, so the log has something to show.
    const created = await cli(remote, 'webhooks', 'create', 'http://127.0.0.1:1/hook', '--tenant', tenant, '--events', 'key.revoked', '--thresholds', '50,100');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown only once/);
    const list = await cli(remote, 'webhooks', 'list', '--tenant', tenant, '--json');
    const hooks = JSON.parse(list.stdout) as { id: string; events: string[]; thresholds: number[]; secretPrefix: string }[];
    expect(hooks).toHaveLength(1);
    expect(hooks[0]).toMatchObject({ events: ['key.revoked'], thresholds: [50, 100] });
    expect(created.stdout.startsWith(hooks[0]!.secretPrefix)).toBe(true);
    expect(list.stdout).not.toContain(created.stdout);

    const key = JSON.parse((await cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'inference', '--name', 'soon revoked', '--json')).stdout) as { apiKey: { id: string } };
    expect((await cli(remote, 'keys', 'revoke', key.apiKey.id)).code).toBe(0);
    const deliveries = await until(
      'the key.revoked delivery to be FAILED',
      async () => JSON.parse((await cli(remote, 'webhooks', 'deliveries', '--tenant', tenant, '--json')).stdout) as { id: string; eventType: string; status: string; attempts: number; lastError: string | null }[],
      { accept: (d) => d[0]?.status === 'FAILED', everyMs: 100 },
    );
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ eventType: 'key.revoked', status: 'FAILED', attempts: 2 });
    expect(deliveries[0]!.lastError).toBeTruthy();
    const failed = await cli(remote, 'webhooks', 'deliveries', '--tenant', tenant, '--status', 'failed');
    expect(failed.stdout).toContain(deliveries[0]!.id);
    const again = await cli(remote, 'webhooks', 'redeliver', deliveries[0]!.id, '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ id: deliveries[0]!.id, status: 'PENDING' });

    const rotated = await cli(remote, 'webhooks', 'rotate-secret', hooks[0]!.id);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/^whsec_/);
    expect(rotated.stdout).not.toBe(created.stdout);
    expect((await cli(remote, 'webhooks', 'delete', hooks[0]!.id)).code).toBe(0);
    expect(JSON.parse((await cli(remote, 'webhooks', 'list', '--tenant', tenant, '--json')).stdout)).toEqual([]);

    const [onDatabase, badStatus] = await Promise.all([
      cli(direct, 'webhooks', 'list', '--tenant', tenant),
      cli(remote, 'webhooks', 'deliveries', '--status', 'lost'),
    ]);
    expect(onDatabase.code).toBe(2);
    expect(onDatabase.stderr).toMatch(/webhooks list works through a gateway only/);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toMatch(/--status must be PENDING, DELIVERED or FAILED/);
  });
});
