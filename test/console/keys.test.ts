/**
 * The console's Keys pages and request log in a real browser (Debian's
 * chromium via playwright-core) against a real in-process gateway: an admin
 * creates a key with every setting, edits a key's requests/min by keyboard
 * alone and the next inference calls are limited by it, grants credits that
 * show on the key page; the request log's rows are `usageRecords`' answer.
 */
import type { Browser } from 'playwright-core';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { imagePng } from '../inference/fixtures';
import { launchBrowser, screenshot, seriousViolations } from './browser';
import { consoleTabs, focusedTestId, focusedText, tableValues, tabTo, type ConsoleTabs } from './session';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
let browser: Browser;
let admin: TestKey;
let tabs: ConsoleTabs;

beforeAll(async () => {
  [gw, browser] = await Promise.all([startGateway(), launchBrowser()]);
  admin = await createTestKey({ scopes: ['admin'], name: 'keys admin' });
  tabs = consoleTabs(browser, gw.url);
});

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await closeTestKeys();
});

const CLASSIFY = 'mutation($model: String!, $images: [ImageInput!]!) { classify(model: $model, images: $images) { modelName } }';
const API_KEY = `query($id: ID!) { apiKey(id: $id) { id prefix name scopes allowedModels requestsPerMinute computeUnitsPerMinute monthlyComputeUnitBudget
  monthlyBudget { currency amountMicros } credits { refillAmount refillInterval } metadata effectiveLimits { requestsPerMinute { value source } } } }`;
const RECORDS = `query($filter: UsageRecordFilter, $first: Int!) { usageRecords(first: $first, filter: $filter) { edges { node {
  id createdAt apiKeyId model modelVersion protocol status items computeUnits latencyMs spend { amountMicros } } } } }`;
interface RecordRow { id: string; createdAt: string; apiKeyId: string | null; model: string; modelVersion: string | null; protocol: string; status: string; items: number; computeUnits: number; latencyMs: number; spend: { amountMicros: string } | null }

async function records(key: string, filter: Record<string, unknown>, first = 50): Promise<RecordRow[]> {
  const r = await graphql<{ usageRecords: { edges: { node: RecordRow }[] } }>(gw.url, RECORDS, { filter, first }, authHeaders(key));
  expect(r.body.errors).toBeUndefined();
  return r.body.data!.usageRecords.edges.map((e) => e.node);
}

/** As the request log's cells carry them (data-value). */
// The trace column is empty: this gateway exports no traces, so no record carries a trace id.
const asCells = (r: RecordRow) => [r.id, '', r.createdAt, r.apiKeyId ?? '', r.model, r.modelVersion ?? '', r.protocol, r.status, String(r.items), String(r.computeUnits), String(r.latencyMs), r.spend?.amountMicros ?? ''];

async function classify(key: string, model = 'fashion-cnn'): Promise<string | null> {
  const r = await graphql(gw.url, CLASSIFY, { model, images: [{ image: await imagePng(0) }] }, authHeaders(key));
  return (r.body.errors?.[0]?.extensions?.['code'] as string | undefined) ?? null;
}

describe('keys: edit', () => {
  it("lets an admin edit a key's requests/min by keyboard alone, and the next inference calls are limited by it", async () => {
    const caller = await createTestKey({ scopes: ['inference'], name: 'limited app' });
    const prefix = caller.key.slice(0, 16);
    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, admin.key);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Keys' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Keys' }).waitFor();

    // Keyboard only: Tab to the search box, type the prefix, Tab to the key's link, Enter opens the key page.
    await tabTo(page, 'the key search', async () => (await focusedTestId(page)) === 'keys-filter');
    await page.keyboard.type(prefix);
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'limited app' }).waitFor();
    await expect(tableValues(page, 'table-keys')).resolves.toEqual([[prefix, 'limited app', expect.any(String), 'INFERENCE', 'ACTIVE', '', '', '', '', '', '', '', '']]);
    await tabTo(page, 'the key link', async () => (await focusedText(page)) === `${prefix} details`);
    await page.keyboard.press('Enter');
    await page.getByTestId('key-detail').waitFor();
    await expect(page.getByTestId('key-rpm').textContent()).resolves.toMatch(/\((gateway default|tenant)\)$/);

    await tabTo(page, 'the requests/min field', async () => (await focusedTestId(page)) === 'edit-rpm');
    await page.keyboard.type('2');
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('key-saved').textContent()).resolves.toBe(`Saved ${prefix}: requestsPerMinute.`);
    await expect(page.getByTestId('audit-action').textContent()).resolves.toBe('apikey.update');
    // The page reads the key again after saving: wait for that answer rather than read the tile mid-reload.
    await page.getByTestId('key-rpm').filter({ hasText: /^2 \(key\)$/ }).waitFor();
    const saved = await graphql<{ apiKey: { requestsPerMinute: number; effectiveLimits: { requestsPerMinute: { value: number; source: string } } } }>(gw.url, API_KEY, { id: caller.apiKeyId }, authHeaders(admin.key));
    expect(saved.body.data?.apiKey).toMatchObject({ requestsPerMinute: 2, effectiveLimits: { requestsPerMinute: { value: 2, source: 'KEY' } } });

    // The next real inference calls: two served, the third refused by the key's new limit.
    expect([await classify(caller.key), await classify(caller.key), await classify(caller.key)]).toEqual([null, null, 'RATE_LIMITED']);

    // The key page shows its own recent requests, as usageRecords has them.
    const own = await until('3 usage records of the key', () => records(admin.key, { apiKeyId: caller.apiKeyId, tenantId: caller.tenantId }), { accept: (r) => r.length === 3, everyMs: 200 });
    expect(own.map((r) => r.status).sort()).toEqual(['OK', 'OK', 'RATE_LIMITED']);
    await page.reload();
    await page.getByTestId('table-key-records').locator('tbody tr', { hasText: 'RATE_LIMITED' }).waitFor();
    await expect(page.getByTestId('table-key-records').locator('tbody tr').count()).resolves.toBe(3);
    await expect(page.getByTestId('key-requests').textContent()).resolves.toBe('3');
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '10-key-detail');
    await tabs.darkAndPhone(session, admin.key, `#keys/${caller.apiKeyId}`, (p) => p.getByTestId('table-key-records').locator('tbody tr', { hasText: 'RATE_LIMITED' }).waitFor(), '10-key-detail');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });

  it('creates a key with every setting, shows its limits in the list, and a credits grant shows on the key page', async () => {
    const owner = await createTestKey({ scopes: ['inference'], name: 'tenant owner' });
    const tenantName = (await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(owner.key))).body.data!.me.tenant.name;
    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, admin.key);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Keys' }).click();
    await page.getByTestId('key-tenant').locator('option', { hasText: tenantName }).waitFor({ state: 'attached' });
    await page.getByTestId('key-tenant').selectOption({ label: tenantName });
    const create = page.locator('section[aria-labelledby="create-key-title"]');
    await page.getByTestId('key-name').fill('metered app');
    await create.getByRole('checkbox', { name: 'inference' }).check();
    await create.getByRole('checkbox', { name: 'usage:read' }).check();
    await create.getByLabel('Allowed models').fill('fashion-cnn');
    await create.getByLabel('Requests per minute').fill('120');
    await create.getByLabel('Compute units per minute').fill('600');
    await create.getByLabel('Compute units per month').fill('50000');
    await create.getByLabel('Money budget per month').fill('12.5');
    await create.getByLabel('Credit balance').selectOption('MONTHLY');
    await create.getByLabel('Refill amount').fill('1000');
    await create.getByLabel('Metadata').fill('owner=ana, team=ml');
    await create.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('secret-value').inputValue();
    const prefix = secret.slice(0, 16);
    await until('the metadata update', async () => (await graphql<{ apiKey: { metadata: unknown } }>(gw.url, API_KEY, { id: prefix }, authHeaders(admin.key))).body.data?.apiKey.metadata);
    const made = await graphql<{ apiKey: Record<string, unknown> & { id: string } }>(gw.url, API_KEY, { id: prefix }, authHeaders(admin.key));
    expect(made.body.data?.apiKey).toMatchObject({
      name: 'metered app', scopes: ['INFERENCE', 'USAGE_READ'], allowedModels: ['fashion-cnn'], requestsPerMinute: 120, computeUnitsPerMinute: 600, monthlyComputeUnitBudget: 50000,
      monthlyBudget: { currency: 'USD', amountMicros: '12500000' }, credits: { refillAmount: 1000, refillInterval: 'MONTHLY' }, metadata: { owner: 'ana', team: 'ml' },
    });
    const id = made.body.data!.apiKey.id;

    // The list carries the limits; the search finds the key by its metadata too.
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await page.getByTestId('keys-filter').fill('ana');
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'metered app' }).waitFor();
    const row = (await tableValues(page, 'table-keys')).find((r) => r[0] === prefix);
    expect(row?.slice(5, 10)).toEqual(['120', '600', '50000', '12.5 USD', '1,000 units monthly']);
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '10-keys-list');

    // The key page: grant 500 credits; the balance and the grant show there and equal the gateway's.
    await page.getByTestId('table-keys').getByRole('link', { name: `${prefix} details` }).click();
    await page.getByTestId('key-detail').waitFor();
    await expect(page.getByTestId('key-credits').textContent()).resolves.toBe('1,000 units monthly');
    await page.getByTestId('grant-amount').fill('500');
    await page.getByLabel('Reason').fill('launch week');
    await page.getByRole('button', { name: 'Grant credits' }).click();
    await expect(page.getByTestId('credit-balance').textContent()).resolves.toBe('Balance after the grant: 1,500 units');
    await expect(page.getByTestId('audit-action').textContent()).resolves.toBe('credits.grant');
    await page.getByTestId('table-grants').locator('tbody tr', { hasText: 'launch week' }).waitFor();
    expect(await tableValues(page, 'table-grants')).toEqual([[expect.any(String), '500', 'launch week', expect.any(String)]]);
    const limits = await graphql<{ me: { limits: { limits: { name: string; remaining: number }[] } } }>(gw.url, '{ me { limits { limits { name remaining } } } }', {}, authHeaders(secret));
    expect(limits.body.data?.me.limits.limits.find((l) => l.name === 'key_credits')?.remaining).toBe(1500);
    await expect(page.getByTestId('table-key-history').locator('tbody tr').count()).resolves.toBeGreaterThanOrEqual(3);
    expect(id).toBeTruthy();
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '11-key-credits');
    await tabs.darkAndPhone(session, admin.key, '#keys', (p) => p.getByTestId('table-keys').locator('tbody tr').first().waitFor(), '10-keys-list');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});

describe('request log', () => {
  it("shows a usage:read key its tenant's usage records, equal to usageRecords, and filters them", async () => {
    const caller = await createTestKey({ scopes: ['inference'], name: 'app' });
    const name = (await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(caller.key))).body.data!.me.tenant.name;
    const reader = await createTestKey({ tenantName: name, scopes: ['usage:read'], name: 'finance' });
    expect([await classify(caller.key), await classify(caller.key), await classify(caller.key, 'no-such-model')]).toEqual([null, null, 'NOT_FOUND']);
    const all = await until('3 usage records', () => records(reader.key, {}), { accept: (r) => r.length === 3, everyMs: 200 });

    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, reader.key);
    expect(await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents()).toEqual(['Usage', 'Billing', 'Request log']);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Request log' }).click();
    await page.getByTestId('table-requests').locator('tbody tr', { hasText: 'bad input' }).waitFor();
    await expect(tableValues(page, 'table-requests')).resolves.toEqual(all.map(asCells));

    // Filter by status: the rows are usageRecords' answer for the same filter.
    await page.getByTestId('requests-status').selectOption('OK');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const ok = await records(reader.key, { status: 'OK' });
    expect(ok).toHaveLength(2);
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('[data-testid="table-requests"] tbody tr').length === 2);
    await expect(tableValues(page, 'table-requests')).resolves.toEqual(ok.map(asCells));

    // By key, model and status: the caller's refused request (an unknown model name is recorded as "(unknown)").
    await page.getByTestId('requests-status').selectOption('BAD_INPUT');
    await page.getByTestId('requests-key').fill(caller.apiKeyId);
    await page.getByTestId('requests-model').fill('(unknown)');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const bad = await records(reader.key, { apiKeyId: caller.apiKeyId, model: '(unknown)', status: 'BAD_INPUT' });
    expect(bad).toHaveLength(1);
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('[data-testid="table-requests"] tbody tr').length === 1);
    await expect(tableValues(page, 'table-requests')).resolves.toEqual(bad.map(asCells));
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '12-request-log');
    await tabs.darkAndPhone(session, reader.key, '#requests', (p) => p.getByTestId('table-requests').locator('tbody tr', { hasText: 'bad input' }).waitFor(), '12-request-log');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});
