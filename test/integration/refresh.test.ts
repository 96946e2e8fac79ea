import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { LOG_FLUSH_INTERVAL_MS } from '../../src/common/logger.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { sessionCookieAfterLogin } from '../helpers/idp-login.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Session refresh against the real OpenID Provider: access tokens that live 33 s
 * are refreshed 30 s before they expire, once per session however many
 * requests arrive together; a refresh the IdP refuses ends the session.
 */
interface RefreshSetup {
  idp: DemoIdp;
  upstream: Upstream;
  gw: GatewayProcess;
  chromium: TestBrowser;
  base: string;
  client: ReturnType<typeof gatehouseClient>;
  close(): Promise<void>;
}

/** The demo IdP with 33 s access tokens, an echo upstream and a gateway whose /app route logs in and refreshes. */
async function startRefreshSetup(env: Record<string, string> = {}): Promise<RefreshSetup> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const client = gatehouseClient();
  const idp = await startDemoIdp({ clients: [client.registration([`${base}/app`])], resource: base, accessTokenTtl: 33 });
  const upstream = await startUpstream();
  const gw = await startGateway({
    env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}`, ...env },
    config: oneService(upstream.url, [
      {
        name: 'app',
        paths: ['/app'],
        plugins: [
          {
            name: 'openid-connect',
            config: {
              ...client.pluginConfig(idp.issuer),
              redirect_uri: [`${base}/app`],
              scopes: ['openid', 'profile', 'offline_access'],
              session_secret: randomBytes(32).toString('base64url'),
              auth_methods: ['authorization_code', 'session', 'refresh_token'],
            },
          },
        ],
      },
    ], 'svc'),
  });
  const chromium = await launchBrowser();
  const setup: RefreshSetup = {
    idp,
    upstream,
    gw,
    chromium,
    base,
    client,
    async close() {
      await chromium.close();
      await gw.stop();
      await upstream.close();
      await setup.idp.stop();
    },
  };
  return setup;
}

describe('openid-connect: session refresh', () => {
  let t: RefreshSetup;
  const registration = () => t.client.registration([`${t.base}/app`]);

  before(async () => {
    t = await startRefreshSetup();
  });

  after(() => t?.close());

  const loginCookies = async () => (await sessionCookieAfterLogin(t.chromium.browser, `${t.base}/app`, 'Blog_with_scope')).header;

  const call = (cookie: string) => request(`${t.base}/app/data`, { headers: { cookie, accept: 'application/json' } });

  it('refreshes once for many concurrent requests and rotates the session cookie', async () => {
    const cookie = await loginCookies();
    const before = t.gw.logs().filter((l) => l.msg === 'session tokens refreshed').length;
    await new Promise((r) => setTimeout(r, 4_000)); // into the refresh window (33 s token, 30 s skew)
    const responses = await Promise.all(Array.from({ length: 8 }, () => call(cookie)));
    const fresh: string[] = [];
    for (const r of responses) {
      assert.equal(r.statusCode, 200);
      const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
      assert.ok(set.some((c) => c.startsWith('session=')), 'each response carries the refreshed session');
      fresh.push(set.find((c) => c.startsWith('session='))!.split(';')[0]);
      await r.body.dump();
    }
    // Log lines are written in batches (at most LOG_FLUSH_INTERVAL_MS late): wait for them to land.
    await new Promise((r) => setTimeout(r, LOG_FLUSH_INTERVAL_MS * 3));
    const refreshes = t.gw.logs().filter((l) => l.msg === 'session tokens refreshed').length - before;
    assert.equal(refreshes, 1, 'one refresh for the whole burst');
    const next = await call(fresh[0]);
    assert.equal(next.statusCode, 200);
    await next.body.dump();
  });

  it('ends the session when the IdP refuses the refresh token', async () => {
    const cookie = await loginCookies();
    // A new IdP on the same port and keys has never seen this refresh token.
    const { jwks, port } = t.idp;
    await t.idp.stop();
    t.idp = await startDemoIdp({ clients: [registration()], resource: t.base, accessTokenTtl: 33, port, jwks });
    await new Promise((r) => setTimeout(r, 4_000));
    const res = await call(cookie);
    assert.equal(res.statusCode, 401);
    const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    assert.ok(set.some((c) => /^session=;/.test(c) && /Max-Age=0/.test(c)), 'the session cookie is deleted');
    await res.body.dump();
    await t.gw.waitForLog((l) => l.msg === 'refresh refused by the identity provider: session ended');
  });
});

/**
 * Cookie sessions with GATEHOUSE_WORKERS=2: a browser's parallel requests land
 * on both workers, and the session must still be refreshed once (a second use
 * of a rotated refresh token ends the grant at the IdP).
 */
describe('openid-connect: session refresh across worker processes', () => {
  let t: RefreshSetup;

  before(async () => {
    t = await startRefreshSetup({ GATEHOUSE_WORKERS: '2' });
  });

  after(() => t?.close());

  it('refreshes once for a burst spread over both workers, and every request is served', async () => {
    const cookie = (await sessionCookieAfterLogin(t.chromium.browser, `${t.base}/app`, 'Blog_with_scope')).header;
    await new Promise((r) => setTimeout(r, 4_000)); // into the refresh window (33 s token, 30 s skew)
    // One connection per request: the cluster spreads new connections over the workers.
    const responses = await Promise.all(
      Array.from({ length: 16 }, () => request(`${t.base}/app/data`, { headers: { cookie, accept: 'application/json', connection: 'close' }, reset: true })),
    );
    for (const r of responses) {
      assert.equal(r.statusCode, 200);
      await r.body.dump();
    }
    await new Promise((r) => setTimeout(r, LOG_FLUSH_INTERVAL_MS * 3));
    assert.equal(t.gw.logs().filter((l) => l.msg === 'session tokens refreshed').length, 1, 'one refresh for the whole burst, across workers');
    assert.equal(t.gw.logs().filter((l) => l.msg === 'refresh refused by the identity provider: session ended').length, 0);
  });
});
