/**
 * The web console in a real browser (Debian's chromium via playwright-core)
 * against a real in-process gateway on the run's Postgres and Redis.
 */
import { readFileSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { imagePng } from '../inference/fixtures';
import { launchBrowser, screenshot, seriousViolations } from './browser';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
let browser: Browser;
let admin: TestKey;

beforeAll(async () => {
  [gw, browser] = await Promise.all([startGateway(), launchBrowser()]);
  admin = await createTestKey({ scopes: ['admin'], name: 'console admin' });
});

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await closeTestKeys();
});

interface Session { context: BrowserContext; page: Page; problems: string[] }

/** A fresh tab (own sessionStorage) that records page errors and console errors other than refused requests. */
async function openConsole(): Promise<Session> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // A refused key is an HTTP 401/403 that Chromium logs as a failed load; CSP violations and script errors are not.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${gw.url}/console`);
  return { context, page, problems };
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.getByLabel('API key').fill(key);
  await page.keyboard.press('Enter');
  await page.getByTestId('view-title').waitFor();
}

async function goTo(page: Page, link: string, title: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: link }).click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor();
}

/** Waits until the playground's canvas names `label` (it is relabelled once an image is decoded and drawn). */
async function canvasLabelled(page: Page, label: string): Promise<void> {
  await page.waitForFunction(
    (want: string) =>
      (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } }).document
        .querySelector('[data-testid="playground-canvas"]')
        ?.getAttribute('aria-label') === want,
    label,
  );
}

async function expectAccessible(page: Page): Promise<void> {
  expect(await seriousViolations(page)).toEqual([]);
}

/** Where the key could leak in the browser: URL, cookies, localStorage (sessionStorage is checked empty where it matters). */
async function leaks(session: Session, secret: string): Promise<string[]> {
  const found: string[] = [];
  if (session.page.url().includes(secret)) found.push('url');
  if ((await session.context.cookies()).some((c) => c.value.includes(secret))) found.push('cookie');
  const local = await session.page.evaluate(() => JSON.stringify({ ...(globalThis as unknown as { localStorage: Record<string, string> }).localStorage }));
  if (local.includes(secret)) found.push('localStorage');
  return found;
}

/** Text of a table's cells by row (data-value holds the raw number). */
async function tableValues(page: Page, testId: string): Promise<string[][]> {
  return page.getByTestId(testId).locator('tbody tr').evaluateAll((rows) =>
    rows.map((row) => Array.from((row as unknown as { children: ArrayLike<{ getAttribute(n: string): string | null }> }).children, (c) => c.getAttribute('data-value') ?? '')),
  );
}

const CLASSIFY = 'mutation($model: String!, $images: [ImageInput!]!) { classify(model: $model, images: $images) { modelName } }';
const SUMMARY = `query($from: DateTimeISO!, $to: DateTimeISO!, $g: [UsageGroupBy!]!, $tenantId: ID) {
  usageSummary(from: $from, to: $to, groupBy: $g, tenantId: $tenantId) { model status requests items computeUnits errors p50LatencyMs p95LatencyMs spend { currency amount } } }`;

describe('sign-in', () => {
  it('tells a person why a bad or revoked key is refused, and keeps nothing', async () => {
    const session = await openConsole();
    const { page } = session;
    await expectAccessible(page);
    await screenshot(page, '01-sign-in');

    await signInExpectingError(page, `mg_live_${'x'.repeat(49)}`);
    await screenshot(page, '02-sign-in-refused');

    const doomed = await createTestKey({ scopes: ['usage:read'] });
    const revoked = await graphql(gw.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: doomed.apiKeyId }, authHeaders(admin.key));
    expect(revoked.body.errors).toBeUndefined();
    await page.reload();
    await signInExpectingError(page, doomed.key);
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length)).toBe(0);
    expect(await leaks(session, doomed.key)).toEqual([]);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });

  async function signInExpectingError(page: Page, key: string): Promise<void> {
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByTestId('signin-error').textContent()).resolves.toContain('This key was refused');
    await expect(page.getByRole('alert').count()).resolves.toBe(1);
    await expect(page.getByTestId('view-title').count()).resolves.toBe(0);
  }
});

describe('admin: tenants and keys', () => {
  it('creates a tenant and a key (secret once, gone on reload), revokes it (the API refuses it), suspends the tenant', async () => {
    const session = await openConsole();
    const { page } = session;
    await signIn(page, admin.key);
    const links = await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents();
    expect(links).toEqual(['Usage', 'Billing', 'Request log', 'Keys', 'Tenants', 'Webhooks', 'Audit log', 'Models & playground', 'Model versions']);

    // Keyboard only: a nav link, Enter, focus lands on the view's heading, Tab to the form, type, Enter.
    const tenantName = `console-${Date.now().toString(36)}`;
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Tenants' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Tenants' }).waitFor();
    await expect(page.evaluate(() => (globalThis as unknown as { document: { activeElement: { tagName: string } | null } }).document.activeElement?.tagName)).resolves.toBe('H1');
    await page.keyboard.press('Tab');
    await expect(page.getByTestId('tenant-name').evaluate((el) => el === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement)).resolves.toBe(true);
    await page.keyboard.type(tenantName);
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('audit-action').textContent()).resolves.toBe('tenant.create');
    await page.getByTestId('tenants-filter').fill(tenantName);
    await page.getByTestId('table-tenants').locator('tbody tr', { hasText: tenantName }).waitFor();
    await expect(tableValues(page, 'table-tenants')).resolves.toEqual([[tenantName, 'ACTIVE', '', '', '', expect.any(String), '']]);
    await expectAccessible(page);
    await screenshot(page, '05-tenants');

    await goTo(page, 'Keys', 'Keys');
    await page.getByTestId('key-name').fill('web client');
    await page.getByTestId('key-tenant').selectOption({ label: tenantName });
    await page.getByRole('checkbox', { name: 'inference' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('secret-value').inputValue();
    expect(secret).toMatch(/^mg_(live|test)_[A-Za-z0-9]{49}$/);
    await expect(page.getByTestId('secret-once').textContent()).resolves.toContain('This is the only time it is shown');
    await expect(page.getByTestId('audit-action').textContent()).resolves.toBe('apikey.create');
    await expectAccessible(page);
    await screenshot(page, '04-keys-secret-once');

    const me = await graphql<{ me: { tenant: { name: string }; scopes: string[] } }>(gw.url, '{ me { tenant { name } scopes } }', {}, authHeaders(secret));
    expect(me.body.data?.me).toEqual({ tenant: { name: tenantName }, scopes: ['INFERENCE'] });
    const prefix = secret.slice(0, 16);

    await page.reload();
    await page.getByTestId('view-title').waitFor();
    await expect(page.getByTestId('view-title').textContent()).resolves.toBe('Keys');
    await page.getByTestId('keys-filter').fill(prefix);
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'web client' }).waitFor();
    expect(await page.content()).not.toContain(secret);
    await expect(page.getByTestId('secret-once').count()).resolves.toBe(0);
    expect(await leaks(session, secret)).toEqual([]);
    expect(await leaks(session, admin.key)).toEqual([]);

    // Escape cancels the confirmation and revokes nothing.
    await page.getByRole('button', { name: `Revoke ${prefix}` }).click();
    const dialog = page.getByRole('dialog', { name: `Revoke ${prefix}?` });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect((await graphql(gw.url, '{ me { scopes } }', {}, authHeaders(secret))).status).toBe(200);
    await page.getByRole('button', { name: `Revoke ${prefix}` }).click();
    await dialog.getByRole('button', { name: 'Revoke key' }).click();
    await expect(page.getByTestId('audit-action').textContent()).resolves.toBe('apikey.revoke');
    await screenshot(page, '06-keys-revoked');
    const refused = await graphql(gw.url, '{ me { scopes } }', {}, authHeaders(secret));
    expect(refused.status).toBe(401);
    expect(refused.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');

    const other = await createTestKey({ tenantName, scopes: ['inference'] });
    await goTo(page, 'Tenants', 'Tenants');
    await page.getByTestId('tenants-filter').fill(tenantName);
    await page.getByRole('button', { name: `Suspend ${tenantName}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Suspend tenant' }).click();
    await expect(page.getByTestId('audit-action').textContent()).resolves.toBe('tenant.suspend');
    // The list reloads after the answer; wait for it rather than read it mid-reload.
    await page.getByTestId('table-tenants').locator('tbody tr', { hasText: 'SUSPENDED' }).waitFor();
    await expect(tableValues(page, 'table-tenants')).resolves.toEqual([[tenantName, 'SUSPENDED', '', '', '', expect.any(String), '']]);
    const suspended = await graphql(gw.url, '{ me { scopes } }', {}, authHeaders(other.key));
    expect(suspended.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(session.problems).toEqual([]);
    await session.context.close();
  });
});

describe('keys:manage', () => {
  it("shows a keys:manage key its own tenant's keys only, and no admin scope to grant", async () => {
    const manager = await createTestKey({ scopes: ['keys:manage'], name: 'manager' });
    const tenantName = (await tenantOf(manager)).name;
    const siblingKey = await createTestKey({ tenantName, scopes: ['inference'], name: 'sibling' });
    await createTestKey({ scopes: ['inference'], name: 'stranger' });
    const session = await openConsole();
    const { page } = session;
    await signIn(page, manager.key);
    expect(await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents()).toEqual(['Keys', 'Webhooks']);
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'sibling' }).waitFor();
    const rows = await tableValues(page, 'table-keys');
    expect(rows.map((r) => [r[1], r[2]]).sort()).toEqual([['manager', tenantName], ['sibling', tenantName]]);
    await expect(page.getByTestId('key-tenant').count()).resolves.toBe(0);
    await expect(page.getByRole('checkbox', { name: 'admin' }).count()).resolves.toBe(0);

    // Rotate with grace: a new secret once, both secrets work during the grace, the audit event is named by request id.
    const siblingPrefix = rows.find((r) => r[1] === 'sibling')?.[0] ?? '';
    expect(siblingPrefix).toMatch(/^mg_(live|test)_/);
    await page.getByRole('button', { name: `Rotate ${siblingPrefix}` }).click();
    await page.getByRole('dialog').getByLabel('Grace period (seconds)').fill('600');
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate key' }).click();
    const rotated = await page.getByTestId('secret-value').inputValue();
    await expect(page.getByTestId('audit-event').textContent()).resolves.toMatch(/Request id [0-9a-f-]{36}\..*readable with an admin key/);
    const now = await graphql<{ me: { apiKey: { name: string; status: string } } }>(gw.url, '{ me { apiKey { name status } } }', {}, authHeaders(rotated));
    expect(now.body.data?.me.apiKey).toEqual({ name: 'sibling', status: 'ACTIVE' });
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'GRACE' }).waitFor();
    expect((await graphql(gw.url, '{ me { scopes } }', {}, authHeaders(siblingKey.key))).status).toBe(200);
    await screenshot(page, '08-keys-manage-rotated');
    await expectAccessible(page);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });
});

describe('a key refused during a session', () => {
  /** The page's periodic session check (issue #26: a passive GET, not a GraphQL call). */
  const KEY_WATCH = 'GET /console/session?passive=1';

  /** The GraphQL documents the page sends, and its session checks, in order. */
  function recordCalls(page: Page): string[] {
    const sent: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/graphql')) sent.push((JSON.parse(r.postData() ?? '{}') as { query?: string }).query ?? '');
      else if (r.url().endsWith('/console/session?passive=1')) sent.push(KEY_WATCH);
    });
    return sent;
  }

  async function tryCreateKey(page: Page, name: string): Promise<void> {
    await page.getByTestId('key-name').fill(name);
    await page.getByRole('checkbox', { name: 'inference' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
  }

  it('signs out on the first call answered 401 once the key is revoked, not at the next re-check', async () => {
    const manager = await createTestKey({ scopes: ['keys:manage'], name: 'doomed manager' });
    const session = await openConsole();
    const { page } = session;
    const sent = recordCalls(page);
    await signIn(page, manager.key);
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'doomed manager' }).waitFor();

    const revoked = await graphql(gw.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: manager.apiKeyId }, authHeaders(admin.key));
    expect(revoked.body.errors).toBeUndefined();
    const mark = sent.length;
    await tryCreateKey(page, 'after revoke');
    // The session bound to the key ended with it (issue #26: the page holds a session, not the key).
    await expect(page.getByTestId('signin-error').textContent()).resolves.toContain('session has ended');
    await expect(page.getByTestId('view-title').count()).resolves.toBe(0);
    // The createApiKey call ended it: the 30 s re-check never ran in between.
    const after = sent.slice(mark);
    expect(after.some((q) => q.includes('createApiKey'))).toBe(true);
    expect(after.filter((q) => q === KEY_WATCH)).toEqual([]);
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length)).toBe(0);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });

  it('keeps the session when a 403 refuses only that call, and ends it when the tenant is suspended', async () => {
    const manager = await createTestKey({ scopes: ['keys:manage'], name: 'manager' });
    const { name: tenantName } = await tenantOf(manager);
    const tenantAdmin = await createTestKey({ tenantName, scopes: ['admin'], name: 'tenant admin' });
    const session = await openConsole();
    const { page } = session;
    const sent = recordCalls(page);
    await signIn(page, manager.key);
    await page.getByTestId('table-keys').locator('tbody tr', { hasText: 'tenant admin' }).waitFor();

    // Revoking the tenant's admin key is refused (403) for this call only: `me` still answers, the session stays.
    const adminPrefix = tenantAdmin.key.slice(0, 16);
    await page.getByRole('button', { name: `Revoke ${adminPrefix}` }).click();
    const recheck = page.waitForResponse((r) => r.url().endsWith('/graphql') && (r.request().postData() ?? '').includes('me { scopes expiresAt'));
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke key' }).click();
    expect((await recheck).status()).toBe(200);
    await expect(page.getByRole('alert').filter({ hasText: 'Only an admin key may revoke admin keys' }).count()).resolves.toBe(1);
    await expect(page.getByTestId('view-title').textContent()).resolves.toBe('Keys');
    expect((await graphql(gw.url, '{ me { scopes } }', {}, authHeaders(tenantAdmin.key))).status).toBe(200);

    const suspended = await graphql(gw.url, 'mutation($id: ID!) { updateTenant(id: $id, input: { status: SUSPENDED }) { status } }', { id: manager.tenantId }, authHeaders(admin.key));
    expect(suspended.body.errors).toBeUndefined();
    const mark = sent.length;
    await tryCreateKey(page, 'while suspended');
    await expect(page.getByTestId('signin-error').textContent()).resolves.toContain('suspended');
    await expect(page.getByTestId('view-title').count()).resolves.toBe(0);
    expect(sent.slice(mark).filter((q) => q === KEY_WATCH)).toEqual([]);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });
});

describe('usage', () => {
  it("shows a usage:read key its own tenant only, with table numbers equal to usageSummary", async () => {
    const mine = await createTestKey({ scopes: ['inference'] });
    const reader = await createTestKey({ tenantName: (await tenantOf(mine)).name, scopes: ['usage:read'] });
    // The tenant's own fashion-cnn price from the current hour on: its spend is known exactly (3 OK images × 0.0015 USD).
    const priced = await graphql(gw.url, 'mutation($input: SetPriceInput!) { setPrice(input: $input) { id } }', {
      input: { model: 'fashion-cnn', tenant: (await tenantOf(mine)).name, currency: 'USD', unitPriceMicros: '1500', effectiveFrom: new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString() },
    }, authHeaders(admin.key));
    expect(priced.body.errors).toBeUndefined();
    const stranger = await createTestKey({ scopes: ['inference'] });
    const png = await imagePng(0);
    const calls: [TestKey, string, string][] = [
      [mine, 'fashion-cnn', png], [mine, 'fashion-cnn', png], [mine, 'fashion-cnn', png],
      [mine, 'fashion-attention', png], [mine, 'fashion-attention', png],
      [mine, 'fashion-cnn', Buffer.from('not an image').toString('base64')],
      [stranger, 'fashion-hybrid', png], [stranger, 'fashion-hybrid', png], [stranger, 'fashion-cnn', png],
    ];
    for (const [key, model, image] of calls) await graphql(gw.url, CLASSIFY, { model, images: [{ image }] }, authHeaders(key.key));
    await untilRecorded(reader.key, 6);

    const session = await openConsole();
    const { page } = session;
    await signIn(page, reader.key);
    expect(await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents()).toEqual(['Usage', 'Billing', 'Request log']);
    await expect(page.getByTestId('tenant-picker').count()).resolves.toBe(0);
    await page.getByTestId('table-breakdown').waitFor();
    const range = page.getByTestId('usage-range');
    const from = await range.getAttribute('data-from');
    const to = await range.getAttribute('data-to');

    const byModel = await summary(reader.key, from, to, ['MODEL']);
    const total = await summary(reader.key, from, to, []);
    const spend = (r: SummaryRow) => r.spend.map((m) => `${m.amount} ${m.currency}`).join(', ') || null;
    const row = (label: string, r: SummaryRow) => [label, r.requests, r.items, r.computeUnits, spend(r), r.errors, r.p50LatencyMs, r.p95LatencyMs].map((v) => (v === null ? '' : String(v)));
    const shown = await tableValues(page, 'table-breakdown');
    expect(shown.sort()).toEqual([...byModel.map((r) => row(r.model ?? '', r)), ...total.map((r) => row('Total', r))].sort());
    // Spend beside the units, currency stated.
    expect(shown.find((r) => r[0] === 'fashion-cnn')?.[4]).toBe('0.004500 USD');
    await expect(page.getByTestId('tile-spend').textContent()).resolves.toBe(spend(total[0]!));
    await expect(page.getByTestId('month-spend').textContent()).resolves.toMatch(/USD/);
    // The known requests of this tenant, and none of the stranger's (fashion-hybrid, 3 more requests).
    expect(total[0]).toMatchObject({ requests: 6, errors: 1, items: 6 });
    expect(shown.map((r) => r[0])).toEqual(expect.not.arrayContaining(['fashion-hybrid']));
    await expect(page.getByTestId('tile-requests').textContent()).resolves.toBe('6');
    const perHour = await tableValues(page, 'table-traffic');
    expect(perHour.reduce((sum, r) => sum + Number(r[1]), 0)).toBe(6);
    await page.getByTestId('traffic-chart').locator('canvas').waitFor();
    await expectAccessible(page);
    await screenshot(page, '03-usage');

    await page.getByTestId('breakdown').selectOption('STATUS');
    await page.getByTestId('table-breakdown').locator('tbody th', { hasText: 'BAD_INPUT' }).waitFor();
    const byStatus = await summary(reader.key, from, to, ['STATUS']);
    expect((await tableValues(page, 'table-breakdown')).sort()).toEqual([...byStatus.map((r) => row(r.status ?? '', r)), ...total.map((r) => row('Total', r))].sort());

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV of this view' }).click()]);
    const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
    expect(csv[0]).toBe('section,time,group,requests,items,computeUnits,errors,avgLatencyMs,p50LatencyMs,p95LatencyMs,currency,amountMicros,unpricedComputeUnits');
    expect(csv.filter((l) => l.startsWith('total,'))).toEqual([expect.stringMatching(/,(\w{3};)*USD(;\w{3})*,[\d;]+,\d+$/)]);
    expect(csv.filter((l) => l.startsWith('total,'))).toEqual([expect.stringMatching(/^total,,,6,6,\d+,1,/)]);
    expect(csv.filter((l) => l.startsWith('total by status,,OK,'))).toEqual([expect.stringMatching(/^total by status,,OK,5,5,/)]);

    // By front door: every call above came through GraphQL.
    await page.getByTestId('breakdown').selectOption('PROTOCOL');
    await page.getByTestId('table-breakdown').locator('tbody th', { hasText: 'GRAPHQL' }).waitFor();
    expect((await tableValues(page, 'table-breakdown')).sort()).toEqual([row('GRAPHQL', total[0]!), row('Total', total[0]!)].sort());

    // Charts are drawn with the theme's colours: text colour of the page = axis colour of the chart, in both themes.
    const pageFg = () => page.evaluate(() => {
      const g = globalThis as unknown as { getComputedStyle(e: unknown): { getPropertyValue(n: string): string }; document: { documentElement: unknown } };
      return g.getComputedStyle(g.document.documentElement).getPropertyValue('--fg').trim();
    });
    const lightFg = await pageFg();
    await expect(page.getByTestId('traffic-chart').getAttribute('data-fg')).resolves.toBe(lightFg);
    await page.getByRole('button', { name: 'Dark mode' }).click();
    await expect(page.getByRole('button', { name: 'Dark mode' }).getAttribute('aria-pressed')).resolves.toBe('true');
    const darkFg = await pageFg();
    expect(darkFg).not.toBe(lightFg);
    await expect(page.getByTestId('traffic-chart').getAttribute('data-fg')).resolves.toBe(darkFg);
    await expectAccessible(page);
    await screenshot(page, '03-usage-dark');

    // A calendar month (UTC), as invoices bill it: the range starts on the 1st, and the totals are that range's.
    const monthStart = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1)).toISOString();
    await page.getByTestId('range-picker').selectOption('month');
    await page.waitForFunction((start: string) => (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } })
      .document.querySelector('[data-testid="usage-range"]')?.getAttribute('data-from') === start, monthStart);
    const monthTo = await range.getAttribute('data-to');
    const monthTotal = await summary(reader.key, monthStart, monthTo, []);
    await page.getByTestId('table-breakdown').locator('tbody th', { hasText: 'Total' }).waitFor();
    await page.waitForFunction((n: string) => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } })
      .document.querySelector('[data-testid="tile-requests"]')?.textContent === n, String(monthTotal[0]?.requests));
    expect((await tableValues(page, 'table-breakdown')).find((r) => r[0] === 'Total')).toEqual(row('Total', monthTotal[0]!));
    expect(await leaks(session, reader.key)).toEqual([]);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });

  it("lets an admin pick a tenant: that tenant's numbers, or every tenant's", async () => {
    const key = await createTestKey({ scopes: ['inference'] });
    const other = await createTestKey({ scopes: ['inference'] });
    const png = await imagePng(1);
    for (const k of [key, key, other]) await graphql(gw.url, CLASSIFY, { model: 'fashion-lstm', images: [{ image: png }] }, authHeaders(k.key));
    await untilRecorded(admin.key, 2, key.tenantId);
    await untilRecorded(admin.key, 1, other.tenantId);
    const tenantName = (await tenantOf(key)).name;

    const session = await openConsole();
    const { page } = session;
    await signIn(page, admin.key);
    await page.getByTestId('tenant-picker').locator('option', { hasText: tenantName }).waitFor({ state: 'attached' });
    await expect(page.getByTestId('usage-range').getAttribute('data-tenant')).resolves.toBe('all tenants');
    await page.getByTestId('table-breakdown').waitFor();
    // Every tenant's total in the shared test database: thousands come with separators (1,234).
    const all = Number((await page.getByTestId('tile-requests').textContent())?.replace(/,/g, ''));
    expect(all).toBeGreaterThanOrEqual(3);
    await page.getByTestId('tenant-picker').selectOption({ label: tenantName });
    await expect(page.getByTestId('usage-range').getAttribute('data-tenant')).resolves.toBe(tenantName);
    await page.getByTestId('table-breakdown').locator('tbody th', { hasText: 'fashion-lstm' }).waitFor();
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } })
      .document.querySelector('[data-testid="tile-requests"]')?.textContent === '2');
    expect(await tableValues(page, 'table-breakdown')).toEqual([
      ['fashion-lstm', '2', '2', expect.any(String), expect.any(String), '0', expect.any(String), expect.any(String)],
      ['Total', '2', '2', expect.any(String), expect.any(String), '0', expect.any(String), expect.any(String)],
    ]);
    await expectAccessible(page);
    expect(session.problems).toEqual([]);
    await session.context.close();
  });
});

describe('models and playground', () => {
  it('lists models and classifies a test image with the attention map drawn over it', async () => {
    const key = await createTestKey({ scopes: ['inference'] });
    const session = await openConsole();
    const { page } = session;
    await signIn(page, key.key);
    await expect(page.getByTestId('view-title').textContent()).resolves.toBe('Models & playground');
    expect(await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents()).toEqual(['Models & playground']);
    await page.getByTestId('table-models').locator('tbody th', { hasText: 'fashion-attention' }).waitFor();
    const models = await tableValues(page, 'table-models');
    expect(models.find((r) => r[0] === 'fashion-attention')?.slice(2, 4)).toEqual(['READY', 'cpu']);

    await page.getByTestId('playground-model').selectOption('fashion-attention');
    await page.getByRole('button', { name: 'Ankle boot' }).click();
    await page.getByRole('button', { name: 'Classify' }).click();
    const predictions = page.getByTestId('predictions').locator('li');
    await predictions.first().waitFor();
    await expect(predictions.count()).resolves.toBe(3);
    await expect(predictions.first().textContent()).resolves.toContain('Ankle boot');
    const canvas = page.getByTestId('playground-canvas');
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { dataset: Record<string, string> } | null } })
      .document.querySelector('[data-testid="playground-canvas"]')?.dataset['drawn'] === 'attention');
    // The image is grey (r = g = b); only the overlay makes pixels red.
    const reddish = await canvas.evaluate((el) => {
      const ctx = (el as unknown as { getContext(t: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } }).getContext('2d');
      const d = ctx.getImageData(0, 0, 280, 280).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if ((d[i] ?? 0) > (d[i + 1] ?? 0) + 40) n++;
      return n;
    });
    expect(reddish).toBeGreaterThan(280 * 280 * 0.05);
    await expect(canvas.getAttribute('aria-label')).resolves.toMatch(/attention map drawn over it; strongest at row \d, column \d/);
    await expectAccessible(page);
    await screenshot(page, '07-playground');

    // A dropped file, on a model without attention: predictions, and no map.
    await page.getByTestId('playground-model').selectOption('fashion-cnn');
    const dropped = await page.evaluateHandle((b64: string) => {
      type Ctor<T> = new (...args: unknown[]) => T;
      const g = globalThis as unknown as { atob(s: string): string; DataTransfer: Ctor<{ items: { add(f: unknown): void } }>; File: Ctor<unknown> };
      const bytes = Uint8Array.from(g.atob(b64), (c) => c.charCodeAt(0));
      const dt = new g.DataTransfer();
      dt.items.add(new g.File([bytes], 'dropped-coat.png', { type: 'image/png' }));
      return dt;
    }, await imagePng(2, { size: 84 }));
    await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer: dropped });
    // The page decodes the file before it draws and relabels the canvas: wait for that, do not read once.
    await canvasLabelled(page, 'dropped-coat.png');
    await page.getByRole('button', { name: 'Classify' }).click();
    await page.getByText('This model has no attention output').waitFor();
    await expect(predictions.count()).resolves.toBe(3);
    // A chosen file replaces it.
    await page.getByTestId('file-input').setInputFiles({ name: 'trouser.png', mimeType: 'image/png', buffer: Buffer.from(await imagePng(3), 'base64') });
    await canvasLabelled(page, 'trouser.png');
    expect(session.problems).toEqual([]);
    await session.context.close();
  });
});

interface SummaryRow { model: string | null; status: string | null; requests: number; items: number; computeUnits: number; errors: number; p50LatencyMs: number | null; p95LatencyMs: number | null; spend: { currency: string; amount: string }[] }

async function summary(key: string, from: string | null, to: string | null, groupBy: string[], tenantId?: string): Promise<SummaryRow[]> {
  const res = await graphql<{ usageSummary: SummaryRow[] }>(gw.url, SUMMARY, { from, to, g: groupBy, tenantId }, authHeaders(key));
  expect(res.body.errors).toBeUndefined();
  return res.body.data?.usageSummary ?? [];
}

async function tenantOf(key: TestKey): Promise<{ name: string }> {
  const res = await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(key.key));
  return res.body.data!.me.tenant;
}

/** Usage is written in batches (USAGE_FLUSH_INTERVAL_MS); waits until the tenant's records are in. */
async function untilRecorded(key: string, requests: number, tenantId?: string): Promise<void> {
  const from = new Date(Date.now() - 86400000).toISOString();
  const to = new Date(Date.now() + 86400000).toISOString();
  await until(`${requests} usage records in the summary`, () => summary(key, from, to, [], tenantId), { accept: (rows) => (rows[0]?.requests ?? 0) >= requests, everyMs: 100 });
}
