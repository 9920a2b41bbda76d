/**
 * The console's Billing page in a real browser (Debian's chromium via
 * playwright-core) against a real in-process gateway: a finance (usage:read)
 * key sees its tenant's spend, price book, budget, credits and an invoice
 * whose total is `invoice()`'s; an admin switches tenant.
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
  admin = await createTestKey({ scopes: ['admin'], name: 'billing admin' });
});

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await closeTestKeys();
});

interface Session { context: BrowserContext; page: Page; problems: string[]; offsite: string[] }

/** A fresh tab that records page errors, console errors, and every request not addressed to the gateway. */
async function openConsole(viewport = { width: 1280, height: 900 }): Promise<Session> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  const offsite: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  context.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(`${gw.url}/`) && !url.startsWith('blob:') && !url.startsWith('data:')) offsite.push(url);
  });
  await page.goto(`${gw.url}/console`);
  return { context, page, problems, offsite };
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.getByLabel('API key').fill(key);
  await page.keyboard.press('Enter');
  await page.getByTestId('view-title').waitFor();
}

type Doc = { document: { activeElement: { textContent: string | null; tagName: string } | null; documentElement: { scrollWidth: number } } };
const focusedText = (page: Page) => page.evaluate(() => (globalThis as unknown as Doc).document.activeElement?.textContent ?? '');

/** Keyboard only: focus the nav link, Enter, focus lands on the heading. */
async function openBilling(page: Page): Promise<void> {
  await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Billing' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Billing' }).waitFor();
  await expect(page.evaluate(() => (globalThis as unknown as Doc).document.activeElement?.tagName)).resolves.toBe('H1');
  await page.getByTestId('invoice').waitFor();
}

async function tableValues(page: Page, testId: string): Promise<string[][]> {
  return page.getByTestId(testId).locator('tbody tr').evaluateAll((rows) =>
    rows.map((row) => Array.from((row as unknown as { children: ArrayLike<{ getAttribute(n: string): string | null }> }).children, (c) => c.getAttribute('data-value') ?? '')),
  );
}

const CLASSIFY = 'mutation($model: String!, $images: [ImageInput!]!) { classify(model: $model, images: $images) { modelName } }';
const INVOICE = `query($tenant: String!, $month: String!) { invoice(tenant: $tenant, month: $month) {
  tenantName month lines { model currency unitPriceMicros units amountMicros } totals { currency amount amountMicros } unpricedUnits } }`;
interface InvoiceBody { tenantName: string; lines: { model: string; currency: string | null; unitPriceMicros: string | null; units: string; amountMicros: string }[]; totals: { currency: string; amount: string; amountMicros: string }[]; unpricedUnits: string }

async function invoiceOf(key: string, tenant: string, month: string): Promise<InvoiceBody> {
  const res = await graphql<{ invoice: InvoiceBody }>(gw.url, INVOICE, { tenant, month }, authHeaders(key));
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.invoice;
}

async function tenantName(key: TestKey): Promise<string> {
  const res = await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(key.key));
  return res.body.data!.me.tenant.name;
}

/** Usage is written in batches; waits until the tenant's invoice counts the units. */
async function untilInvoiced(key: string, tenant: string, month: string, units: string): Promise<void> {
  await until(`${units} units on the invoice`, () => invoiceOf(key, tenant, month), { accept: (i) => i.lines.reduce((s, l) => s + BigInt(l.units), BigInt(0)).toString() === units, everyMs: 100 });
}

const thisMonth = () => new Date().toISOString().slice(0, 7);
const invoiceText = (i: InvoiceBody) => i.totals.map((t) => `${t.amount} ${t.currency}`);

/** A tenant with its own fashion-cnn price from the current hour, a $5 budget, 1000 monthly credits, and 3 priced images. */
async function pricedTenant(): Promise<{ name: string }> {
  const caller = await createTestKey({ scopes: ['inference'] });
  const name = await tenantName(caller);
  const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
  const priced = await graphql(gw.url, 'mutation($input: SetPriceInput!) { setPrice(input: $input) { id } }', {
    input: { model: 'fashion-cnn', tenant: name, currency: 'USD', unitPriceMicros: '1500', effectiveFrom: hour },
  }, authHeaders(admin.key));
  expect(priced.body.errors).toBeUndefined();
  const later = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 + 30 * 86_400_000).toISOString();
  const scheduled = await graphql(gw.url, 'mutation($input: SetPriceInput!) { setPrice(input: $input) { id } }', {
    input: { model: 'fashion-cnn', tenant: name, currency: 'USD', unitPriceMicros: '2000', effectiveFrom: later },
  }, authHeaders(admin.key));
  expect(scheduled.body.errors).toBeUndefined();
  const limits = await graphql(gw.url, 'mutation($id: ID!, $input: UpdateTenantInput!) { updateTenant(id: $id, input: $input) { id } }', {
    id: caller.tenantId, input: { monthlyBudget: { currency: 'USD', amountMicros: '5000000' }, credits: { refillAmount: 1000, refillInterval: 'MONTHLY' } },
  }, authHeaders(admin.key));
  expect(limits.body.errors).toBeUndefined();
  const png = await imagePng(0);
  for (let i = 0; i < 3; i++) {
    const r = await graphql(gw.url, CLASSIFY, { model: 'fashion-cnn', images: [{ image: png }] }, authHeaders(caller.key));
    expect(r.body.errors).toBeUndefined();
  }
  return { name };
}

describe('billing', () => {
  it('shows a finance (usage:read) key its spend, price book, budget, credits and an invoice equal to invoice(), by keyboard, printable, on a phone', async () => {
    const { name } = await pricedTenant();
    const finance = await createTestKey({ tenantName: name, scopes: ['usage:read'], name: 'finance' });
    const month = thisMonth();
    await untilInvoiced(finance.key, name, month, '3');
    const expected = await invoiceOf(finance.key, name, month);
    expect(invoiceText(expected)).toEqual(['0.004500 USD']);

    const session = await openConsole();
    const { page } = session;
    await signIn(page, finance.key);
    expect(await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents()).toEqual(['Usage', 'Billing', 'Request log']);
    await openBilling(page);
    await expect(page.getByTestId('billing-tenant').count()).resolves.toBe(0);
    await expect(page.getByTestId('billing-scope').getAttribute('data-tenant')).resolves.toBe(name);

    // The invoice: its total is invoice()'s for the same tenant and month, its lines are invoice()'s lines.
    await expect(page.getByTestId('invoice-total').allTextContents()).resolves.toEqual(invoiceText(expected));
    expect(await tableValues(page, 'table-invoice')).toEqual(expected.lines.map((l) => [l.model, `${(Number(l.unitPriceMicros) / 1e6).toFixed(6)} ${l.currency}`, l.units, `${(Number(l.amountMicros) / 1e6).toFixed(6)} ${l.currency}`, expect.any(String)]));

    // Spend, budget and credits this month.
    await expect(page.getByTestId('budget-limit').textContent()).resolves.toBe('5.000000 USD');
    await expect(page.getByTestId('budget-spent').textContent()).resolves.toBe('0.004500 USD');
    await expect(page.getByTestId('budget-remaining').textContent()).resolves.toMatch(/^\d+\.\d{6} USD$/);
    await expect(page.getByTestId('budget-projected').textContent()).resolves.toMatch(/^\d+\.\d{6} USD/);
    await page.getByTestId('budget-chart').locator('canvas').waitFor();
    await expect(page.getByTestId('credits-balance').textContent()).resolves.toMatch(/^[\d,]+ units$/);
    await expect(page.getByTestId('credits-used').textContent()).resolves.toMatch(/^[\d,]+ units$/);

    // The price book: the tenant price in force (the list price of fashion-cnn, if any, overridden) and the scheduled one.
    const prices = await tableValues(page, 'table-prices');
    expect(prices).toEqual(expect.arrayContaining([
      ['fashion-cnn', `${name} (tenant price)`, '0.001500', 'USD', expect.any(String), 'in force', expect.any(String)],
      ['fashion-cnn', `${name} (tenant price)`, '0.002000', 'USD', expect.any(String), 'scheduled', expect.any(String)],
    ]));
    expect(prices.filter((p) => p[0] === 'fashion-cnn' && p[1] === 'list price' && p[5] === 'in force')).toEqual([]);
    await expect(page.getByTestId('table-prices').locator('tbody th').count()).resolves.toBeGreaterThan(1);

    // Keyboard only from the heading: Tab to the invoice CSV button, Enter downloads it.
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = (await focusedText(page)) === 'Download invoice CSV';
    }
    expect(reached).toBe(true);
    const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    expect(download.suggestedFilename()).toBe(`invoice-${name}-${month}.csv`);
    const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
    expect(csv[0]).toBe('model,currency,unitPriceMicros,units,amountMicros,from,to');
    expect(csv.filter((l) => l.startsWith('total,'))).toEqual(expected.totals.map((t) => expect.stringMatching(new RegExp(`^total,${t.currency},,,${t.amountMicros},`))));
    await page.keyboard.press('Tab');
    await expect(focusedText(page)).resolves.toBe('Print invoice');

    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '09-billing');

    // The printable view: the invoice alone, the header and the other sections hidden.
    await page.emulateMedia({ media: 'print' });
    await expect(page.getByRole('navigation', { name: 'Console sections' }).isVisible()).resolves.toBe(false);
    await expect(page.getByRole('heading', { level: 2, name: 'Price book' }).isVisible()).resolves.toBe(false);
    await expect(page.getByRole('button', { name: 'Download invoice CSV' }).isVisible()).resolves.toBe(false);
    await expect(page.getByTestId('invoice-total').isVisible()).resolves.toBe(true);
    await screenshot(page, '09-billing-print');
    await page.emulateMedia({ media: 'screen' });

    // Dark mode: the page's colours, the chart drawn with them, still accessible.
    await page.getByRole('button', { name: 'Dark mode' }).click();
    const fg = await page.evaluate(() => {
      const g = globalThis as unknown as { getComputedStyle(e: unknown): { getPropertyValue(n: string): string }; document: { documentElement: unknown } };
      return g.getComputedStyle(g.document.documentElement).getPropertyValue('--fg').trim();
    });
    await page.waitForFunction((want: string) => (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } })
      .document.querySelector('[data-testid="budget-chart"]')?.getAttribute('data-fg') === want, fg);
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '09-billing-dark');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();

    // 390 px wide: nothing wider than the screen, the invoice total there, still accessible.
    const phone = await openConsole({ width: 390, height: 844 });
    await signIn(phone.page, finance.key);
    await openBilling(phone.page);
    await expect(phone.page.getByTestId('invoice-total').allTextContents()).resolves.toEqual(invoiceText(expected));
    await phone.page.getByTestId('budget-chart').locator('canvas').waitFor();
    await expect(phone.page.evaluate(() => (globalThis as unknown as Doc).document.documentElement.scrollWidth)).resolves.toBeLessThanOrEqual(390);
    await expect(seriousViolations(phone.page)).resolves.toEqual([]);
    await screenshot(phone.page, '09-billing-390');
    expect(phone.problems).toEqual([]);
    expect(phone.offsite).toEqual([]);
    await phone.context.close();
  });

  it("lets an admin switch tenant: each tenant's invoice equals invoice()", async () => {
    const { name } = await pricedTenant();
    const month = thisMonth();
    await untilInvoiced(admin.key, name, month, '3');
    const other = await createTestKey({ scopes: ['inference'] });
    const otherName = await tenantName(other);
    const expected = await invoiceOf(admin.key, name, month);
    const expectedOther = await invoiceOf(admin.key, otherName, month);

    const session = await openConsole();
    const { page } = session;
    await signIn(page, admin.key);
    await openBilling(page);
    const picker = page.getByTestId('billing-tenant');
    await picker.locator('option', { hasText: name }).waitFor({ state: 'attached' });
    await picker.selectOption({ label: name });
    await page.waitForFunction((want: string) => (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } })
      .document.querySelector('[data-testid="billing-scope"]')?.getAttribute('data-tenant') === want, name);
    await expect(page.getByTestId('invoice-total').allTextContents()).resolves.toEqual(invoiceText(expected));
    await expect(page.getByTestId('budget-limit').textContent()).resolves.toBe('5.000000 USD');

    await picker.selectOption({ label: otherName });
    await page.waitForFunction((want: string) => (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } })
      .document.querySelector('[data-testid="billing-scope"]')?.getAttribute('data-tenant') === want, otherName);
    await expect(page.getByTestId('invoice-total').allTextContents()).resolves.toEqual(expectedOther.totals.length ? invoiceText(expectedOther) : ['nothing priced']);
    await expect(page.getByTestId('credits-summary').textContent()).resolves.toContain('No credit balance');
    await expect(seriousViolations(page)).resolves.toEqual([]);
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});
