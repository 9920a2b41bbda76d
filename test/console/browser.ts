/**
 * A real browser for console tests: Debian's chromium driven by playwright-core
 * (no browser download), axe-core injected per page, screenshots to a
 * temporary folder, or to the committed set in docs/console with
 * UPDATE_SCREENSHOTS=1 (CONSOLE_SCREENSHOT_DIR names another folder).
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO_ROOT } from '../helpers/gateway';

export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** An ordinary run must not rewrite the committed screenshots (a dirty tree after every `npm test`). */
export function screenshotDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['CONSOLE_SCREENSHOT_DIR']) return env['CONSOLE_SCREENSHOT_DIR'];
  if (env['UPDATE_SCREENSHOTS'] === '1') return path.join(REPO_ROOT, 'docs', 'console');
  return mkdtempSync(path.join(os.tmpdir(), 'modelgate-console-screenshots-'));
}
let dir: string | undefined;

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

export interface AxeViolation { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }

const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Serious and critical axe violations on the page as it is now (evaluated over CDP, so the page's CSP stays on). */
export async function seriousViolations(page: Page): Promise<string[]> {
  // A string is evaluated over CDP (not by the page's eval), so the page's CSP stays on while axe runs.
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const g = globalThis as unknown as { document: unknown; axe: { run: (ctx: unknown, opts: object) => Promise<{ violations: AxeViolation[] }> } };
    return (await g.axe.run(g.document, { resultTypes: ['violations'] })).violations;
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Full-page screenshot; a shown secret is masked, since these files are committed. */
export async function screenshot(page: Page, name: string): Promise<void> {
  dir ??= screenshotDir();
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true, mask: [page.getByTestId('secret-value')], maskColor: '#8a8f98' });
}
