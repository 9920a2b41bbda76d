/**
 * "Too many clients" on the production build (issue #28 item 4): a private
 * Postgres with a tiny max_connections whose every slot a test takes. A
 * request that needs a new database connection must answer 503 UNAVAILABLE
 * with Retry-After (the one dependency classifier), never 200 INTERNAL, and
 * no database text.
 */
import pg from 'pg';
import { PrivatePostgres, ProductionGateway, productionEnv } from '../harness';
import { errorCode, KeyFactory, until } from './helpers';

jest.setTimeout(120_000);

const TENANTS = 'query { tenants(first: 5) { edges { node { id } } } }';
const CONCURRENT = 8;

describe('Postgres out of connection slots', () => {
  const server = new PrivatePostgres();
  let gw: ProductionGateway | undefined;
  const held: pg.Client[] = [];

  beforeAll(async () => {
    await server.init();
    await server.start({ maxConnections: 12 });
  });
  afterAll(async () => {
    for (const c of held) await c.end().catch(() => undefined);
    await gw?.stop().catch(() => undefined);
    await server.destroy();
  });

  it('answers 503 UNAVAILABLE with Retry-After, not 200 INTERNAL, when a query cannot get a connection', async () => {
    gw = await ProductionGateway.start({ ...productionEnv({ databaseUrl: server.url }), RATE_LIMITS_ENABLED: 'false' });
    const gateway = gw;
    const factory = await KeyFactory.open(server.url);
    const { key } = await factory.key(await factory.tenant(), ['admin']);
    await factory.close();
    const query = () => gateway.graphql(TENANTS, {}, { authorization: `Bearer ${key}` });
    // The key is verified and cached while connections are free.
    const warm = await query();
    expect({ status: warm.status, errors: warm.body?.errors }).toEqual({ status: 200, errors: undefined });

    // Wait until the gateway's pool is down to its last idle connection (pg closes idle ones after 10 s).
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    held.push(admin);
    await until(
      'the gateway pool to shrink',
      async () => {
        const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND query NOT ILIKE 'LISTEN%'`);
        return rows[0]!.n <= 1 ? true : undefined;
      },
      { timeoutMs: 30_000, everyMs: 250 },
    );
    // Take every free slot.
    let refused = '';
    while (!refused) {
      const c = new pg.Client({ connectionString: server.url });
      try {
        await c.connect();
        held.push(c);
      } catch (error) {
        refused = (error as { code?: string }).code ?? String(error);
      }
    }
    expect(refused).toBe('53300');

    const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => query()));
    const summary = answers.map((a) => `${a.status} ${String(errorCode(a.body) ?? 'OK')}`);
    if (process.env['MG_TEST_COUNTS']) process.stderr.write(`too-many-clients: held ${held.length} connections; answers ${JSON.stringify(summary)}\n`);
    const unavailable = answers.filter((a) => a.status === 503 && errorCode(a.body) === 'UNAVAILABLE');
    // Some share the idle connection and succeed; every other one is a clean, retryable 503.
    expect(summary.filter((s) => s !== '200 OK' && s !== '503 UNAVAILABLE')).toEqual([]);
    expect(unavailable.length).toBeGreaterThanOrEqual(1);
    for (const a of unavailable) {
      expect(a.headers.get('retry-after')).toBe('1');
      expect(a.text).not.toMatch(/too many clients|53300|P2037|prisma|postgres/i);
    }
  });
});
