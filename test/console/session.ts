/**
 * Console tabs for browser tests: each records page errors, console errors and
 * every request not addressed to the gateway; keyboard and table helpers; the
 * dark-mode and 390 px checks every page passes.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { screenshot, seriousViolations } from './browser';

export interface Session { context: BrowserContext; page: Page; problems: string[]; offsite: string[] }

type Doc = { document: { activeElement: { textContent: string | null; tagName: string; getAttribute(n: string): string | null } | null; documentElement: { scrollWidth: number } } };
export const focusedTestId = (page: Page) => page.evaluate(() => (globalThis as unknown as Doc).document.activeElement?.getAttribute('data-testid') ?? null);
export const focusedText = (page: Page) => page.evaluate(() => (globalThis as unknown as Doc).document.activeElement?.textContent ?? '');

/** Presses Tab until `reached` holds for the focused element (keyboard only); fails after `max` presses. */
export async function tabTo(page: Page, what: string, reached: () => Promise<boolean>, max = 80): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await reached()) return;
  }
  throw new Error(`Tab never reached ${what}`);
}

/** The raw value (data-value) of each cell, by row. */
export async function tableValues(page: Page, testId: string): Promise<string[][]> {
  return page.getByTestId(testId).locator('tbody tr').evaluateAll((rows) =>
    rows.map((row) => Array.from((row as unknown as { children: ArrayLike<{ getAttribute(n: string): string | null }> }).children, (c) => c.getAttribute('data-value') ?? '')),
  );
}

export interface ConsoleTabs {
  open(viewport?: { width: number; height: number }): Promise<Session>;
  signIn(page: Page, key: string): Promise<void>;
  /** Dark mode on `session` (axe, screenshot), then a 390 px tab on `hash`: nothing wider than the screen, axe, screenshot. */
  darkAndPhone(session: Session, key: string, hash: string, ready: (page: Page) => Promise<unknown>, shot: string): Promise<void>;
}

export function consoleTabs(browser: Browser, gatewayUrl: string): ConsoleTabs {
  const open = async (viewport = { width: 1280, height: 900 }): Promise<Session> => {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const problems: string[] = [];
    const offsite: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
    });
    context.on('request', (r) => {
      const url = r.url();
      if (!url.startsWith(`${gatewayUrl}/`) && !url.startsWith('blob:') && !url.startsWith('data:')) offsite.push(url);
    });
    await page.goto(`${gatewayUrl}/console`);
    return { context, page, problems, offsite };
  };
  const signIn = async (page: Page, key: string): Promise<void> => {
    await page.getByLabel('API key').fill(key);
    await page.keyboard.press('Enter');
    await page.getByTestId('view-title').waitFor();
  };
  const darkAndPhone = async (session: Session, key: string, hash: string, ready: (page: Page) => Promise<unknown>, shot: string): Promise<void> => {
    await session.page.getByRole('button', { name: 'Dark mode' }).click();
    await expect(session.page.evaluate(() => (globalThis as unknown as { document: { documentElement: { dataset: Record<string, string> } } }).document.documentElement.dataset['theme'])).resolves.toBe('dark');
    await expect(seriousViolations(session.page)).resolves.toEqual([]);
    await screenshot(session.page, `${shot}-dark`);
    const phone = await open({ width: 390, height: 844 });
    await signIn(phone.page, key);
    await phone.page.evaluate((h: string) => { (globalThis as unknown as { location: { hash: string } }).location.hash = h; }, hash);
    await ready(phone.page);
    await expect(phone.page.evaluate(() => (globalThis as unknown as Doc).document.documentElement.scrollWidth)).resolves.toBeLessThanOrEqual(390);
    await expect(seriousViolations(phone.page)).resolves.toEqual([]);
    await screenshot(phone.page, `${shot}-390`);
    expect(phone.problems).toEqual([]);
    expect(phone.offsite).toEqual([]);
    await phone.context.close();
  };
  return { open, signIn, darkAndPhone };
}
