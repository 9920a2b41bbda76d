/**
 * Issue #12, "database text to clients": while PostgreSQL is unreachable every
 * answer that needs it is UNAVAILABLE (503) with the contract's shape and no
 * driver text — both in the window before the gateway notices (the query
 * itself fails: Prisma/pg connection errors, mapped by src/errors) and after
 * (the database is marked down). Main answered INTERNAL, then
 * "Database unavailable: P2010 … Can't reach database server at 127.0.0.1:…".
 */
import { PrivatePostgres, ProductionGateway, productionEnv, runCli, sleep, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { authHeaders } from '../helpers/auth';
import { contractViolations } from './helpers';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const NEEDS_DB = '{ tenants(first: 5) { edges { node { name } } } }';

describe('a database outage, production build', () => {
  const pg = new PrivatePostgres();
  let gw: ProductionGateway;
  let admin: string;

  beforeAll(async () => {
    await pg.init();
    await pg.start();
    const env = { ...productionEnv({ databaseUrl: pg.url, redisUrl: null }), DATABASE_CONNECT_RETRY_MAX_MS: '500', KEY_CACHE_TTL_MS: '10000' };
    gw = await ProductionGateway.start(env);
    const boot = await runCli(['admin', 'bootstrap'], env);
    admin = boot.stdout.trim();
    expect(admin).toMatch(/^mg_/);
  }, STARTUP_TEST_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.stop();
    await pg.destroy();
  });

  it('answers UNAVAILABLE without driver text from the first failed query on', async () => {
    const up = await gw.graphql(NEEDS_DB, {}, authHeaders(admin));
    expect(up.status).toBe(200);
    expect(up.body?.errors).toBeUndefined();

    await pg.stop('immediate');
    const answers: { status: number; code: unknown; text: string; violations: string[] }[] = [];
    // The key stays cached (KEY_CACHE_TTL_MS), so each request reaches the resolver's query.
    for (let i = 0; i < 12; i += 1) {
      const res = await gw.graphql(NEEDS_DB, {}, authHeaders(admin));
      answers.push({ status: res.status, code: res.body?.errors?.[0]?.extensions?.['code'], text: res.text, violations: contractViolations(res.status, res.text, res.headers.get('x-request-id')) });
      await sleep(250);
    }
    expect(answers.map((a) => [a.status, a.code])).toEqual(new Array(12).fill([503, 'UNAVAILABLE']));
    for (const a of answers) {
      expect(a.violations).toEqual([]);
      expect(a.text).not.toMatch(/P\d{4}|prisma|reach database|127\.0\.0\.1|ECONNREFUSED|terminat/i);
    }
    expect(gw.running).toBe(true);
  }, STARTUP_TEST_TIMEOUT_MS);
});
