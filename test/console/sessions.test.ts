/**
 * Console sign-in as sessions (issue #26): a key exchanged once for an
 * HttpOnly, SameSite=Strict cookie held in Postgres, CSRF-checked, revoked
 * with its key, ended by sign-out and by the idle timeout; OIDC sign-in
 * against a local provider this test starts, its roles mapped to scopes.
 * API-level checks with fetch, browser checks in Chromium.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { REPO_ROOT, freePort, graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, testKeyService, type TestKey } from '../helpers/auth';
import { launchBrowser } from './browser';
import { STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const CLIENT_ID = 'modelgate-console';
const CLIENT_SECRET = 'a-test-client-secret-of-some-length';
const ROLES = { alice: ['finance'], bob: ['platform-admin'], carol: ['intern'] };
const ROLE_SCOPES = 'finance=usage:read;platform-admin=admin';

let gw: TestGateway;
let idleGw: TestGateway;
let provider: ChildProcess;
let browser: Browser;
let admin: TestKey;
let oidcTenant: string;

beforeAll(async () => {
  admin = await createTestKey({ scopes: ['admin'], name: 'sessions admin' });
  oidcTenant = `oidc-${Date.now().toString(36)}`;
  await createTestKey({ tenantName: oidcTenant, scopes: ['inference'], name: 'tenant seed' });
  const port = await freePort();
  const redirect = `http://127.0.0.1:${port}/console/oidc/callback`;
  const issuer = await startProvider(redirect);
  // The idle gateway serves no models: it only needs to start, sign in and time out.
  const noModels = mkdtempSync(path.join(os.tmpdir(), 'modelgate-no-models-'));
  [gw, idleGw, browser] = await Promise.all([
    startGateway({
      PORT: String(port),
      OIDC_ISSUER_URL: issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      OIDC_REDIRECT_URL: redirect,
      OIDC_ROLE_SCOPES: ROLE_SCOPES,
      OIDC_TENANT: oidcTenant,
    }),
    startGateway({ MODEL_REPOSITORY: noModels, CONSOLE_SESSION_IDLE_TIMEOUT_MS: '1000', CONSOLE_SESSION_ABSOLUTE_TIMEOUT_MS: '600000' }),
    launchBrowser(),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([gw?.close(), idleGw?.close()]);
  provider?.kill('SIGTERM');
  await closeTestKeys();
});

async function startProvider(redirect: string): Promise<string> {
  provider = spawn(process.execPath, [path.join(REPO_ROOT, 'test/helpers/oidc-provider.mjs')], {
    env: { PATH: process.env['PATH'], CLIENT_ID, CLIENT_SECRET, REDIRECT_URI: redirect, ROLES: JSON.stringify(ROLES) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  provider.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  provider.stderr?.on('data', () => undefined);
  return until('the OIDC provider to listen', () => /READY (\S+)/.exec(out)?.[1], { failIf: () => (provider.exitCode !== null ? `provider exited ${provider.exitCode}` : undefined) });
}

interface Signed {
  cookie: string;
  setCookie: string;
  csrfToken: string;
}

async function signIn(url: string, key: string, headers: Record<string, string> = {}): Promise<Signed> {
  const res = await fetch(`${url}/console/session`, { method: 'POST', headers: { ...authHeaders(key), ...headers } });
  expect(res.status).toBe(201);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const body = (await res.json()) as { csrfToken: string };
  return { cookie: setCookie.split(';')[0] ?? '', setCookie, csrfToken: body.csrfToken };
}

/** A call as the console makes it: the cookie, and the CSRF header unless told otherwise. */
async function asSession<T = Record<string, unknown>>(url: string, s: Signed, query: string, csrf: string | null = s.csrfToken, variables: Record<string, unknown> = {}) {
  return graphql<T>(url, query, variables, { cookie: s.cookie, ...(csrf === null ? {} : { 'x-csrf-token': csrf }) });
}

const ME = '{ me { scopes apiKey { id prefix } tenant { name } } }';

describe('sessions over the API', () => {
  it('sets an HttpOnly, SameSite=Strict cookie (Secure once the request came over TLS) and keeps the key out of it', async () => {
    const reader = await createTestKey({ scopes: ['usage:read'] });
    const plain = await signIn(gw.url, reader.key);
    const attributes = plain.setCookie.split(';').map((a) => a.trim());
    expect(attributes[0]).toMatch(/^mg_session=[A-Za-z0-9_-]{43}$/);
    expect(attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Strict']));
    expect(attributes).not.toContain('Secure');
    expect(plain.setCookie).not.toContain(reader.key);
    const tls = await signIn(gw.url, reader.key, { 'x-forwarded-proto': 'https' });
    expect(tls.setCookie.split(';').map((a) => a.trim())).toContain('Secure');

    const me = await asSession<{ me: { scopes: string[]; apiKey: { id: string } } }>(gw.url, plain, ME);
    expect(me.body.data?.me).toMatchObject({ scopes: ['USAGE_READ'], apiKey: { id: reader.apiKeyId } });
    // A reload asks whether it is signed in and gets the same CSRF token back.
    const state = (await (await fetch(`${gw.url}/console/session`, { headers: { cookie: plain.cookie } })).json()) as { signedIn: boolean; csrfToken: string };
    expect(state).toMatchObject({ signedIn: true, csrfToken: plain.csrfToken });
  });

  it('refuses a wrong key with the contract (401) and sets no cookie', async () => {
    const res = await fetch(`${gw.url}/console/session`, { method: 'POST', headers: authHeaders(`mg_live_${'x'.repeat(49)}`) });
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(((await res.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('UNAUTHENTICATED');
  });

  it('refuses a cookie-authenticated request without the CSRF header, or with a wrong one (403), and changes nothing', async () => {
    const s = await signIn(gw.url, admin.key);
    const name = `csrf-${Date.now().toString(36)}`;
    const create = 'mutation($name: String!) { createTenant(input: { name: $name }) { id } }';
    for (const csrf of [null, 'not-the-token']) {
      const refused = await asSession(gw.url, s, create, csrf, { name });
      expect(refused.status).toBe(403);
      expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'CSRF' });
    }
    const { db } = await testKeyService();
    expect(await db.prisma.tenant.findUnique({ where: { name } })).toBeNull();
    const created = await asSession<{ createTenant: { id: string } }>(gw.url, s, create, s.csrfToken, { name });
    expect(created.body.errors).toBeUndefined();
    // Sign-out wants the proof too.
    expect((await fetch(`${gw.url}/console/session`, { method: 'DELETE', headers: { cookie: s.cookie } })).status).toBe(403);
  });

  it('ends the session on the next request once its key is revoked', async () => {
    const manager = await createTestKey({ scopes: ['keys:manage'] });
    const s = await signIn(gw.url, manager.key);
    expect((await asSession(gw.url, s, ME)).status).toBe(200);
    const revoked = await graphql(gw.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: manager.apiKeyId }, authHeaders(admin.key));
    expect(revoked.body.errors).toBeUndefined();
    const next = await asSession(gw.url, s, ME);
    expect(next.status).toBe(401);
    expect(next.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'SESSION_ENDED' });
  });

  it('signs out: the cookie is cleared and no longer accepted', async () => {
    const reader = await createTestKey({ scopes: ['usage:read'] });
    const s = await signIn(gw.url, reader.key);
    const out = await fetch(`${gw.url}/console/session`, { method: 'DELETE', headers: { cookie: s.cookie, 'x-csrf-token': s.csrfToken } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^mg_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/);
    expect((await asSession(gw.url, s, ME)).status).toBe(401);
    // The key itself still works: signing out ends the session, not the key.
    expect((await graphql(gw.url, ME, {}, authHeaders(reader.key))).status).toBe(200);
  });

  it('ends an idle session after CONSOLE_SESSION_IDLE_TIMEOUT_MS without a request', async () => {
    const reader = await createTestKey({ scopes: ['usage:read'] });
    const s = await signIn(idleGw.url, reader.key);
    expect((await asSession(idleGw.url, s, ME)).status).toBe(200);
    // The page's periodic check is passive (it must not keep an open tab alive), so polling it waits for the idle end.
    const state = await until('the idle session to end', async () => {
      const res = await fetch(`${idleGw.url}/console/session?passive=1`, { headers: { cookie: s.cookie } });
      return (await res.json()) as { signedIn: boolean; ended?: string };
    }, { accept: (r) => !r.signedIn, everyMs: 200 });
    expect(state.ended).toMatch(/session has ended/);
    const ended = await asSession(idleGw.url, s, ME);
    expect(ended.status).toBe(401);
    expect(ended.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'SESSION_ENDED' });
  });
});

describe('sessions in the browser', () => {
  async function openConsole(): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${gw.url}/console`);
    return { context, page, problems };
  }

  /** Every value in both storages, and the cookies the page's script can see. */
  async function pageReadable(page: Page): Promise<string> {
    return page.evaluate(() => {
      const g = globalThis as unknown as { localStorage: Record<string, string>; sessionStorage: Record<string, string>; document: { cookie: string } };
      return JSON.stringify({ local: { ...g.localStorage }, session: { ...g.sessionStorage }, cookie: g.document.cookie });
    });
  }

  it('signs in with a key: an HttpOnly Strict cookie, no key in sessionStorage or localStorage, kept over a reload, ended by revoking the key', async () => {
    const finance = await createTestKey({ scopes: ['usage:read'], name: 'finance person' });
    const { context, page, problems } = await openConsole();
    await page.getByLabel('API key').fill(finance.key);
    await page.keyboard.press('Enter');
    await page.getByTestId('view-title').waitFor();

    const cookies = await context.cookies();
    expect(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure, path: c.path }))).toEqual([
      { name: 'mg_session', httpOnly: true, sameSite: 'Strict', secure: false, path: '/' },
    ]);
    expect(cookies[0]?.value).not.toContain(finance.key);
    const readable = await pageReadable(page);
    expect(readable).not.toContain(finance.key);
    expect(readable).not.toContain('mg_session');
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length)).toBe(0);

    await page.reload();
    await expect(page.getByTestId('view-title').textContent()).resolves.toBe('Usage');

    const revoked = await graphql(gw.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: finance.apiKeyId }, authHeaders(admin.key));
    expect(revoked.body.errors).toBeUndefined();
    // The next call the page makes (a view change) is refused, and the page is back at sign-in.
    await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link', { name: 'Billing' }).click();
    await expect(page.getByTestId('signin-error').textContent()).resolves.toContain('session has ended');
    await expect(page.getByTestId('view-title').count()).resolves.toBe(0);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('signs out: the cookie is gone and a reload shows the sign-in form', async () => {
    const reader = await createTestKey({ scopes: ['usage:read'] });
    const { context, page } = await openConsole();
    await page.getByLabel('API key').fill(reader.key);
    await page.keyboard.press('Enter');
    await page.getByTestId('view-title').waitFor();
    const token = (await context.cookies())[0]?.value ?? '';
    const ended = page.waitForResponse((r) => r.url().endsWith('/console/session') && r.request().method() === 'DELETE');
    await page.getByRole('button', { name: 'Sign out' }).click();
    expect((await ended).status()).toBe(204);
    expect((await context.cookies()).filter((c) => c.name === 'mg_session')).toEqual([]);
    await page.reload();
    await page.getByLabel('API key').waitFor();
    // The old token is dead on the gateway too, not only forgotten by the browser.
    const stale = await graphql(gw.url, ME, {}, { cookie: `mg_session=${token}` });
    expect(stale.status).toBe(401);
    await context.close();
  });

  /** Through the provider's development login page: any login name is that account; consent once. */
  async function oidcSignIn(page: Page, login: string): Promise<void> {
    await page.getByTestId('signin-oidc').click();
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('any');
    await page.locator('button[type="submit"]').click();
    const consent = page.getByRole('button', { name: 'Continue' });
    await page.waitForURL((u) => u.pathname.startsWith('/console') || u.pathname.includes('interaction'));
    if (new URL(page.url()).pathname.includes('interaction') && (await consent.count()) > 0) await consent.click();
    await page.waitForURL((u) => u.pathname === '/console');
  }

  it('signs in through OIDC: the role maps to scopes, the session acts with them, sign-out revokes its key', async () => {
    const { context, page, problems } = await openConsole();
    await oidcSignIn(page, 'alice');
    await page.getByTestId('view-title').waitFor();
    const links = await page.getByRole('navigation', { name: 'Console sections' }).getByRole('link').allTextContents();
    expect(links).toEqual(['Usage', 'Billing', 'Request log']); // a usage:read session's sections
    await expect(page.getByTestId('who').textContent()).resolves.toContain('usage:read');
    expect(await pageReadable(page)).not.toMatch(/mg_(live|test)_/);

    const cookie = (await context.cookies()).find((c) => c.name === 'mg_session');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    const state = (await (await fetch(`${gw.url}/console/session`, { headers: { cookie: `mg_session=${cookie?.value}` } })).json()) as { csrfToken: string; kind: string; subject: string };
    expect(state).toMatchObject({ kind: 'OIDC', subject: 'alice@example.test' });
    const me = await graphql<{ me: { scopes: string[]; apiKey: { id: string }; tenant: { name: string } } }>(gw.url, ME, {}, { cookie: `mg_session=${cookie?.value}`, 'x-csrf-token': state.csrfToken });
    expect(me.body.data?.me).toMatchObject({ scopes: ['USAGE_READ'], tenant: { name: oidcTenant } });

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    const { db } = await testKeyService();
    await until('the sign-in key to be revoked', () => db.prisma.apiKey.findUnique({ where: { id: me.body.data?.me.apiKey.id ?? '' } }), { accept: (k) => k?.revokedAt != null });
    expect(problems).toEqual([]);
    await context.close();
  });

  it('maps an admin role to the admin scope, and refuses a person whose roles map to none', async () => {
    const first = await openConsole();
    await oidcSignIn(first.page, 'bob');
    await first.page.getByTestId('view-title').waitFor();
    await expect(first.page.getByTestId('who').textContent()).resolves.toContain('admin');
    await first.context.close();

    const second = await openConsole();
    await oidcSignIn(second.page, 'carol');
    await expect(second.page.getByTestId('signin-error').textContent()).resolves.toContain('none of your roles');
    // (Cookies are per host, not port: the provider's own sit beside ours.)
    expect((await second.context.cookies(gw.url)).filter((c) => c.name.startsWith('mg_'))).toEqual([]);
    await second.context.close();
  });
});
