import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { request } from 'undici';
import { DEMO_USERS } from '../../src/demo/idp/index.js';
import { launchBrowser, pageJson, type TestBrowser } from '../helpers/browser.js';
import { loginAtIdp } from '../helpers/idp-login.js';
import { tryConnect } from '../helpers/ports.js';
import { processAlive, sleep, startNpm, type NpmStart, type ProcInfo } from '../helpers/npm-start.js';
import { mallocTunables, NODE_FLAGS } from '../../src/runtime/node-flags.js';

/**
 * The demo's end-to-end test: the built-in demo started exactly as the README
 * says (`npm start` from the project root, no config), then driven like a
 * newcomer would: a headless browser logs in as each demo user, the banner's
 * curl command gets bearer tokens, the readiness URL it prints answers, and
 * SIGTERM ends it cleanly.
 *
 * Differences from the README, both for CI: `--ignore-scripts` (see
 * test/helpers/npm-start.ts: `prestart` would rebuild dist/ under the other
 * tests), and every listener on a free loopback port (port 0), which the demo
 * resolves and prints; the test reads the real URLs from the output.
 */

const withScope = DEMO_USERS.find((u) => u.username === 'Blog_with_scope')!;
const withoutScope = DEMO_USERS.find((u) => u.username === 'Blog_without_scope')!;

interface DemoUrls {
  route: string;
  proxy: string;
  status: string;
  issuer: string;
  upstream: string;
  readiness: string;
  /** The banner's token command, verbatim. */
  tokenCommand: string;
}

/** Everything a fresh shell would have, minus any Gatehouse setting (the README's start has none), plus free ports. */
function demoEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATEHOUSE_')) env[k] = v;
  return {
    ...env,
    GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0',
    GATEHOUSE_STATUS_LISTEN: '127.0.0.1:0',
    GATEHOUSE_ADMIN_LISTEN: '127.0.0.1:0',
    GATEHOUSE_DATA_DIR: mkdtempSync(join(tmpdir(), 'gatehouse-data-')),
    GATEHOUSE_DEMO_IDP_LISTEN: '127.0.0.1:0',
    GATEHOUSE_DEMO_UPSTREAM_LISTEN: '127.0.0.1:0',
  };
}

/**
 * The banner's `curl -s -d k=v ... URL` as curl would send it: `-d` values
 * joined with `&`, not URL-encoded (curl -d sends them as written), as
 * application/x-www-form-urlencoded POST to the last argument.
 */
function parseCurl(command: string): { url: string; data: string[] } {
  // Shell words: quoted parts may be glued to a word (scope="openid kong_api_access"); quotes are dropped.
  const args = [...command.matchAll(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g)].map((m) => m[0].replace(/"([^"]*)"|'([^']*)'/g, '$1$2'));
  assert.equal(args[0], 'curl', `a curl command: ${command}`);
  const data: string[] = [];
  let url: string | undefined;
  for (let i = 1; i < args.length; i++) {
    if (args[i] === '-d') data.push(args[++i]);
    else if (args[i] === '-s') continue;
    else if (/^https?:\/\//.test(args[i])) url = args[i];
    else assert.fail(`unexpected curl argument ${args[i]} in ${command}`);
  }
  assert.ok(url, `the curl command names a URL: ${command}`);
  return { url, data };
}

async function passwordGrant(command: string, username: string): Promise<Record<string, any>> {
  const { url, data } = parseCurl(command);
  const fields = data.map((d) => (d.startsWith('username=') ? `username=${username}` : d));
  assert.ok(fields.includes(`username=${username}`), 'the command sets a username');
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: '*/*', 'user-agent': 'curl/8' },
    body: fields.join('&'),
  });
  const body = (await res.body.json()) as Record<string, any>;
  assert.equal(res.statusCode, 200, `token endpoint answered ${res.statusCode}: ${JSON.stringify(body)}`);
  return body;
}

function jwtPayload(jwt: string): Record<string, any> {
  const [, payload] = jwt.split('.');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
}

/** `promise`, or a rejection after `ms` (the timer never keeps the process alive). */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the built-in demo, started as the README says (npm start, no config)', () => {
  let app: NpmStart;
  let urls: DemoUrls;
  let chromium: TestBrowser | undefined;
  let gateway: ProcInfo;

  before(async () => {
    app = startNpm({ env: demoEnv() });
    const started = await Promise.race([
      app.waitForLog((l) => l.msg === 'gatehouse started', 30_000),
      app.exited.then(({ code, signal }) => {
        throw new Error(`npm start exited (${code ?? signal}) before the gateway started:\n${app.output()}`);
      }),
    ]);
    const demo = await app.waitForLog((l) => l.demo === true && l.level === 'warn' && typeof l.route === 'string');
    // The banner goes to stderr in one write, before "gatehouse started"; its last line is the closing rule.
    const banner = (await app.waitForOutput(/GATEHOUSE DEMO MODE[\s\S]*?\n=+\n/)).at(0)!;
    const field = (label: string) => {
      const m = new RegExp(`^\\s+${label}\\s+(\\S+)`, 'm').exec(banner);
      assert.ok(m, `banner line "${label}" in:\n${banner}`);
      return m[1];
    };
    const tokenCommand = /^\s*(curl -s -d grant_type=password .*)$/m.exec(banner)?.[1];
    assert.ok(tokenCommand, `banner shows the token command:\n${banner}`);
    urls = {
      route: field('protected route'),
      proxy: started.proxy,
      status: started.status,
      issuer: field('demo IdP'),
      upstream: field('echo upstream'),
      readiness: field('readiness'),
      tokenCommand,
    };
    // The banner and the JSON log lines agree.
    assert.equal(urls.route, demo.route);
    assert.equal(urls.route, `${started.proxy}/oidc`);
    assert.equal(urls.issuer, demo.issuer);
    assert.deepEqual(started.issuers, [demo.issuer]);
    assert.equal(urls.upstream, demo.upstream);
    assert.equal(urls.readiness, `${started.status}/health/ready`);
    assert.equal(demo.health, urls.readiness);

    const gw = app.gatewayProcess();
    assert.ok(gw, `npm started node dist/src/main.js; group: ${JSON.stringify(app.group())}`);
    for (const flag of NODE_FLAGS) assert.ok(gw.cmdline.includes(flag), `the gateway runs with ${flag}: ${gw.cmdline.join(' ')}`);
    const environ = readFileSync(`/proc/${gw.pid}/environ`, 'utf8').split('\0');
    assert.ok(environ.includes(`GLIBC_TUNABLES=${mallocTunables()}`), 'npm start sets the malloc trim threshold');
    gateway = gw;
    chromium = await launchBrowser();
  });

  after(async () => {
    await chromium?.close();
    if (!app) return;
    const leftover = await app.cleanup();
    // Whatever the tests did, nothing of npm start may outlive the test (the SIGTERM test leaves nothing to kill).
    assert.deepEqual(app.group(), [], 'no process of the npm start group survives');
    if (gateway) assert.equal(processAlive(gateway.pid), false, `gateway process ${gateway.pid} is gone`);
    void leftover;
  });

  it('ran only the start script (no prestart rebuild) and says it is in demo mode', () => {
    assert.match(app.output(), /> gatehouse@\S+ start\n> (GLIBC_TUNABLES=\S+ )?(exec )?node( --\S+)* dist\/src\/main\.js/);
    assert.doesNotMatch(app.output(), /prestart/);
    assert.match(app.output(), /NOT FOR PRODUCTION/);
    const demoLine = app.logs().find((l) => l.demo === true && l.level === 'warn');
    assert.deepEqual(demoLine?.users, ['Blog_with_scope', 'Blog_without_scope']);
    // Loopback only: every URL the demo printed.
    for (const u of [urls.route, urls.issuer, urls.upstream, urls.status]) assert.equal(new URL(u).hostname, '127.0.0.1', u);
  });

  const login = (page: Page, username: string) => loginAtIdp(page, username, urls.proxy);

  it('Blog_with_scope logs in through the IdP and sees the echo with its forwarded identity', async () => {
    const context = await chromium!.browser.newContext();
    try {
      const page = await context.newPage();
      const first = await page.goto(urls.route);
      assert.ok(page.url().startsWith(`${urls.issuer}/`), `sent to the demo IdP, got ${page.url()}`);
      assert.equal(first!.status(), 200);
      assert.equal(await page.locator('form input[name=password]').count(), 1, 'the IdP shows a login form');

      await login(page, withScope.username);
      assert.equal(new URL(page.url()).pathname, '/oidc');
      const echo = await pageJson(page);
      assert.equal(echo.method, 'GET');
      assert.equal(echo.path, '/anything');
      assert.equal(echo.headers['x-user-sub'], withScope.sub);
      assert.equal(echo.headers['x-user-email'], withScope.email);
      assert.match(echo.headers.authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
      const claims = jwtPayload(echo.headers.authorization.slice('Bearer '.length));
      assert.equal(claims.iss, urls.issuer);
      assert.equal(claims.sub, withScope.sub);
      assert.ok(String(claims.scope).split(' ').includes('kong_api_access'), `token scope: ${claims.scope}`);

      // The session cookie carries the next request without the IdP.
      const again = await page.goto(`${urls.route}/again?x=1`);
      assert.equal(again!.status(), 200);
      assert.equal(page.url(), `${urls.route}/again?x=1`);
      assert.equal((await pageJson(page)).url, '/anything/again?x=1');
    } finally {
      await context.close();
    }
  });

  it('Blog_without_scope logs in but gets 403 Forbidden, and the gateway logs the scopes it had', async () => {
    const seenBefore = app.logs().length;
    const context = await chromium!.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(urls.route);
      assert.ok(page.url().startsWith(`${urls.issuer}/`), `sent to the demo IdP, got ${page.url()}`);
      await login(page, withoutScope.username);
      assert.deepEqual(await pageJson(page), { message: 'Forbidden' });

      const denied = await page.goto(urls.route);
      assert.equal(denied!.status(), 403);
      assert.equal(page.url(), urls.route, 'no redirect to the IdP: the user is logged in, just not allowed');
      assert.deepEqual(await pageJson(page), { message: 'Forbidden' });

      const line = await app.waitForLog((l) => app.logs().indexOf(l) >= seenBefore && typeof l.msg === 'string' && l.msg.startsWith('required scopes were not found ['));
      assert.match(line.msg, /^required scopes were not found \[ .*openid.* \]$/);
      assert.ok(!line.msg.includes('kong_api_access'), line.msg);
      assert.equal(line.route, 'openidconnectRoute');
      assert.equal(line.caller, withoutScope.sub);
    } finally {
      await context.close();
    }
  });

  it("bearer tokens from the banner's curl command: 200 with the scope, 403 without, 401 with none", async () => {
    const granted = await passwordGrant(urls.tokenCommand, withScope.username);
    assert.equal(granted.token_type, 'Bearer');
    const ok = await request(urls.route, { headers: { authorization: `Bearer ${granted.access_token}`, accept: '*/*' } });
    assert.equal(ok.statusCode, 200);
    const echo = (await ok.body.json()) as Record<string, any>;
    assert.equal(echo.headers['x-user-sub'], withScope.sub);
    assert.equal(echo.headers['x-user-email'], withScope.email);
    assert.equal(echo.headers.authorization, `Bearer ${granted.access_token}`);

    const seenBefore = app.logs().length;
    const notGranted = await passwordGrant(urls.tokenCommand, withoutScope.username);
    assert.ok(!String(jwtPayload(notGranted.access_token).scope ?? '').includes('kong_api_access'), 'the IdP did not grant the scope');
    const forbidden = await request(urls.route, { headers: { authorization: `Bearer ${notGranted.access_token}`, accept: '*/*' } });
    assert.equal(forbidden.statusCode, 403);
    assert.deepEqual(await forbidden.body.json(), { message: 'Forbidden' });
    const line = await app.waitForLog((l) => app.logs().indexOf(l) >= seenBefore && typeof l.msg === 'string' && l.msg.startsWith('required scopes were not found ['));
    assert.ok(!line.msg.includes('kong_api_access'), line.msg);

    const none = await request(urls.route, { headers: { accept: 'application/json' } });
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers.location, undefined, 'an API client is never sent to a login page');
    assert.deepEqual(await none.body.json(), { message: 'Unauthorized' });
  });

  it('answers on the status port: /health/ready and /health/live are 200', async () => {
    const ready = await request(urls.readiness);
    const readyBody = await ready.body.text();
    assert.equal(ready.statusCode, 200, readyBody);
    const live = await request(`${urls.status}/health/live`);
    const liveBody = await live.body.text();
    assert.equal(live.statusCode, 200, liveBody);
  });

  it('SIGTERM ends the gateway with exit code 0 and closes the demo IdP and echo upstream', async () => {
    // Checked while still running, so "closed" below means something.
    for (const u of [urls.issuer, urls.upstream, urls.proxy, urls.status]) assert.equal(await tryConnect(u), 'connected', u);

    const current = app.gatewayProcess();
    assert.equal(current?.pid, gateway.pid, 'the same gateway process served every test');
    // The signal goes to the gateway process itself (as `kill <pid>` or a supervisor
    // would send it); npm returns the script's exit status, so npm's code is node's.
    process.kill(gateway.pid, 'SIGTERM');
    const exit = await withTimeout(app.exited, 20_000, 'npm start did not exit within 20 s of SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(app.logs().some((l) => l.msg === 'shutdown complete'), 'the gateway logged its orderly shutdown');

    const deadline = Date.now() + 5_000;
    while (app.group().length && Date.now() < deadline) await sleep(50);
    assert.deepEqual(app.group(), [], 'no process of the npm start group is left');
    assert.equal(processAlive(gateway.pid), false);
    for (const u of [urls.issuer, urls.upstream, urls.proxy, urls.status]) assert.equal(await tryConnect(u), 'ECONNREFUSED', u);
  });
});
