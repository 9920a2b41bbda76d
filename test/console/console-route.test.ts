/** The /console route itself: the built files, their headers, and a clear answer when they are not built. */
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { registerConsole } from '../../src/server/rest/console.routes';
import { REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { screenshotDir } from './browser';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({}, { waitReady: false });
});
afterAll(() => gw?.close());

describe('GET /console', () => {
  it('serves the page and its bundle with a CSP that allows only this origin', async () => {
    const page = await fetch(`${gw.url}/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await page.text();
    // Offline: every script and stylesheet comes from this gateway.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs.sort()).toEqual(['/console/assets/console.css', '/console/assets/console.js']);
    const js = await fetch(`${gw.url}/console/assets/console.js`);
    expect(js.headers.get('content-type')).toContain('application/javascript');
    expect((await js.text()).length).toBeGreaterThan(10000);
  });

  it('answers 404 for an unknown asset (no path walking)', async () => {
    for (const name of ['nope.js', '..%2Fpackage.json', 'size.json']) {
      expect((await fetch(`${gw.url}/console/assets/${name}`)).status).toBe(404);
    }
  });

  it('says the console is not built, rather than serving nothing', async () => {
    const app = Fastify();
    registerConsole(app, '/nonexistent/console-web');
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`${url}/console`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ message: expect.stringContaining('npm run build:ts') });
    } finally {
      await app.close();
    }
  });
});

describe('where the console tests put screenshots', () => {
  it('writes the committed set only when UPDATE_SCREENSHOTS=1 asks, else a fresh temporary folder', () => {
    const committed = path.join(REPO_ROOT, 'docs', 'console');
    expect(screenshotDir({ UPDATE_SCREENSHOTS: '1' })).toBe(committed);
    const temps = [screenshotDir({}), screenshotDir({}), screenshotDir({ UPDATE_SCREENSHOTS: '0' })];
    for (const temp of temps) expect(temp.startsWith(os.tmpdir())).toBe(true);
    expect(new Set(temps).size).toBe(3);
    expect(screenshotDir({ CONSOLE_SCREENSHOT_DIR: '/somewhere', UPDATE_SCREENSHOTS: '1' })).toBe('/somewhere');
    for (const temp of temps) rmSync(temp, { recursive: true });
  });
});
