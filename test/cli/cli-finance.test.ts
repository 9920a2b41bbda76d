/**
 * The real `modelgate` CLI (node dist/cli/main.js) on money, through a running
 * production gateway (node dist/main.js, real Postgres and Redis, the real
 * fashion-cnn model): keys show money budgets and credits, credits grant by
 * key prefix, a price set for the current hour that reprices what the hour
 * already recorded (invoice, usage summary and the money-budget counters
 * agree), usage summary/records with --csv, invoice equal to the GraphQL
 * invoice, prices list, the effective quota with its source, and shell
 * completion run by bash itself.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ProductionGateway, productionEnv, runCli, sleep, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { testEnv } from '../helpers/env';
import { imageTensor, INFER } from '../inference/fixtures';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS + 180_000);

const H = 3_600_000;

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

/** CSV as rows of named fields (the CLI quotes no field in these tests: names, ids, numbers). */
function parseCsv(text: string): Record<string, string>[] {
  const [header, ...lines] = text.split('\n');
  const cols = (header ?? '').split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i] ?? `col${i}`, v])));
}

describe('modelgate CLI: money, usage, invoices, prices, completion', () => {
  const id = randomBytes(3).toString('hex');
  const tenant = `clibill-${id}`;
  let gw: ProductionGateway;
  let remote: Record<string, string>;
  let direct: Record<string, string>;
  let adminKey: string;

  beforeAll(async () => {
    const starting = ProductionGateway.start({ ...productionEnv(), DEFAULT_MONTHLY_COMPUTE_UNIT_QUOTA: '1000000', USAGE_FLUSH_INTERVAL_MS: '200' });
    direct = { DATABASE_URL: testEnv.databaseUrl, REDIS_URL: testEnv.redisUrl, REDIS_KEY_PREFIX: testEnv.redisPrefix };
    expect((await cli(direct, 'tenants', 'create', `cliops-${id}`)).code).toBe(0);
    adminKey = (await cli(direct, 'keys', 'create', '--tenant', `cliops-${id}`, '--scopes', 'admin', '--name', 'finance admin')).stdout;
    gw = await starting;
    remote = { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: adminKey };
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('shows money budgets and credits in keys show and tenants list, and grants credits to a key named by its prefix', async () => {
    expect((await cli(remote, 'tenants', 'create', tenant, '--monthly-spend', '5000000:USD')).code).toBe(0);
    const created = json<{ plaintext: string; apiKey: { id: string; prefix: string } }>(
      await cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'inference,usage:read', '--name', 'billed', '--monthly-spend', '2000000:USD', '--credits', '100/daily', '--json'),
    );
    const prefix = created.apiKey.prefix;
    const [text, asJson, asDirect, tenants] = await Promise.all([
      cli(remote, 'keys', 'show', prefix),
      cli(remote, 'keys', 'show', prefix, '--json'),
      cli(direct, 'keys', 'show', prefix, '--json'),
      cli(remote, 'tenants', 'list'),
    ]);
    expect(text.stdout).toMatch(/^monthly-spend: 2\.000000 USD \(2000000:USD\)$/m);
    expect(text.stdout).toMatch(/^credits: +100\/daily since \d{4}-\d\d-\d\dT/m);
    expect(text.stdout).toMatch(/^monthly-budget: none$/m);
    expect(text.stdout).not.toMatch(/monthly-spend: default|credits: +default/);
    const shown = JSON.parse(asJson.stdout) as Record<string, unknown>;
    expect(shown).toMatchObject({ monthlyBudget: { amountMicros: '2000000', currency: 'USD' }, credits: { refillAmount: 100, refillInterval: 'DAILY' } });
    // The direct mode prints the same record.
    const { lastUsedAt: _a, ...remoteView } = shown;
    const { lastUsedAt: _b, ...directView } = JSON.parse(asDirect.stdout) as Record<string, unknown>;
    expect(remoteView).toEqual(directView);
    expect(tenants.stdout.split('\n').find((l) => l.includes(tenant))).toMatch(/5\.000000 USD +none$/);

    const grant = await cli(remote, 'credits', 'grant', '--tenant', tenant, '--key', prefix, '--amount', '5', '--json');
    expect(grant.code).toBe(0);
    expect(JSON.parse(grant.stdout)).toMatchObject({ apiKeyId: created.apiKey.id, amount: 5, balance: 105 });
    const unknown = await cli(remote, 'credits', 'grant', '--tenant', `cliops-${id}`, '--key', prefix, '--amount', '5');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/Unknown API key \(NOT_FOUND/);
  });

  it('prices the current hour: usage already recorded in it is billed at the new price by the invoice, the usage summary and the money budgets', async () => {
    // The requests and the price must fall in one hour: near its end, wait for the next.
    const left = H - (Date.now() % H);
    if (left < 120_000) await sleep(left + 1000);
    const key = (await cli(remote, 'keys', 'create', '--tenant', tenant, '--scopes', 'inference,usage:read', '--name', 'spender', '--monthly-spend', '2000000:USD')).stdout;
    const prefix = key.slice(0, 16);
    const cnn = (n: number) => ({ input: { model: 'fashion-cnn', inputs: [imageTensor(Array.from({ length: n }, (_, i) => i))] } });
    for (const n of [1, 2, 3]) expect((await gw.graphql(INFER, cnn(n), { authorization: `Bearer ${key}` })).body).not.toHaveProperty('errors');
    // Recorded (flushed to Postgres), still unpriced: 6 units, no spend.
    const before = await until(
      'the 6 units to be recorded',
      async () => json<{ rows: { computeUnits: number; spend: unknown[]; unpricedComputeUnits: number }[] }>(await cli(remote, 'usage', 'summary', '--key', prefix, '--json')).rows,
      { accept: (rows) => rows[0]?.computeUnits === 6 },
    );
    // Not yet at the tenant's price. (Other suites on this run's database may list-price fashion-cnn
    // from an earlier hour, e.g. billing.test's 10 micro-USD: then these 6 units carry that list price.)
    expect(before[0]!.spend).not.toContainEqual(expect.objectContaining({ amountMicros: '1500000' }));

    const [past, badPrice] = await Promise.all([
      cli(remote, 'prices', 'set', 'fashion-cnn', '0.25', '--currency', 'USD', '--tenant', tenant, '--from', new Date(Math.floor(Date.now() / H) * H - H).toISOString()),
      cli(remote, 'prices', 'set', 'fashion-cnn', '0.1234567', '--currency', 'USD'),
    ]);
    expect(past.code).toBe(1);
    expect(past.stderr).toMatch(/effectiveFrom must be the current whole UTC hour or a later one.*\(BAD_USER_INPUT/);
    expect(badPrice.code).toBe(2);
    expect(badPrice.stderr).toMatch(/at most 6 decimals/);

    const set = json<{ effectiveFrom: string; unitPriceMicros: string; currency: string }>(await cli(remote, 'prices', 'set', 'fashion-cnn', '0.25', '--currency', 'usd', '--tenant', tenant, '--json'));
    expect(set).toMatchObject({ unitPriceMicros: '250000', currency: 'USD' });
    expect(Date.parse(set.effectiveFrom)).toBe(Math.floor(Date.now() / H) * H);

    // The invoice: one line of 6 units at 0.25 USD, the same as the GraphQL invoice.
    const month = new Date().toISOString().slice(0, 7);
    const invoice = json<{ lines: { units: string; amountMicros: string; unitPriceMicros: string }[]; totals: { currency: string; amountMicros: string }[] }>(
      await cli(remote, 'invoice', tenant, 'current', '--json'),
    );
    const viaApi = await gw.graphql<{ invoice: unknown }>(
      'query($t: String!, $m: String!) { invoice(tenant: $t, month: $m) { tenantId tenantName month from to lines { model currency unitPriceMicros units amountMicros from to } totals { currency amountMicros amount } unpricedUnits } }',
      { t: tenant, m: month },
      { authorization: `Bearer ${adminKey}` },
    );
    expect(invoice).toEqual(viaApi.body?.data?.invoice);
    expect(invoice.totals).toEqual([{ currency: 'USD', amountMicros: '1500000', amount: '1.500000' }]);
    const human = await cli(remote, 'invoice', tenant, month);
    expect(human.stdout).toMatch(/^total: 1\.500000 USD$/m);
    expect(human.stdout).toMatch(/^fashion-cnn +0\.250000 +6 +1\.500000 +USD/m);
    const invoiceCsv = parseCsv((await cli(remote, 'invoice', tenant, month, '--csv')).stdout);
    expect(invoiceCsv).toEqual([expect.objectContaining({ model: 'fashion-cnn', currency: 'USD', unitPriceMicros: '250000', units: '6', amountMicros: '1500000' })]);

    // The usage summary prices the hour the same way.
    const after = json<{ rows: { spend: unknown[]; unpricedComputeUnits: number }[] }>(await cli(remote, 'usage', 'summary', '--key', prefix, '--month', 'current', '--json')).rows;
    expect(after[0]).toMatchObject({ spend: [{ currency: 'USD', amountMicros: '1500000', amount: '1.500000' }], unpricedComputeUnits: 0 });

    // The money-budget counters had charged the old price (none, or a list price) at admission: dropped and rebuilt from the repriced spend.
    const me = await gw.graphql<{ me: { limits: { limits: { name: string; remaining: number }[] } } }>('{ me { limits { limits { name remaining } } } }', {}, { authorization: `Bearer ${key}` });
    const limits = me.body!.data!.me.limits.limits;
    expect(limits.find((l) => l.name === 'key_monthly_spend')).toMatchObject({ remaining: 500_000 });
    expect(limits.find((l) => l.name === 'tenant_monthly_spend')).toMatchObject({ remaining: 3_500_000 });

    // Records by key prefix, with the tenant's name and the key's prefix in the CSV.
    const records = parseCsv((await cli(remote, 'usage', 'records', '--key', prefix, '--last', '1d', '--csv')).stdout);
    expect(records).toHaveLength(3);
    expect(records.map((r) => [r['tenant'], r['key'], r['model'], r['status']])).toEqual(Array(3).fill([tenant, prefix, 'fashion-cnn', 'OK']));
    expect(records.map((r) => Number(r['computeUnits'])).sort()).toEqual([1, 2, 3]);
    // Each record priced at its hour (the invoice rule): units × 250000 micro-USD, adding up to the invoice total.
    expect(records.map((r) => [r['currency'], BigInt(r['amountMicros'] ?? '') / 250_000n === BigInt(r['computeUnits'] ?? '')])).toEqual(Array(3).fill(['USD', true]));
    expect(records.reduce((sum, r) => sum + BigInt(r['amountMicros'] ?? ''), 0n)).toBe(1_500_000n);
    const grouped = parseCsv((await cli(remote, 'usage', 'summary', '--tenant', tenant, '--group-by', 'key,model', '--csv')).stdout);
    expect(grouped.find((r) => r['key'] === prefix)).toMatchObject({ model: 'fashion-cnn', computeUnits: '6', currency: 'USD', amountMicros: '1500000' });

    const listed = await cli(remote, 'prices', 'list', '--tenant', tenant, '--model', 'fashion-cnn');
    expect(listed.stdout).toMatch(new RegExp(`^fashion-cnn +${tenant} +0\\.250000 USD +${set.effectiveFrom.replace(/\./g, '\\.')} +started`, 'm'));

    const [both, badRange] = await Promise.all([
      cli(remote, 'usage', 'summary', '--month', 'current', '--last', '7d'),
      cli(remote, 'usage', 'records', '--month', '2026-13'),
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give one range/);
    expect(badRange.code).toBe(2);
  });

  it("exposes the tenant's effective quota and where it comes from, the gateway default included", async () => {
    const q = '{ tenants(first: 100) { edges { node { name effectiveLimits { monthlyComputeUnitQuota { value source } requestsPerMinute { source } } } } } }';
    const read = async () =>
      (await gw.graphql<{ tenants: { edges: { node: { name: string; effectiveLimits: unknown } }[] } }>(q, {}, { authorization: `Bearer ${adminKey}` })).body?.data?.tenants.edges.find(
        (e) => e.node.name === tenant,
      )?.node.effectiveLimits;
    expect(await read()).toEqual({ monthlyComputeUnitQuota: { value: 1_000_000, source: 'GATEWAY_DEFAULT' }, requestsPerMinute: { source: 'GATEWAY_DEFAULT' } });
    expect((await cli(remote, 'tenants', 'update', tenant, '--monthly-quota', '5000', '--rpm', '50')).code).toBe(0);
    expect(await read()).toEqual({ monthlyComputeUnitQuota: { value: 5000, source: 'TENANT' }, requestsPerMinute: { source: 'TENANT' } });
  });

  it('prints bash and zsh completion scripts that complete commands, options and their choices', async () => {
    const script = await cli({}, 'completion', 'bash');
    expect(script.code).toBe(0);
    const complete = (...words: string[]) =>
      execFileSync('bash', ['-c', `${script.stdout}\nCOMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _modelgate; echo "\${COMPREPLY[*]}"`, 'bash', 'modelgate', ...words], { encoding: 'utf8' }).trim();
    expect(complete('in')).toBe('invoice');
    expect(complete('prices', '')).toBe('list set --help');
    expect(complete('--url', 'http://x', 'usage', 'records', '--status', 'QU')).toBe('QUOTA_EXCEEDED');
    expect(complete('keys', 'show', '--j')).toBe('--json');
    expect(complete('completion', '')).toBe('bash zsh --help');
    const zsh = await cli({}, 'completion', 'zsh');
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain('complete -F _modelgate modelgate');
    expect((await cli({}, 'completion', 'fish')).code).toBe(2);
  });
});
