/**
 * Issue #27 item 5: the production build with DATABASE_URL through PgBouncer
 * in transaction mode (Debian's pgbouncer, started by the test as the
 * `postgres` user, which it requires) and DATABASE_DIRECT_URL to Postgres
 * itself for what a transaction pooler cannot carry: LISTEN (key
 * invalidations; NOTIFY is sent inside the revoking transaction, which works
 * through the pooler) and migrations (the schema engine's session lock).
 * Advisory locks the gateway takes are transaction-scoped
 * (pg_advisory_xact_lock), which transaction pooling keeps. No Redis, so the
 * revocation below can only arrive over Postgres NOTIFY (or the key cache's
 * TTL: the time it took is printed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { ProductionGateway, productionEnv } from '../harness';
import { until } from '../harness/until';
import { authHeaders, closeTestKeys, createTestKey, testKeyService } from '../helpers/auth';
import { metricValue } from '../hostile/helpers';
import { freePort } from '../helpers/capture';
import { testEnv } from '../helpers/env';
import { imageTensor, INFER } from '../inference/fixtures';

const PGBOUNCER = '/usr/sbin/pgbouncer';

function postgresIds(): { uid: number; gid: number } {
  const [uid, gid] = execFileSync('sh', ['-c', 'id -u postgres; id -g postgres'], { encoding: 'utf8' }).trim().split('\n').map(Number);
  return { uid: uid!, gid: gid! };
}

/** A private PgBouncer in transaction mode in front of the test database; resolves with its URL and a stop function. */
async function startPgBouncer(): Promise<{ url: string; stop: () => void; log: () => string }> {
  const direct = new URL(testEnv.databaseUrl);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-pgbouncer-'));
  const port = await freePort();
  const user = decodeURIComponent(direct.username || 'postgres');
  const dbname = direct.pathname.slice(1);
  writeFileSync(path.join(dir, 'users.txt'), `"${user}" ""\n`);
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${dbname} = host=${direct.hostname} port=${direct.port || 5432} dbname=${dbname}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'auth_type = trust',
      `auth_file = ${dir}/users.txt`,
      'pool_mode = transaction',
      'default_pool_size = 4',
      'max_client_conn = 200',
      // node-postgres sends these startup parameters; PgBouncer refuses unknown ones unless told to ignore them.
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${dir}/pgbouncer.log`,
      `pidfile = ${dir}/pgbouncer.pid`,
      `unix_socket_dir = ${dir}`,
      '',
    ].join('\n'),
  );
  const { uid, gid } = postgresIds();
  chmodSync(dir, 0o755);
  for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(path.join(dir, f), uid, gid);
  // PgBouncer refuses to run as root.
  const started = spawnSync('su', ['postgres', '-s', '/bin/sh', '-c', `${PGBOUNCER} -d ${dir}/pgbouncer.ini`], { encoding: 'utf8' });
  if (started.status !== 0) throw new Error(`pgbouncer did not start: ${started.stderr}${started.stdout}`);
  const url = new URL(testEnv.databaseUrl);
  url.port = String(port);
  const log = () => (existsSync(`${dir}/pgbouncer.log`) ? readFileSync(`${dir}/pgbouncer.log`, 'utf8') : '');
  await until('pgbouncer accepting', async () => {
    const pool = new Pool({ connectionString: url.toString(), max: 1 });
    try {
      return (await pool.query('SELECT 1 AS ok')).rows[0]?.ok === 1;
    } catch {
      return false;
    } finally {
      await pool.end();
    }
  });
  const stop = () => {
    const pid = Number(readFileSync(`${dir}/pgbouncer.pid`, 'utf8').trim());
    if (pid > 0) process.kill(pid, 'SIGTERM');
  };
  return { url: url.toString(), stop, log };
}

const describeIf = existsSync(PGBOUNCER) ? describe : describe.skip;

describeIf('through PgBouncer in transaction mode (issue #27 item 5), production build', () => {
  let bouncer: Awaited<ReturnType<typeof startPgBouncer>>;
  let gw: ProductionGateway;
  let direct: Pool;

  beforeAll(async () => {
    bouncer = await startPgBouncer();
    direct = new Pool({ connectionString: testEnv.databaseUrl, max: 2 });
    const env = productionEnv({ redisUrl: null });
    gw = await ProductionGateway.start({ ...env, DATABASE_URL: bouncer.url, DATABASE_DIRECT_URL: testEnv.databaseUrl, MIGRATE_ON_START: 'true' });
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    bouncer?.stop();
    await direct?.end();
    await closeTestKeys();
  });

  it('serves, meters, revokes over NOTIFY and migrates with the pool behind PgBouncer', async () => {
    // Migrations ran on start over the direct connection (the schema engine's lock needs a session).
    expect(gw.output).not.toMatch(/"level":50/);
    const ready = await gw.request<{ ready: boolean; checks?: unknown }>('GET', '/readyz');
    expect(ready.status).toBe(200);
    // The invalidation listener is up (over DATABASE_DIRECT_URL).
    const metrics = (await gw.request('GET', '/metrics')).text;
    expect(metrics).toMatch(/modelgate_key_invalidation_channel_up\{channel="pg_notify"\} 1/);

    const user = await createTestKey({ scopes: ['inference', 'keys:manage'] });
    const body = { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } };
    for (let i = 0; i < 5; i += 1) {
      const answer = await gw.graphql(INFER, body, authHeaders(user.key));
      expect(answer.status).toBe(200);
      expect(answer.body?.errors).toBeUndefined();
    }
    // Usage ingest wrote through the pooler: the five records arrive.
    const records = await until('5 usage records', async () => {
      const n = Number((await direct.query('SELECT count(*) AS n FROM "UsageRecord" WHERE "tenantId" = $1', [user.tenantId])).rows[0]?.n);
      return n >= 5 ? n : null;
    });
    expect(records).toBe(5);

    // A key is revoked by another process (the test's own key service, on the database directly): the
    // gateway can only learn it over Postgres NOTIFY (no Redis here) or when its cache entry expires.
    const victim = await createTestKey({ scopes: ['inference'] });
    expect((await gw.graphql(INFER, body, authHeaders(victim.key))).status).toBe(200);
    const received = async () => metricValue((await gw.request('GET', '/metrics')).text, 'modelgate_key_invalidations_received_total{channel="pg_notify"}') ?? 0;
    const before = await received();
    const revokedAt = performance.now();
    const { keys } = await testKeyService();
    await keys.revokeApiKey({ principal: null, actor: 'test' }, victim.apiKeyId);
    // The NOTIFY arrived on the listener's direct connection (through PgBouncer's transaction pooling it would not).
    await until('the invalidation over pg_notify', async () => ((await received()) > before ? true : null));
    expect((await gw.graphql(INFER, body, authHeaders(victim.key))).status).toBe(401);
    process.stdout.write(`pgbouncer: revocation by another process refused ${Math.round(performance.now() - revokedAt)} ms later, over NOTIFY\n`);
    // Every pooled query went through PgBouncer: it saw client logins from the gateway.
    expect(bouncer.log()).toMatch(/login attempt: db=\S+ user=\S+/);
  }, 120_000);
});
