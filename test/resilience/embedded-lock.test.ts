/**
 * Embedded mode is exclusive, on the production build: while one gateway
 * runs on an embedded DATA_DIR, a second gateway and the CLI exit non-zero
 * at once, naming the holder and what to do, and write nothing; what the
 * first wrote survives. A lock left by `kill -9` is taken over at start.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ProductionGateway, productionEnv, runCli, STARTUP_TEST_TIMEOUT_MS } from '../harness';

// Embedded first starts (PGlite migrations), up to two per test.
jest.setTimeout(2 * STARTUP_TEST_TIMEOUT_MS);

const TENANTS = 'query { tenants(first: 100) { edges { node { name } } } }';
const CREATE_TENANT = 'mutation($name: String!) { createTenant(input: { name: $name }) { name } }';

/** Production settings on an embedded database (no DATABASE_URL), no Redis. */
function embeddedEnv(): Record<string, string> {
  const env = productionEnv({ redisUrl: null });
  delete env['DATABASE_URL'];
  return env;
}

async function tenantNames(gateway: ProductionGateway, key: string): Promise<string[]> {
  const res = await gateway.graphql<{ tenants: { edges: { node: { name: string } }[] } }>(TENANTS, {}, { authorization: `Bearer ${key}` });
  expect(res.body?.errors).toBeUndefined();
  return (res.body?.data?.tenants.edges ?? []).map((e) => e.node.name).sort();
}

describe('one process per embedded DATA_DIR (production build)', () => {
  const started: ProductionGateway[] = [];
  afterAll(async () => {
    for (const g of started) if (g.running) await g.kill();
  });

  it('refuses a second gateway and the CLI while a gateway holds DATA_DIR, naming the holder, and loses nothing', async () => {
    const env = embeddedEnv();
    const bootstrap = await runCli(['admin', 'bootstrap', '--tenant', 'ops'], env);
    expect({ code: bootstrap.code, stderr: bootstrap.code === 0 ? '' : bootstrap.stderr }).toEqual({ code: 0, stderr: '' });
    const key = bootstrap.stdout.trim();

    const first = await ProductionGateway.start(env);
    started.push(first);
    const created = await first.graphql<{ createTenant: { name: string } }>(CREATE_TENANT, { name: 'written-by-first' }, { authorization: `Bearer ${key}` });
    expect(created.body?.data?.createTenant.name).toBe('written-by-first');

    const holder = new RegExp(`in use by another modelgate process \\(gateway pid ${first.pid} on host [^,]+, started [0-9T:.-]+Z\\)`);

    const second = await ProductionGateway.start(env, { waitReady: false });
    started.push(second);
    const exit = await second.waitExit(30_000);
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(second.output).toMatch(holder);
    expect(second.output).toContain('stop that process first');
    expect(second.output).toContain('DATABASE_URL');

    const cliCreate = await runCli(['tenants', 'create', 'written-by-cli'], env);
    expect(cliCreate.code).toBe(4);
    expect(cliCreate.stderr).toMatch(holder);

    // The first gateway is untouched: it still serves, and holds exactly what it wrote.
    expect(await tenantNames(first, key)).toEqual(['ops', 'written-by-first']);
    const lock = JSON.parse(readFileSync(path.join(env['DATA_DIR']!, 'modelgate.lock'), 'utf8')) as { pid: number; role: string };
    expect(lock).toMatchObject({ pid: first.pid, role: 'gateway' });

    // After it stops, the CLI gets the directory and finds the first gateway's write.
    await first.stop();
    const list = await runCli(['tenants', 'list', '--json'], env);
    expect({ code: list.code, stderr: list.code === 0 ? '' : list.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name).sort()).toEqual(['ops', 'written-by-first']);
  });

  it('takes over the lock of a gateway killed with kill -9', async () => {
    const env = embeddedEnv();
    const bootstrap = await runCli(['admin', 'bootstrap', '--tenant', 'ops'], env);
    expect({ code: bootstrap.code, stderr: bootstrap.code === 0 ? '' : bootstrap.stderr }).toEqual({ code: 0, stderr: '' });
    const key = bootstrap.stdout.trim();

    const crashed = await ProductionGateway.start(env);
    started.push(crashed);
    const created = await crashed.graphql<{ createTenant: { name: string } }>(CREATE_TENANT, { name: 'before-the-crash' }, { authorization: `Bearer ${key}` });
    expect(created.body?.data?.createTenant.name).toBe('before-the-crash');
    await crashed.kill();
    // The dead process's lock file is still there...
    const stale = JSON.parse(readFileSync(path.join(env['DATA_DIR']!, 'modelgate.lock'), 'utf8')) as { pid: number };
    expect(stale.pid).toBe(crashed.pid);

    // ...and the next gateway takes it over and starts.
    const next = await crashed.restart();
    started.push(next);
    const taken = JSON.parse(readFileSync(path.join(env['DATA_DIR']!, 'modelgate.lock'), 'utf8')) as { pid: number };
    expect(taken.pid).toBe(next.pid);
    expect(await tenantNames(next, key)).toEqual(['before-the-crash', 'ops']);
    await next.stop();
  });
});
