import type { Browser, Page } from 'playwright-core';
import { DEMO_PASSWORD } from '../../src/demo/idp/index.js';

/** The demo IdP's submit button (login form and logout confirmation). */
export const IDP_SUBMIT = 'button[type=submit], input[type=submit]';

/**
 * On the demo IdP's login page: fills in `username` with the demo password,
 * submits, and waits until the browser is back at `backTo` (the gateway's
 * origin), i.e. the login callback has run and its redirect was followed.
 */
export async function loginAtIdp(page: Page, username: string, backTo: string): Promise<void> {
  await page.waitForSelector('input[name=username]');
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', DEMO_PASSWORD);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(backTo), { timeout: 15_000 }), page.click(IDP_SUBMIT)]);
}

export interface SessionLogin {
  /** Where opening `url` first landed (the IdP's login page, normally). */
  redirectedTo: string;
  /** The text of the page the gateway served after the login. */
  body: string;
  /** The gateway's session cookies: `cookieName` and its chunks `cookieName_N`, as the browser holds them. */
  cookies: { name: string; value: string }[];
  /** The same cookies as a Cookie request header. */
  header: string;
}

/**
 * A complete browser login in a fresh context of `browser`: opens `url` (a
 * route of the gateway that sends browsers to the demo IdP), logs in as
 * `username`, and returns the session cookies the gateway set. The context is
 * closed afterwards, so the cookies are the caller's alone to use.
 */
export async function sessionCookieAfterLogin(browser: Browser, url: string, username: string, cookieName = 'session'): Promise<SessionLogin> {
  const origin = new URL(url).origin;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const first = await page.goto(url);
    const redirectedTo = first?.url() ?? page.url();
    await loginAtIdp(page, username, origin);
    const body = await page.locator('body').innerText();
    const cookies = (await context.cookies(origin))
      .filter((c) => c.name === cookieName || c.name.startsWith(`${cookieName}_`))
      .map((c) => ({ name: c.name, value: c.value }));
    return { redirectedTo, body, cookies, header: cookies.map((c) => `${c.name}=${c.value}`).join('; ') };
  } finally {
    await context.close();
  }
}
