/**
 * The console's Playground heatmaps, Webhooks, Audit log and Model versions
 * pages in a real browser (Debian's chromium via playwright-core) against a
 * real in-process gateway, with a webhook receiver this test runs.
 */
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { Receiver } from '../webhooks/receiver';
import { screenshot, seriousViolations, launchBrowser } from './browser';
import { consoleTabs, tableValues, type ConsoleTabs } from './session';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
let browser: Browser;
let admin: TestKey;
let tabs: ConsoleTabs;
const receiver = new Receiver();

beforeAll(async () => {
  await receiver.start();
  [gw, browser] = await Promise.all([
    startGateway({
      WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
      WEBHOOK_POLL_INTERVAL_MS: '100',
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_MAX_ATTEMPTS: '2',
      WEBHOOK_RETRY_BASE_MS: '100',
      WEBHOOK_RETRY_MAX_MS: '200',
    }),
    launchBrowser(),
  ]);
  admin = await createTestKey({ scopes: ['admin'], name: 'pages admin' });
  tabs = consoleTabs(browser, gw.url);
});

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await receiver.close();
  await closeTestKeys();
});

const drawn = (page: Page) => page.evaluate(() => (globalThis as unknown as { document: { querySelector(s: string): { dataset: Record<string, string> } | null } })
  .document.querySelector('[data-testid="playground-canvas"]')?.dataset['drawn'] ?? null);

/** Pixels of the playground canvas the heatmap made red: the image is grey (r = g = b), so only the heatmap does. */
const reddishPixels = (page: Page) =>
  page.getByTestId('playground-canvas').evaluate((el) => {
    const ctx = (el as unknown as { getContext(t: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } }).getContext('2d');
    const d = ctx.getImageData(0, 0, 280, 280).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if ((d[i] ?? 0) > (d[i + 1] ?? 0) + 40) n++;
    return n;
  });

async function clickUntil(page: Page, button: string, what: string, done: () => Promise<boolean>): Promise<void> {
  await until(what, async () => {
    await page.getByRole('button', { name: button }).click();
    return done();
  }, { everyMs: 300 });
}

/** A developer signed in on the playground, fashion-cnn chosen and the ankle boot picked. */
async function playgroundOnAnkleBoot(name: string) {
  const key = await createTestKey({ scopes: ['inference', 'usage:read'], name });
  const session = await tabs.open();
  const { page } = session;
  await tabs.signIn(page, key.key);
  await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Models & playground' }).click();
  await page.getByTestId('playground-model').locator('option', { hasText: 'fashion-cnn' }).waitFor({ state: 'attached' });
  await page.getByTestId('playground-model').selectOption('fashion-cnn');
  await page.getByRole('button', { name: 'Ankle boot' }).click();
  return { key, session, page };
}

/** Runs the explanation; checks the heatmap drawn, its caption and label, what its usage record billed, and axe. */
async function explainAndCheck(page: Page, method: 'RISE' | 'OCCLUSION', billedItems: number): Promise<void> {
  await page.getByRole('button', { name: 'Classify and explain' }).click();
  await until(`the ${method} heatmap drawn`, () => drawn(page), { accept: (d) => d === method.toLowerCase(), everyMs: 100 });
  await expect(page.getByTestId('explained').textContent()).resolves.toMatch(new RegExp(`^${method} heatmap of “.+” \\(score \\d\\.\\d{3}\\)$`));
  expect(await reddishPixels(page)).toBeGreaterThan(280 * 280 * 0.02);
  await expect(page.getByTestId('playground-canvas').getAttribute('aria-label')).resolves.toMatch(new RegExp(`${method} heatmap drawn over it; strongest at row \\d+, column \\d+`));
  // After the run: what its usage record says was billed.
  await page.getByTestId('run-cost').filter({ hasText: 'Billed' }).waitFor();
  await expect(page.getByTestId('run-cost').textContent()).resolves.toMatch(
    new RegExp(`^Billed: ${billedItems} items, ${billedItems} compute units(, \\d+\\.\\d{6} [A-Z]{3})? \\(from its usage record\\)\\.$`),
  );
  await expect(seriousViolations(page)).resolves.toEqual([]);
}

describe('playground', () => {
  it('renders a RISE heatmap for fashion-cnn, with its method, parameters and cost shown before and what it cost after', async () => {
    const { key, session, page } = await playgroundOnAnkleBoot('developer');
    await page.getByTestId('explain-method').selectOption('RISE');
    await page.getByTestId('explain-masks').fill('200');
    // Waits for the re-render after the typed value rather than reading the text mid-update.
    await page.getByTestId('explain-cost').filter({ hasText: /RISE scores 200 random masks on a 7×7 grid \(seed 1\).*Cost before running: 201 items × 1 unit = 201 compute units/ }).waitFor();
    await explainAndCheck(page, 'RISE', 201);
    await screenshot(page, '13-playground-rise');
    await tabs.darkAndPhone(session, key.key, '#models', (p) => p.getByTestId('playground-model').locator('option', { hasText: 'fashion-cnn' }).waitFor({ state: 'attached' }), '13-playground');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});

describe('playground, occlusion', () => {
  it('renders an OCCLUSION heatmap for fashion-cnn, with its patch, stride and cost shown before and what it cost after', async () => {
    const { session, page } = await playgroundOnAnkleBoot('occlusion developer');
    await page.getByTestId('explain-method').selectOption('OCCLUSION');
    await page.getByTestId('explain-patch').fill('7');
    await page.getByTestId('explain-stride').fill('7');
    // A 7 px patch every 7 px over 28×28: 4 × 4 positions, plus the unoccluded image.
    await page.getByTestId('explain-cost').filter({ hasText: /Occlusion slides a 7 px patch every 7 px over the 28×28 input.*Cost before running: 17 items × 1 unit = 17 compute units/ }).waitFor();
    await explainAndCheck(page, 'OCCLUSION', 17);
    await screenshot(page, '13-playground-occlusion');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});

describe('webhooks and audit log', () => {
  it('shows a failed delivery, redelivers it to the receiver, rotates the secret; the audit log equals auditEvents', async () => {
    const manager = await createTestKey({ scopes: ['keys:manage'], name: 'hook manager' });
    const doomed = await createTestKey({ tenantName: await tenantName(manager), scopes: ['inference'], name: 'doomed' });
    receiver.mode('/console-hook', { kind: 'fail', status: 500 });
    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, manager.key);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByTestId('hook-url').fill(receiver.url('/console-hook'));
    await page.locator('section[aria-labelledby="add-hook-title"]').getByRole('checkbox', { name: 'key.revoked' }).check();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    await expect(page.getByTestId('secret-value').inputValue()).resolves.toMatch(/^whsec_/);
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await page.getByTestId('table-webhooks').locator('tbody tr', { hasText: 'key.revoked' }).waitFor();

    const revoked = await graphql(gw.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: doomed.apiKeyId }, authHeaders(admin.key));
    expect(revoked.body.errors).toBeUndefined();
    // Two attempts answered 500, then FAILED: the log shows it.
    await clickUntil(page, 'Refresh the log', 'a failed delivery in the log', async () => (await page.getByTestId('table-deliveries').locator('tbody tr', { hasText: 'failed' }).count()) === 1);
    const failed = (await tableValues(page, 'table-deliveries'))[0] ?? [];
    expect([failed[0], failed[3], failed[4], failed[5]]).toEqual(['key.revoked', 'FAILED', '2', 'HTTP 500']);
    await screenshot(page, '14-webhooks-failed');

    receiver.mode('/console-hook', { kind: 'ok' });
    await page.getByRole('button', { name: /^Redeliver key\.revoked/ }).click();
    await page.getByTestId('webhook-note').filter({ hasText: 'Redelivery of key.revoked' }).waitFor();
    await clickUntil(page, 'Refresh the log', 'the redelivery delivered', async () => (await page.getByTestId('table-deliveries').locator('tbody tr', { hasText: 'delivered' }).count()) === 1);
    const got = receiver.at('/console-hook');
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(new Set(got.map((r) => r.body.id))).toEqual(new Set([failed[1]]));
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '14-webhooks');

    // Secret rotation: a new secret once, its prefix now the webhook's.
    const before = await hooks(manager.key);
    await page.getByRole('button', { name: `Rotate secret of ${receiver.url('/console-hook')}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate secret' }).click();
    const secret = await page.getByTestId('secret-value').inputValue();
    const after = await hooks(manager.key);
    expect(secret.startsWith(after[0]?.secretPrefix ?? '-')).toBe(true);
    expect(after[0]?.secretPrefix).not.toBe(before[0]?.secretPrefix);
    await tabs.darkAndPhone(session, manager.key, '#webhooks', (p) => p.getByTestId('table-deliveries').locator('tbody tr', { hasText: 'delivered' }).waitFor(), '14-webhooks');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();

    // The audit log, one tenant: its rows are auditEvents' answer (webhook.create, the revocation, the rotation…).
    const events = await graphql<{ auditEvents: { edges: { node: { createdAt: string; action: string; actor: string; requestId: string | null } }[] } }>(gw.url,
      'query($t: String) { auditEvents(tenant: $t, first: 50) { edges { node { createdAt action actor requestId } } } }', { t: manager.tenantId }, authHeaders(admin.key));
    const expected = events.body.data!.auditEvents.edges.map((e) => e.node);
    expect(expected.map((e) => e.action)).toEqual(expect.arrayContaining(['apikey.revoke']));
    const audit = await tabs.open();
    await tabs.signIn(audit.page, admin.key);
    await audit.page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Audit log' }).click();
    await audit.page.getByTestId('audit-tenant').locator(`option[value="${manager.tenantId}"]`).waitFor({ state: 'attached' });
    await audit.page.getByTestId('audit-tenant').selectOption(manager.tenantId);
    await audit.page.waitForFunction((n: number) => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('[data-testid="table-audit"] tbody tr').length === n
      && !(globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector('[data-testid="table-audit"] caption')?.textContent.includes('filtered'), expected.length);
    await until('the tenant’s events in the table', async () => (await tableValues(audit.page, 'table-audit')).map((r) => [r[0], r[1], r[2], r[5]]), {
      accept: (rows) => JSON.stringify(rows) === JSON.stringify(expected.map((e) => [e.createdAt, e.action, e.actor, e.requestId ?? ''])), everyMs: 200 });
    await expect(seriousViolations(audit.page)).resolves.toEqual([]);
    await screenshot(audit.page, '15-audit-log');
    await tabs.darkAndPhone(audit, admin.key, '#audit', (p) => p.getByTestId('table-audit').locator('tbody tr').first().waitFor(), '15-audit-log');
    expect(audit.problems).toEqual([]);
    expect(audit.offsite).toEqual([]);
    await audit.context.close();
  });
});

describe('model versions', () => {
  it("lists every model's versions as modelVersions answers", async () => {
    const res = await graphql<{ modelVersions: { version: string; replicaStatus: string; desiredState: string; trafficPercent: number | null }[] }>(gw.url,
      'query($m: String!) { modelVersions(model: $m) { version replicaStatus desiredState trafficPercent } }', { m: 'fashion-cnn' }, authHeaders(admin.key));
    expect(res.body.errors).toBeUndefined();
    const expected = res.body.data!.modelVersions;
    const session = await tabs.open();
    const { page } = session;
    await tabs.signIn(page, admin.key);
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Model versions' }).click();
    await page.getByTestId('table-versions').locator('tbody tr', { hasText: 'fashion-cnn' }).first().waitFor();
    const rows = (await tableValues(page, 'table-versions')).filter((r) => r[0] === 'fashion-cnn');
    expect(rows.map((r) => [r[1], r[3], r[4], r[5]])).toEqual(expected.map((v) => [v.version, v.desiredState, v.replicaStatus, v.trafficPercent === null ? '' : String(v.trafficPercent)]));
    await expect(seriousViolations(page)).resolves.toEqual([]);
    await screenshot(page, '16-model-versions');
    await tabs.darkAndPhone(session, admin.key, '#versions', (p) => p.getByTestId('table-versions').locator('tbody tr', { hasText: 'fashion-cnn' }).first().waitFor(), '16-model-versions');
    expect(session.problems).toEqual([]);
    expect(session.offsite).toEqual([]);
    await session.context.close();
  });
});

async function tenantName(key: TestKey): Promise<string> {
  const res = await graphql<{ me: { tenant: { name: string } } }>(gw.url, '{ me { tenant { name } } }', {}, authHeaders(key.key));
  return res.body.data!.me.tenant.name;
}

async function hooks(key: string): Promise<{ id: string; secretPrefix: string }[]> {
  const res = await graphql<{ webhooks: { id: string; secretPrefix: string }[] }>(gw.url, '{ webhooks { id secretPrefix } }', {}, authHeaders(key));
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.webhooks;
}
