import { readFileSync } from 'node:fs';
import path from 'node:path';
import { graphql, startGateway, spawnGateway, baseEnv, freePort, type TestGateway } from '../helpers/gateway';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const HEALTH = '{ health { status version uptimeSeconds database databaseMode redis } }';

describe('gateway on PostgreSQL and Redis', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it('answers health with both servers up', async () => {
    const res = await graphql(gw.url, HEALTH);
    expect(res.status).toBe(200);
    expect(res.body.data?.['health']).toMatchObject({ status: 'ok', database: 'UP', databaseMode: 'POSTGRES', redis: 'UP' });
  });

  it('marks every GraphQL answer, data or error, as not to be stored by a cache', async () => {
    const answered = await graphql(gw.url, HEALTH);
    const refused = await graphql(gw.url, '{ nope }');
    expect([answered.status, refused.status]).toEqual([200, 400]);
    expect([answered.headers.get('cache-control'), refused.headers.get('cache-control')]).toEqual(['no-store', 'no-store']);
  });

  it('reports each component in /readyz and is alive on /healthz', async () => {
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { components: Record<string, { ready: boolean }> };
    expect(body.components['database']?.ready).toBe(true);
    expect(body.components['redis']?.ready).toBe(true);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it('echoes x-request-id and puts it in error extensions', async () => {
    const res = await graphql(gw.url, '{ nope }', {}, { 'x-request-id': 'req-abc-123' });
    expect(res.headers.get('x-request-id')).toBe('req-abc-123');
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', requestId: 'req-abc-123' });
  });

  it('replaces an unsafe x-request-id with a generated one', async () => {
    const res = await graphql(gw.url, HEALTH, {}, { 'x-request-id': 'bad id with spaces' });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers malformed GraphQL with 400 GRAPHQL_PARSE_FAILED', async () => {
    const res = await graphql(gw.url, '{ health { status ', {}, { 'x-request-id': 'parse-1' });
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_PARSE_FAILED', requestId: 'parse-1' });
  });

  it('refuses a document over the token limit at parse time', async () => {
    const res = await graphql(gw.url, `{ ${Array.from({ length: 2000 }, () => 'health { status }').join(' ')} }`);
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.extensions?.['code']).toBe('GRAPHQL_PARSE_FAILED');
    expect(res.body.errors?.[0]?.message).toMatch(/more that 5000 tokens/);
  });

  it('answers a non-JSON body with a 400, not a 500', async () => {
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    expect(res.status).toBe(400);
  });

  it('refuses queries over the depth and alias limits with a coded error', async () => {
    const deep = await graphql(gw.url, '{ health { status } ' + 'a: __schema { types { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } } } }');
    expect(deep.status).toBe(400);
    expect(deep.body.errors?.[0]?.extensions?.['code']).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(deep.body.errors?.[0]?.message).toMatch(/depth/i);
    const aliases = Array.from({ length: 40 }, (_, i) => `h${i}: health { status }`).join(' ');
    const many = await graphql(gw.url, `{ ${aliases} }`);
    expect(many.body.errors?.[0]?.message).toMatch(/aliases/i);
  });

  it('refuses batched HTTP requests', async () => {
    const res = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ query: HEALTH }, { query: HEALTH }]),
    });
    expect(res.status).toBe(400);
  });

  it('returns 404 JSON for unknown routes', async () => {
    const res = await fetch(`${gw.url}/does-not-exist`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ errors: [{ extensions: { code: 'NOT_FOUND', requestId: res.headers.get('x-request-id') } }] });
  });

  it('exposes Prometheus metrics including HTTP request histograms', async () => {
    await graphql(gw.url, HEALTH);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toMatch(/modelgate_http_request_duration_seconds_count\{method="POST",route="\/graphql",status_code="200"\} \d+/);
  });

  it('serves GraphiQL from local npm assets on a browser GET', async () => {
    const page = await fetch(`${gw.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/graphiql/graphiql.js');
    expect(html).not.toMatch(/https?:\/\//);
    for (const asset of ['graphiql.js', 'graphiql.css', 'react.js', 'react-dom.js']) {
      expect((await fetch(`${gw.url}/graphiql/${asset}`)).status).toBe(200);
    }
  });

  it('serves each GraphiQL asset as the package file, the same bytes on every request, and only its own names', async () => {
    const file = readFileSync(path.join(path.dirname(require.resolve('graphiql/package.json')), 'graphiql.min.js'));
    // Concurrent first requests share one read.
    const bodies = await Promise.all([1, 2, 3].map(async () => Buffer.from(await (await fetch(`${gw.url}/graphiql/graphiql.js`)).arrayBuffer())));
    for (const body of bodies) expect(body.equals(file)).toBe(true);
    for (const name of ['constructor', '__proto__', 'toString', 'nope.js']) {
      const res = await fetch(`${gw.url}/graphiql/${name}`);
      expect({ name, status: res.status }).toEqual({ name, status: 404 });
    }
  });

  it('answers a GraphQL GET query (with the CSRF-safe header)', async () => {
    const res = await fetch(`${gw.url}/graphql?query=${encodeURIComponent('{ health { status } }')}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
    expect(res.status).toBe(200);
  });
});

describe('gateway limits', () => {
  it('answers a body over the limit with 413 and a clear message', async () => {
    const gw = await startGateway({ BODY_LIMIT_BYTES: '2048' });
    try {
      const res = await fetch(`${gw.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: HEALTH, variables: { pad: 'x'.repeat(5000) } }),
      });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ errors: [{ message: expect.stringContaining('BODY_LIMIT_BYTES'), extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    } finally {
      await gw.close();
    }
  });
});

describe('embedded mode (no DATABASE_URL, no REDIS_URL)', () => {
  it('runs on PGlite with in-process limits and says so once', async () => {
    const gw = await startGateway({}, { mode: 'embedded' });
    try {
      const res = await graphql(gw.url, HEALTH);
      expect(res.body.data?.['health']).toMatchObject({ status: 'ok', database: 'UP', databaseMode: 'EMBEDDED', redis: 'NOT_CONFIGURED' });
      const warnings = gw.logs.lines.filter((l) => l.includes('REDIS_URL is not set'));
      expect(warnings).toHaveLength(1);
    } finally {
      await gw.close();
    }
  });
});

describe('database unreachable at start', () => {
  it('keeps serving, reports 503 on /readyz with the reason, and logs the failure', async () => {
    const deadPort = await freePort();
    const gw = await startGateway(
      { DATABASE_URL: `postgresql://postgres@127.0.0.1:${deadPort}/nothing`, DATABASE_CONNECT_RETRY_MAX_MS: '500' },
      { waitReady: false },
    );
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const res = await fetch(`${gw.url}/readyz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { components: Record<string, { ready: boolean; detail: { error?: string } }> };
      expect(body.components['database']?.ready).toBe(false);
      expect(body.components['database']?.detail.error).toMatch(/ECONNREFUSED/);
      expect(gw.logs.text).toContain('database unavailable, retrying');
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
      const health = await graphql(gw.url, HEALTH);
      expect(health.body.data?.['health']).toMatchObject({ status: 'degraded', database: 'DOWN' });
    } finally {
      await gw.close();
    }
  });
});

describe('process lifecycle', () => {
  it('starts from dist/main.js and exits 0 on SIGTERM after draining', async () => {
    const proc = await spawnGateway(baseEnv('postgres'));
    const res = await graphql(proc.url, HEALTH);
    expect(res.status).toBe(200);
    const code = await proc.stop('SIGTERM');
    expect(code).toBe(0);
    expect(proc.output()).toContain('shutdown complete');
  });
});
