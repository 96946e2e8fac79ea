import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { request } from 'undici';
import { DEMO_USERS, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { launchBrowser, pageJson, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { IDP_SUBMIT, loginAtIdp } from '../helpers/idp-login.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * The reference scenario in a real browser against a real OpenID Provider
 * (oidc-provider): authorization code + PKCE through the gateway, sessions,
 * scope enforcement, several tabs, logout.
 */
describe('openid-connect: browser login against a real OpenID Provider', () => {
  let idp: DemoIdp;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let chromium: TestBrowser;
  let base: string;
  const client = gatehouseClient();
  const withScope = DEMO_USERS.find((u) => u.username === 'Blog_with_scope')!;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = await startDemoIdp({
      clients: [client.registration([`${base}/oidc`, `${base}/app/callback`, `${base}/tokens/callback`, `${base}/deep`, `${base}/info`, `${base}/other/callback`], [`${base}/bye`])],
      resource: base,
    });
    upstream = await startUpstream();
    const common = {
      ...client.pluginConfig(idp.issuer),
      scopes: ['openid', 'profile', 'email', 'offline_access', 'kong_api_access'],
      session_secret: randomBytes(32).toString('base64url'),
      auth_methods: ['authorization_code', 'session', 'bearer', 'refresh_token'],
      upstream_headers_claims: ['sub'],
      upstream_headers_names: ['x-user-sub'],
    };
    gw = await startGateway({
      env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}` },
      config: oneService(`${upstream.url}/anything`, [
        {
          name: 'openidconnectRoute',
          paths: ['/oidc'],
          plugins: [{ name: 'openid-connect', config: { ...common, redirect_uri: [`${base}/oidc`], consumer_optional: true, scopes_required: ['kong_api_access'] } }],
        },
        {
          name: 'app',
          paths: ['/app'],
          plugins: [
            {
              name: 'openid-connect',
              config: {
                ...common,
                redirect_uri: [`${base}/app/callback`],
                login_action: 'redirect',
                session_cookie_name: 'app_session',
                logout_uri_suffix: '/logout',
                logout_methods: ['GET', 'POST'],
                logout_redirect_uri: [`${base}/bye`],
              },
            },
          ],
        },
        {
          name: 'tokens',
          paths: ['/tokens'],
          plugins: [
            {
              name: 'openid-connect',
              config: {
                ...common,
                redirect_uri: [`${base}/tokens/callback`],
                login_action: 'response',
                login_tokens: ['tokens'],
                session_cookie_name: 'tok_session',
                logout_uri_suffix: '/logout',
                logout_methods: ['GET'],
                logout_revoke: true,
              },
            },
          ],
        },
        {
          name: 'deep',
          paths: ['/deep'],
          plugins: [{ name: 'openid-connect', config: { ...common, redirect_uri: [`${base}/deep`], session_cookie_name: 'deep_session' } }],
        },
        {
          // The demo IdP refuses resource-bound access tokens at userinfo: every login here fails after the code exchange.
          name: 'info',
          paths: ['/info'],
          plugins: [{ name: 'openid-connect', config: { ...common, redirect_uri: [`${base}/info`], session_cookie_name: 'info_session', upstream_user_info_header: 'x-userinfo' } }],
        },
        {
          // Same session_secret as /app, another IdP configuration (another redirect_uri).
          name: 'other',
          paths: ['/other'],
          plugins: [{ name: 'openid-connect', config: { ...common, redirect_uri: [`${base}/other/callback`], session_cookie_name: 'other_session' } }],
        },
        { name: 'bye', paths: ['/bye'] },
      ], 'openidconnect'),
    });
    chromium = await launchBrowser();
  });

  after(async () => {
    await chromium?.close();
    await gw?.stop();
    await upstream?.close();
    await idp?.stop();
  });

  const login = (page: Page, username: string) => loginAtIdp(page, username, base);

  it('Blog_with_scope logs in through the IdP and reaches the upstream with its identity', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      const first = await page.goto(`${base}/oidc`);
      assert.ok(first!.url().startsWith(idp.issuer), `redirected to the IdP, got ${first!.url()}`);
      const auth = new URL(first!.request().redirectedFrom()?.url() ?? page.url());
      void auth;
      await login(page, 'Blog_with_scope');
      const echo = await pageJson(page);
      assert.equal(echo.headers['x-user-sub'], withScope.sub);
      assert.match(echo.headers.authorization, /^Bearer ey/);
      assert.ok(!/[?&](code|state)=/.test(echo.url), `code/state never reach the upstream (saw ${echo.url})`);
      const upstreamCookies = String(echo.headers.cookie ?? '').split(';').map((c) => c.trim().split('=')[0]).filter(Boolean);
      assert.ok(!upstreamCookies.some((n) => n === 'session' || /^session_\d+$/.test(n) || n.startsWith('gatehouse_auth_')), `gateway cookies never reach the upstream (saw ${upstreamCookies.join(', ')})`);

      const cookies = await context.cookies(base);
      const session = cookies.find((c) => c.name === 'session');
      assert.ok(session, 'session cookie set');
      assert.equal(session!.httpOnly, true);
      assert.equal(session!.sameSite, 'Lax');
      assert.ok(!cookies.some((c) => c.name.startsWith('gatehouse_auth_')), 'login transaction cookie removed');

      // Reloading the callback URL (code already spent) serves the page from the session.
      const reload = await page.reload();
      assert.equal(reload!.status(), 200);
      assert.equal((await pageJson(page)).headers['x-user-sub'], withScope.sub);

      // The session carries the next request without the IdP.
      const again = await page.goto(`${base}/oidc/again?x=1`);
      assert.equal(again!.status(), 200);
      assert.equal((await pageJson(page)).url, '/anything/again?x=1');
    } finally {
      await context.close();
    }
  });

  it('Blog_without_scope logs in but is denied with 403, and the gateway logs the scopes it had', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/oidc`);
      await login(page, 'Blog_without_scope');
      const denied = await page.goto(`${base}/oidc`);
      assert.equal(denied!.status(), 403);
      assert.deepEqual(await pageJson(page), { message: 'Forbidden' });
      const line = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('required scopes were not found'));
      assert.match(line.msg, /^required scopes were not found \[ openid, .*profile.*email.* \]$/);
      assert.ok(!line.msg.includes('kong_api_access'));
      assert.equal(line.route, 'openidconnectRoute');
    } finally {
      await context.close();
    }
  });

  it('lets two tabs log in at the same time, each returning to its own page', async () => {
    const context = await chromium.browser.newContext();
    try {
      const [a, b] = [await context.newPage(), await context.newPage()];
      await Promise.all([a.goto(`${base}/app/one?tab=a`), b.goto(`${base}/app/two?tab=b`)]);
      assert.ok(a.url().startsWith(idp.issuer) && b.url().startsWith(idp.issuer));
      await login(a, 'Blog_with_scope');
      await login(b, 'Blog_with_scope');
      assert.equal(new URL(a.url()).pathname + new URL(a.url()).search, '/app/one?tab=a');
      assert.equal(new URL(b.url()).pathname + new URL(b.url()).search, '/app/two?tab=b');
      assert.equal((await pageJson(a)).url, '/anything/one?tab=a');
      assert.equal((await pageJson(b)).url, '/anything/two?tab=b');
    } finally {
      await context.close();
    }
  });

  it('logout ends the session locally and at the IdP', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/app/home`);
      await login(page, 'Blog_with_scope');
      assert.equal((await pageJson(page)).url, '/anything/home');
      await page.goto(`${base}/app/logout`);
      // oidc-provider asks the user to confirm RP-initiated logout.
      if (page.url().startsWith(idp.issuer)) {
        const confirm = page.locator(IDP_SUBMIT).first();
        await Promise.all([page.waitForURL((u) => u.href.startsWith(base), { timeout: 15_000 }), confirm.click()]);
      }
      assert.equal(new URL(page.url()).pathname, '/bye');
      assert.ok(!(await context.cookies(base)).some((c) => c.name.startsWith('app_session')), 'session cookies deleted');
      const after = await page.goto(`${base}/app/home`);
      assert.ok(after!.url().startsWith(idp.issuer), 'a new login is required');
    } finally {
      await context.close();
    }
  });

  it('login_action response returns the tokens as JSON, and logout_revoke revokes them at the IdP', async () => {
    const introspect = async (token: string) => {
      const res = await request(`${idp.issuer}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`gatehouse:${client.secret}`).toString('base64')}` },
        body: new URLSearchParams({ token }).toString(),
      });
      return ((await res.body.json()) as { active: boolean }).active;
    };
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/tokens/x`);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(`${base}/tokens/callback`)),
        loginAtIdp(page, 'Blog_with_scope', base),
      ]);
      assert.equal(response.headers()['cache-control'], 'no-store');
      assert.equal(response.headers()['referrer-policy'], 'no-referrer');
      const tokens = await pageJson(page);
      assert.match(tokens.access_token, /^ey/);
      assert.match(tokens.id_token, /^ey/);
      assert.equal(typeof tokens.refresh_token, 'string');
      assert.equal(await introspect(tokens.access_token), true);
      assert.equal(await introspect(tokens.refresh_token), true);

      await page.goto(`${base}/tokens/logout`);
      assert.ok(page.url().startsWith(idp.issuer), 'sent on to the IdP for RP-initiated logout');
      assert.equal(await introspect(tokens.access_token), false, 'access token revoked');
      assert.equal(await introspect(tokens.refresh_token), false, 'refresh token revoked');
      assert.ok(!(await context.cookies(base)).some((c) => c.name.startsWith('tok_session')));
    } finally {
      await context.close();
    }
  });

  it('brings a deep link back after login, path and query, when redirect_uri is the route\'s base', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/deep/page/two?x=1&y=%20z`);
      assert.ok(page.url().startsWith(idp.issuer));
      await login(page, 'Blog_with_scope');
      const url = new URL(page.url());
      assert.equal(url.pathname + url.search, '/deep/page/two?x=1&y=%20z');
      assert.equal((await pageJson(page)).url, '/anything/page/two?x=1&y=%20z');
    } finally {
      await context.close();
    }
  });

  it('sets no session cookie when the login fails after the code exchange (userinfo refused)', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/info`);
      const [response] = await Promise.all([page.waitForResponse((r) => r.url().startsWith(`${base}/info?`)), login(page, 'Blog_with_scope')]);
      assert.equal(response.status(), 401);
      const setCookies = (await response.headersArray()).filter((h) => h.name.toLowerCase() === 'set-cookie').map((h) => h.value);
      assert.ok(setCookies.length > 0, 'the transaction cookie is deleted');
      for (const c of setCookies) assert.match(c, /Max-Age=0/, `only deletions on a failed login, got ${c}`);
      assert.ok(!(await context.cookies(base)).some((c) => c.name.startsWith('info_session')), 'no session cookie');
    } finally {
      await context.close();
    }
  });

  it('completes a login only at the callback of the IdP configuration that started it', async () => {
    const start = await request(`${base}/app/somewhere`, { headers: { accept: 'text/html' } });
    assert.equal(start.statusCode, 302);
    await start.body.dump();
    const state = new URL(String(start.headers.location)).searchParams.get('state')!;
    const txnCookie = [start.headers['set-cookie']].flat().map((c) => String(c).split(';')[0]).find((c) => c.startsWith('gatehouse_auth_'))!;
    assert.ok(state && txnCookie);
    const res = await request(`${base}/other/callback?code=stolen-code&state=${encodeURIComponent(state)}`, { headers: { cookie: txnCookie, accept: 'text/html' } });
    assert.equal(res.statusCode, 401);
    await res.body.dump();
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.path === '/other/callback');
    assert.match(String(line.reason), /without a matching transaction/);
  });

  it('bounds the login transactions a browser may hold', async () => {
    const pending = ['a', 'b', 'c', 'd'].map((n) => `gatehouse_auth_${n}=x`).join('; ');
    const res = await request(`${base}/app/x`, { headers: { accept: 'text/html', cookie: pending } });
    assert.equal(res.statusCode, 302);
    await res.body.dump();
    const setCookies = [res.headers['set-cookie']].flat().map(String);
    for (const n of ['a', 'b', 'c', 'd']) assert.ok(setCookies.some((c) => c.startsWith(`gatehouse_auth_${n}=;`) && /Max-Age=0/.test(c)), `gatehouse_auth_${n} deleted`);
    assert.equal(setCookies.filter((c) => !/Max-Age=0/.test(c)).length, 1, 'one new transaction');
  });

  it('gives API clients a 401, never a login redirect', async () => {
    const res = await request(`${base}/oidc`, { headers: { accept: 'application/json' } });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers.location, undefined);
    assert.deepEqual(await res.body.json(), { message: 'Unauthorized' });
    const xhr = await request(`${base}/oidc`, { headers: { accept: 'text/html', 'x-requested-with': 'XMLHttpRequest' } });
    assert.equal(xhr.statusCode, 401);
    await xhr.body.dump();
  });

  it('treats a tampered session cookie as no session', async () => {
    const res = await request(`${base}/oidc`, { headers: { accept: 'application/json', cookie: 'session=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAAA.BBBB.CCCC' } });
    assert.equal(res.statusCode, 401);
    await res.body.dump();
  });
});
