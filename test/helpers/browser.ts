import { chromium, type Browser, type Page } from 'playwright-core';

/** Flags this machine needs for headless Chromium (no sandbox as root, no network beyond loopback). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/** Debian's Chromium driven by playwright-core. */
export async function launchBrowser(): Promise<TestBrowser> {
  // playwright gives every launch a fresh, empty profile directory of its own (and removes it on close).
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}

/** The page's text parsed as JSON (the echo upstream's answers, the gateway's errors); fails naming the URL and text otherwise. */
export async function pageJson(page: Page): Promise<any> {
  const text = await page.locator('body').innerText();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON at ${page.url()}, got: ${text.slice(0, 500)}`);
  }
}
