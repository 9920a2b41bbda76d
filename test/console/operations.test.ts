/**
 * Console pages for operating models and following requests, in a real
 * browser (Debian's chromium via playwright-core) against a real in-process
 * gateway that exports traces to an OTLP receiver the test runs:
 *
 * - Model versions: an admin publishes two versions of a model, sees each
 *   replica's state of each, sets the traffic split (a split not summing to
 *   100 is refused with the gateway's message; 1=90 2=10 is then what
 *   modelVersions answers), sets a shadow and reads its agreement, and rolls
 *   back through a confirmation dialog; a usage:read session has none of it.
 * - Request log: a traced request's usage record carries the trace id its
 *   response's traceparent names (REST and GraphQL), an unsampled one none,
 *   and the row links it through CONSOLE_TRACE_URL_TEMPLATE.
 * - Key page: an admin sees another key's live credit balance
 *   (ApiKey.creditBalance), equal to that key's own me.limits figure.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { graphql, REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { imagePng } from '../inference/fixtures';
import { jsonInfer } from '../oip/helpers';
import { OtlpReceiver } from '../observability/otlp-receiver';
import { launchBrowser, screenshot, seriousViolations } from './browser';
import { consoleTabs, tableValues, type ConsoleTabs } from './session';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';
import { applyMigrations } from '../../src/db/migrate';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS + 120_000);

const TRACE_TEMPLATE = 'http://jaeger.example:16686/trace/{traceId}';
const LSTM = readFileSync(path.join(REPO_ROOT, 'models', 'fashion-lstm', '1', 'model.onnx'));
const MODEL = `console-lstm-${randomBytes(4).toString('hex')}`;
const CONFIG = JSON.stringify({
  name: MODEL,
  platform: 'onnxruntime_onnx',
  max_batch_size: 64,
  inputs: [{ name: 'image', datatype: 'FP32', dims: [1, 28, 28] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', dims: [10] }],
  output_kind: 'probabilities',
});

let gw: TestGateway;
let browser: Browser;
let admin: TestKey;
let tabs: ConsoleTabs;
let receiver: OtlpReceiver;

// A private database: the model this suite publishes goes into the catalog every gateway on the
// database loads, and suites running beside this one on the shared test database list their
// models exactly. TEST_DATABASE_URL (which createTestKey and startGateway read) points here
// while this file runs and is restored after.
const sharedDatabase = { url: testEnv.databaseUrl, name: testEnv.databaseName };
const privateDatabase = { name: `${sharedDatabase.name}_operations`, url: '' };
privateDatabase.url = (() => {
  const url = new URL(sharedDatabase.url);
  url.pathname = `/${privateDatabase.name}`;
  return url.toString();
})();

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await adminQuery(`DROP DATABASE IF EXISTS "${privateDatabase.name}" WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE "${privateDatabase.name}"`);
  await applyMigrations({ kind: 'postgres', url: privateDatabase.url });
  process.env['TEST_DATABASE_URL'] = privateDatabase.url;
  process.env['TEST_DATABASE_NAME'] = privateDatabase.name;
  receiver = await OtlpReceiver.start();
  [gw, browser] = await Promise.all([
    // Spans are batched far beyond the test: the ids are what matters here, not the export.
    startGateway({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '600000', CONSOLE_TRACE_URL_TEMPLATE: TRACE_TEMPLATE }),
    launchBrowser(),
  ]);
  admin = await createTestKey({ scopes: ['admin'], name: 'operations admin' });
  tabs = consoleTabs(browser, gw.url);
});

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await receiver?.close();
  await closeTestKeys();
  process.env['TEST_DATABASE_URL'] = sharedDatabase.url;
  process.env['TEST_DATABASE_NAME'] = sharedDatabase.name;
  await adminQuery(`DROP DATABASE IF EXISTS "${privateDatabase.name}" WITH (FORCE)`);
});

interface VersionRow { version: string; replicaStatus: string; trafficPercent: number | null; shadowPercent: number | null; shadowRuns: number; shadowTop1Agreement: number | null; replicas: { replica: string; status: string }[] }

async function modelVersions(): Promise<VersionRow[]> {
  const res = await graphql<{ modelVersions: VersionRow[] }>(gw.url, 'query($m: String!) { modelVersions(model: $m) { version replicaStatus trafficPercent shadowPercent shadowRuns shadowTop1Agreement replicas { replica status } } }', { m: MODEL }, authHeaders(admin.key));
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.modelVersions;
}

async function publish(): Promise<void> {
  const headers = authHeaders(admin.key);
  const first = await fetch(`${gw.url}/v2/repository/models/${MODEL}/load`, {
    method: 'POST', headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ parameters: { config: CONFIG, 'file:1/model.onnx': LSTM.toString('base64') } }),
  });
  expect(first.status).toBe(200);
  const second = await fetch(`${gw.url}/v2/repository/models/${MODEL}/versions/2/model.onnx`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: LSTM });
  expect(second.status).toBe(200);
}

describe('model versions', () => {
  it('shows each replica’s state, edits the traffic split (refusals shown), sets a shadow and rolls back after a confirmation', async () => {
    await publish();
    await until('both versions READY on this replica', modelVersions, { accept: (v) => v.length === 2 && v.every((x) => x.replicaStatus === 'READY' && x.replicas.length > 0) });
    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, admin.key);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Model versions' }).click();
    await page.getByTestId('table-versions').locator('caption', { hasText: 'versions of' }).waitFor();
    await expect(page.getByRole('alert').count()).resolves.toBe(0);
    await page.getByTestId('versions-model').locator('option', { hasText: MODEL }).waitFor({ state: 'attached' });
    await page.getByTestId('versions-model').selectOption(MODEL);

    // Each replica's state of each version, as modelVersions answers.
    const expected = (await modelVersions()).flatMap((v) => v.replicas.map((r) => [MODEL, v.version, r.replica, r.status]));
    const replicaRows = (await tableValues(page, 'table-replicas')).filter((r) => r[0] === MODEL).map((r) => [r[0], r[1], r[2], r[4]]);
    expect(replicaRows).toEqual(expected);

    // A split that does not sum to 100: the gateway's refusal is shown, nothing changes.
    await page.getByTestId('traffic-1').fill('60');
    await page.getByTestId('traffic-2').fill('10');
    await page.getByRole('button', { name: 'Save traffic split' }).click();
    await page.getByTestId('versions-result').filter({ hasText: 'refused' }).waitFor();
    await expect(page.getByTestId('versions-result').textContent()).resolves.toMatch(/the percentages sum to 70, not 100/);
    expect((await modelVersions()).map((v) => v.trafficPercent)).toEqual([null, null]);

    await page.getByTestId('traffic-1').fill('90');
    await page.getByTestId('traffic-2').fill('10');
    await page.getByRole('button', { name: 'Save traffic split' }).click();
    await page.getByTestId('versions-result').filter({ hasText: `Traffic of ${MODEL} set to 1=90 2=10` }).waitFor();
    expect((await modelVersions()).map((v) => [v.version, v.trafficPercent])).toEqual([['1', 90], ['2', 10]]);
    await until('the table showing the split', async () => (await tableValues(page, 'table-versions')).filter((r) => r[0] === MODEL).map((r) => [r[1], r[5]]), {
      accept: (rows) => JSON.stringify(rows) === JSON.stringify([['1', '90'], ['2', '10']]), everyMs: 200 });

    // Shadow: version 2 on every served request; identical weights agree on every item.
    await page.getByTestId('shadow-version').selectOption('2');
    await page.getByTestId('shadow-percent').fill('100');
    await page.getByRole('button', { name: 'Set shadow' }).click();
    await page.getByTestId('versions-result').filter({ hasText: `Version 2 of ${MODEL} shadows 100 %` }).waitFor();
    const caller = await createTestKey({ scopes: ['inference'], name: 'shadowed app' });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/v2/models/${MODEL}/versions/1/infer`, { method: 'POST', headers: { ...authHeaders(caller.key), 'content-type': 'application/json' }, body: jsonInfer([i]) });
      expect(res.status).toBe(200);
    }
    // Versionless requests follow the split; the shadow compares the served ones (any version but itself).
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${gw.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { ...authHeaders(caller.key), 'content-type': 'application/json' }, body: jsonInfer([i]) });
      expect(res.status).toBe(200);
    }
    const compared = await until('shadow runs compared', modelVersions, { accept: (v) => (v.find((x) => x.version === '2')?.shadowRuns ?? 0) > 0 });
    const v2 = compared.find((x) => x.version === '2')!;
    expect(v2.shadowPercent).toBe(100);
    expect(v2.shadowTop1Agreement).toBe(1);
    await page.getByTestId('versions-model').selectOption(MODEL);
    await page.reload();
    await page.getByTestId('versions-model').locator('option', { hasText: MODEL }).waitFor({ state: 'attached' });
    await page.getByTestId('versions-model').selectOption(MODEL);
    await expect(page.getByTestId('shadow-figures').textContent()).resolves.toMatch(new RegExp(`^Shadow: version 2 runs 100 % of served requests; on this replica ${v2.shadowRuns >= 1000 ? '[\\d,]+' : v2.shadowRuns} compared, .*top-1 agreement 100\\.0 %`));
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '17-model-traffic-shadow');

    // Rollback asks first: cancelled with Escape nothing changes; confirmed, the split from before the last change is back.
    await page.getByRole('button', { name: `Roll back ${MODEL}` }).click();
    await page.getByRole('dialog').waitFor();
    await page.keyboard.press('Escape');
    await expect(page.getByRole('dialog').count()).resolves.toBe(0);
    expect((await modelVersions()).map((v) => v.trafficPercent)).toEqual([90, 10]);
    await page.getByRole('button', { name: `Roll back ${MODEL}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Roll back' }).click();
    await page.getByTestId('versions-result').filter({ hasText: `${MODEL} rolled back` }).waitFor();
    // The shadow is no serving change (no state kept for it): the last one was the split, so no split is back.
    const after = await modelVersions();
    expect(after.map((v) => v.trafficPercent)).toEqual([null, null]);
    await until('the table showing the state rolled back to', async () => (await tableValues(page, 'table-versions')).filter((r) => r[0] === MODEL).map((r) => r[5]), {
      accept: (cells) => JSON.stringify(cells) === JSON.stringify(after.map((v) => (v.trafficPercent === null ? '' : String(v.trafficPercent)))), everyMs: 200 });
    await expect(seriousViolations(page)).resolves.toEqual([]);
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });

  it('gives a usage:read session no model versions view and no traffic, shadow or rollback control', async () => {
    const reader = await createTestKey({ scopes: ['usage:read'], name: 'finance' });
    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, reader.key);
    await expect(page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Model versions' }).count()).resolves.toBe(0);
    await page.evaluate(() => { (globalThis as unknown as { location: { hash: string } }).location.hash = '#versions'; });
    await expect(page.getByTestId('view-title').textContent()).resolves.toBe('Usage');
    for (const name of ['Save traffic split', 'Set shadow', /^Roll back/]) await expect(page.getByRole('button', { name }).count()).resolves.toBe(0);
    await expect(page.getByTestId('versions-manage').count()).resolves.toBe(0);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });
});

describe('request log trace ids', () => {
  it('stores the trace id the response names on the usage record and links it from the request log row', async () => {
    const caller = await createTestKey({ scopes: ['inference'], name: 'traced app' });
    const name = (await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(caller.key))).body.data!.me.tenant.name;
    const reader = await createTestKey({ tenantName: name, scopes: ['usage:read'], name: 'trace reader' });
    const traceOf = (header: string | null) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(header ?? '')?.[1];

    const rest = await fetch(`${gw.url}/v2/models/fashion-cnn/infer`, { method: 'POST', headers: { ...authHeaders(caller.key), 'content-type': 'application/json' }, body: jsonInfer([0]) });
    expect(rest.status).toBe(200);
    const gqlRes = await fetch(`${gw.url}/graphql`, {
      method: 'POST', headers: { ...authHeaders(caller.key), 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'mutation($images: [ImageInput!]!) { classify(model: "fashion-cnn", images: $images) { modelName } }', variables: { images: [{ image: await imagePng(1) }] } }),
    });
    expect(gqlRes.status).toBe(200);
    // A client's unsampled context: the gateway follows it (parent-based sampling), records no span, and stores no trace id.
    const unsampledTrace = randomBytes(16).toString('hex');
    const quiet = await fetch(`${gw.url}/v2/models/fashion-cnn/infer`, {
      method: 'POST', headers: { ...authHeaders(caller.key), 'content-type': 'application/json', traceparent: `00-${unsampledTrace}-${randomBytes(8).toString('hex')}-00` }, body: jsonInfer([2]),
    });
    expect(quiet.status).toBe(200);
    const restTrace = traceOf(rest.headers.get('traceparent'));
    const gqlTrace = traceOf(gqlRes.headers.get('traceparent'));
    expect(restTrace).toMatch(/^[0-9a-f]{32}$/);
    expect(gqlTrace).toMatch(/^[0-9a-f]{32}$/);

    // The records reach Postgres from the write-ahead log shortly after the answers.
    const records = await until('the three usage records', async () => {
      const res = await graphql<{ usageRecords: { edges: { node: { id: string; traceId: string | null } }[] } }>(gw.url,
        'query($f: UsageRecordFilter) { usageRecords(first: 10, filter: $f) { edges { node { id traceId } } } }', { f: { apiKeyId: caller.apiKeyId } }, authHeaders(reader.key));
      expect(res.body.errors).toBeUndefined();
      return res.body.data!.usageRecords.edges.map((e) => e.node);
    }, { accept: (r) => r.length === 3, everyMs: 100 });
    const byId = new Map(records.map((e) => [e.id, e.traceId]));
    expect(byId.get(rest.headers.get('x-request-id')!)).toBe(restTrace);
    expect([...byId.entries()].find(([id]) => id.startsWith(gqlRes.headers.get('x-request-id')!))?.[1]).toBe(gqlTrace);
    expect(byId.get(quiet.headers.get('x-request-id')!)).toBeNull();

    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, reader.key);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Request log' }).click();
    const row = page.getByTestId('table-requests').locator('tbody tr', { hasText: rest.headers.get('x-request-id')! });
    await row.waitFor();
    await expect(row.getByTestId('trace-link').getAttribute('href')).resolves.toBe(TRACE_TEMPLATE.replace('{traceId}', restTrace!));
    await expect(page.getByTestId('table-requests').getByTestId('trace-link').count()).resolves.toBe(2);
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '12-request-log-traces');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();

    // A gateway on the same database with no template: the id is plain text (selected whole for copying), no link.
    const plain = await startGateway();
    try {
      const other = await consoleTabs(browser, plain.url).open();
      await tabs.signIn(other.page, reader.key);
      await other.page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Request log' }).click();
      const plainRow = other.page.getByTestId('table-requests').locator('tbody tr', { hasText: rest.headers.get('x-request-id')! });
      await plainRow.waitFor();
      await expect(plainRow.getByTestId('trace-id').textContent()).resolves.toBe(restTrace);
      await expect(other.page.getByTestId('trace-link').count()).resolves.toBe(0);
      await expect(plainRow.getByTestId('trace-id').evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { userSelect: string } }).getComputedStyle(el).userSelect)).resolves.toBe('all');
      expect(other.problems).toEqual([]);
      await other.context.close();
    } finally {
      await plain.close();
    }
  });
});

describe('key page credit balance', () => {
  it("shows an admin another key's live credit balance, equal to the key's own me.limits figure", async () => {
    const owner = await createTestKey({ scopes: ['inference'], name: 'credits owner' });
    const created = await graphql<{ createApiKey: { plaintext: string; apiKey: { id: string } } }>(gw.url,
      'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { plaintext apiKey { id } } }',
      { input: { tenant: owner.tenantId, name: 'metered', scopes: ['INFERENCE'], credits: { refillAmount: 1000, refillInterval: 'MONTHLY' } } }, authHeaders(admin.key));
    expect(created.body.errors).toBeUndefined();
    const { plaintext, apiKey } = created.body.data!.createApiKey;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gw.url}/v2/models/fashion-cnn/infer`, { method: 'POST', headers: { ...authHeaders(plaintext), 'content-type': 'application/json' }, body: jsonInfer([i]) });
      expect(res.status).toBe(200);
    }
    const own = await graphql<{ me: { limits: { limits: { name: string; remaining: number }[] } } }>(gw.url, '{ me { limits { limits { name remaining } } } }', {}, authHeaders(plaintext));
    const ownBalance = own.body.data!.me.limits.limits.find((l) => l.name === 'key_credits')?.remaining;
    expect(ownBalance).toBe(998);

    const balanceAs = async (key: string) => {
      const r = await graphql<{ apiKey: { creditBalance: number | null } }>(gw.url, 'query($id: ID!) { apiKey(id: $id) { creditBalance } }', { id: apiKey.id }, authHeaders(key));
      expect(r.body.errors).toBeUndefined();
      return r.body.data!.apiKey.creditBalance;
    };
    const name = (await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(owner.key))).body.data!.me.tenant.name;
    expect(await balanceAs(admin.key)).toBe(998);
    // The tenant's key managers read the key; its balance only with usage:read too.
    expect(await balanceAs((await createTestKey({ tenantName: name, scopes: ['keys:manage', 'usage:read'], name: 'manager with usage' })).key)).toBe(998);
    expect(await balanceAs((await createTestKey({ tenantName: name, scopes: ['keys:manage'], name: 'manager' })).key)).toBeNull();

    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, admin.key);
    await page.evaluate((id: string) => { (globalThis as unknown as { location: { hash: string } }).location.hash = `#keys/${id}`; }, apiKey.id);
    await page.getByTestId('key-detail').waitFor();
    await expect(page.getByTestId('key-credit-balance').textContent()).resolves.toBe('998 units');
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '11-key-credit-balance');
    // The edit form shows the key's credit setting, so saving another change leaves the balance alone.
    await expect(page.getByTestId('key-edit').getByLabel('Credit balance').inputValue()).resolves.toBe('MONTHLY');
    await page.getByTestId('edit-name').fill('metered, renamed');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByTestId('key-saved').filter({ hasText: 'Saved' }).waitFor();
    await expect(page.getByTestId('key-saved').textContent()).resolves.not.toContain('credits');
    expect(await balanceAs(admin.key)).toBe(998);
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});
