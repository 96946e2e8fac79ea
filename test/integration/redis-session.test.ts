import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { SessionStoreUnavailableError } from '../../src/auth/auth.errors.js';
import { SessionStore, type SessionData } from '../../src/auth/session.store.js';
import { openIdConnectConfigSchema } from '../../src/config/openid-connect.schema.js';
import { DEMO_USERS, startDemoIdp, type DemoIdp } from '../../src/demo/demo-idp.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { sessionCookieAfterLogin } from '../helpers/idp-login.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * `session_storage: redis` against a real redis-server: the cookie holds only a
 * sealed reference, the session lives in Redis, so every gateway instance
 * sharing the Redis shares the session, and logging out anywhere revokes it
 * everywhere. Without Redis no session can be trusted: fail closed with 503.
 */

const PREFIX = 'gatehouse:session:';

function cookieRequest(cookie?: string): IncomingMessage {
  return { headers: cookie === undefined ? {} : { cookie } } as IncomingMessage;
}

/** The name=value pairs of Set-Cookie lines that are not deletions, as a Cookie header. */
function cookieHeader(setCookies: string[]): string {
  return setCookies
    .filter((l) => !l.includes('Max-Age=0'))
    .map((l) => l.split(';')[0])
    .join('; ');
}

async function sessionKeys(redis: Redis): Promise<string[]> {
  return redis.keys(`${PREFIX}*`);
}

describe('SessionStore with session_storage: redis', () => {
  let server: RedisServer;
  let probe: Redis;
  const stores: SessionStore[] = [];

  const store = () => {
    const config = openIdConnectConfigSchema.parse({
      issuer: 'https://idp.example',
      auth_methods: ['session'],
      session_secret: 'a-test-secret-that-is-long-enough-0123456789',
      session_storage: 'redis',
      session_redis_port: server.port,
    });
    const s = new SessionStore(config, false);
    stores.push(s);
    return s;
  };
  const session = (s: SessionStore, fields: Partial<SessionData> = {}): SessionData => ({
    ...s.create({ iss: 'https://idp.example', sub: 'alice', access_token: 'access-' + randomBytes(6750).toString('base64url'), refresh_token: 'refresh-' + randomBytes(16).toString('hex'), id_token: 'id-token' }),
    ...fields,
  });

  before(async () => {
    server = await startRedis();
    probe = new Redis({ host: server.host, port: server.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    await probe.connect();
  });

  after(async () => {
    for (const s of stores) await s.close();
    probe?.disconnect();
    await server?.close();
  });

  it('keeps the session in Redis and only a small sealed reference in one cookie', async () => {
    const s = store();
    const data = session(s);
    const set = await s.write(data, cookieRequest());
    assert.equal(set.length, 1, 'a 9 KB access token needs no chunks');
    assert.ok(Buffer.byteLength(set[0]) < 600, `Set-Cookie of ${Buffer.byteLength(set[0])} bytes`);
    assert.match(set[0], /^session=eyJ[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
    assert.ok(!set[0].includes(data.sid), 'the session id is sealed too');

    const stored = await probe.get(`${PREFIX}${data.sid}`);
    assert.ok(stored, 'the session is stored under its id');
    for (const secret of [data.access_token, data.refresh_token!, 'alice']) assert.ok(!stored.includes(secret), 'stored encrypted');
    const ttl = await probe.ttl(`${PREFIX}${data.sid}`);
    assert.ok(ttl > 0 && ttl <= 900, `expires with the session (TTL ${ttl})`);

    assert.deepEqual(await s.read(cookieRequest(cookieHeader(set))), data);
  });

  it('is shared by every store (instance) using the same Redis and secret', async () => {
    const a = store();
    const b = store();
    const data = session(a);
    const cookie = cookieHeader(await a.write(data, cookieRequest()));
    assert.deepEqual(await b.read(cookieRequest(cookie)), data);
  });

  it('destroy() deletes the session in Redis, so a copy of the old cookie is refused everywhere', async () => {
    const a = store();
    const b = store();
    const data = session(a);
    const cookie = cookieHeader(await a.write(data, cookieRequest()));
    const del = await a.destroy(cookieRequest(cookie), data);
    assert.deepEqual(del, ['session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax']);
    assert.equal(await probe.exists(`${PREFIX}${data.sid}`), 0);
    assert.equal(await b.read(cookieRequest(cookie)), undefined);
    assert.equal(await a.read(cookieRequest(cookie)), undefined);
  });

  it('destroy() without the session (a new login replacing it) still deletes the one the cookie names', async () => {
    const s = store();
    const old = session(s);
    const cookie = cookieHeader(await s.write(old, cookieRequest()));
    const kept = session(s);
    await s.write(kept, cookieRequest());
    await s.destroy(cookieRequest(cookie));
    assert.equal(await probe.exists(`${PREFIX}${old.sid}`), 0, 'the replaced session is gone');
    assert.equal(await probe.exists(`${PREFIX}${kept.sid}`), 1, 'other sessions are untouched');
    assert.equal(await s.read(cookieRequest(cookie)), undefined);
    // An unreadable cookie names nothing: still only the cookie deletion, no error.
    assert.deepEqual(await s.destroy(cookieRequest('session=garbage')), ['session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax']);
  });

  it('refuses a reference whose stored session belongs to another id', async () => {
    const s = store();
    const victim = session(s);
    const other = session(s, { sub: 'mallory' });
    const cookie = cookieHeader(await s.write(victim, cookieRequest()));
    await s.write(other, cookieRequest());
    // Someone with write access to Redis copies another session under the victim's key.
    await probe.set(`${PREFIX}${victim.sid}`, (await probe.get(`${PREFIX}${other.sid}`))!);
    assert.equal(await s.read(cookieRequest(cookie)), undefined);
  });

  it('refuses a sealed reference to a session Redis does not hold, and a full cookie-mode session', async () => {
    const s = store();
    assert.equal(await s.read(cookieRequest(`session=${await s.seal({ sid: 'never-stored' })}`)), undefined);
    assert.equal(await s.read(cookieRequest(`session=${await s.seal({ ...session(s) })}`)), undefined);
  });

  it('fails closed with a 503 error while Redis is down, and recovers when it returns', async () => {
    const s = store();
    const data = session(s);
    const cookie = cookieHeader(await s.write(data, cookieRequest()));
    await server.stop();
    try {
      const err = await s.read(cookieRequest(cookie)).then(
        () => assert.fail('read must not succeed without Redis'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SessionStoreUnavailableError, String(err));
      assert.equal(err.status, 503);
      await assert.rejects(s.write(session(s), cookieRequest()), SessionStoreUnavailableError);
      // No cookie or an unreadable one needs no Redis: no session, no error.
      assert.equal(await s.read(cookieRequest()), undefined);
      assert.equal(await s.read(cookieRequest('session=garbage')), undefined);
    } finally {
      await server.restart();
    }
    // A fresh (empty) Redis: the old session is gone, and the store works again without a restart.
    await waitFor(async () => (await s.read(cookieRequest(cookie)).catch(() => 'error')) === undefined);
    const again = session(s);
    assert.deepEqual(await s.read(cookieRequest(cookieHeader(await s.write(again, cookieRequest())))), again);
  });
});

describe('openid-connect with Redis sessions: two gateways, one login, revocation across instances', () => {
  let redis: RedisServer;
  let probe: Redis;
  let idp: DemoIdp;
  let upstream: Upstream;
  let gwA: GatewayProcess;
  let gwB: GatewayProcess;
  let chromium: TestBrowser;
  let baseA: string;
  let baseB: string;
  const client = gatehouseClient();
  const withScope = DEMO_USERS.find((u) => u.username === 'Blog_with_scope')!;

  before(async () => {
    redis = await startRedis();
    probe = new Redis({ host: redis.host, port: redis.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    await probe.connect();
    upstream = await startUpstream();
    chromium = await launchBrowser();
    // The gateways' ports must be known before the IdP (redirect URIs) and the IdP's before the
    // gateways (issuer): a port freed by freePort() may be taken meanwhile, so try again if so.
    const problems: string[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        await startIdpAndGateways();
        break;
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
        await idp?.stop().catch(() => undefined);
        idp = undefined as unknown as DemoIdp;
        if (attempt === 3) throw new Error(`could not start the IdP and two gateways:\n${problems.join('\n---\n')}`);
        process.stderr.write(`redis-session: set-up attempt ${attempt} failed, retrying: ${problems.at(-1)!.split('\n')[0]}\n`);
      }
    }
  });

  async function startIdpAndGateways() {
    const portA = await freePort();
    let portB = await freePort();
    while (portB === portA) portB = await freePort();
    baseA = `http://127.0.0.1:${portA}`;
    baseB = `http://127.0.0.1:${portB}`;
    idp = await startDemoIdp({
      clients: [client.registration([`${baseA}/oidc`], [`${baseA}/bye`])],
      resource: baseA,
    });
    // One config for both instances, as behind a load balancer: the redirect_uri names one of them.
    const config = oneService(`${upstream.url}/anything`, [
      {
        name: 'openidconnectRoute',
        paths: ['/oidc'],
        plugins: [
          {
            name: 'openid-connect',
            config: {
              ...client.pluginConfig(idp.issuer),
              redirect_uri: [`${baseA}/oidc`],
              scopes: ['openid', 'profile', 'email', 'offline_access', 'kong_api_access'],
              scopes_required: ['kong_api_access'],
              auth_methods: ['authorization_code', 'session', 'bearer', 'refresh_token'],
              session_secret: randomBytes(32).toString('base64url'),
              session_storage: 'redis',
              session_redis_port: redis.port,
              logout_uri_suffix: '/logout',
              logout_methods: ['GET', 'POST'],
              upstream_headers_claims: ['sub'],
              upstream_headers_names: ['x-user-sub'],
            },
          },
        ],
      },
    ], 'openidconnect');
    const started = await Promise.allSettled([
      startGateway({ env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${portA}` }, config }),
      startGateway({ env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${portB}` }, config }),
    ]);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
      throw failed.reason;
    }
    [gwA, gwB] = started.map((r) => (r as PromiseFulfilledResult<GatewayProcess>).value);
  }

  after(async () => {
    await chromium?.close();
    await gwA?.stop();
    await gwB?.stop();
    await upstream?.close();
    await idp?.stop();
    probe?.disconnect();
    await redis?.close();
  });

  /** Logs Blog_with_scope in through gateway A in a fresh browser context; returns the session cookie's value. */
  async function loginThroughA(): Promise<string> {
    const login = await sessionCookieAfterLogin(chromium.browser, `${baseA}/oidc/start`, withScope.username);
    assert.ok(login.redirectedTo.startsWith(idp.issuer), `redirected to the IdP, got ${login.redirectedTo}`);
    assert.equal(JSON.parse(login.body).headers['x-user-sub'], withScope.sub, 'gateway A proxied the original request after login');
    assert.deepEqual(login.cookies.map((c) => c.name), ['session'], 'one session cookie, no chunks');
    return login.cookies[0].value;
  }

  const api = async (base: string, path: string, cookie?: string, method = 'GET') => {
    const res = await request(base + path, { method, headers: { accept: 'application/json', ...(cookie ? { cookie: `session=${cookie}` } : {}) } });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };

  it('shares a session made at A with B, revokes it at both by a logout at A', async () => {
    const before = (await sessionKeys(probe)).length;
    const cookie = await loginThroughA();
    assert.ok(cookie.length < 600, `the cookie holds only a reference (${cookie.length} bytes)`);
    assert.equal(cookie.split('.').length, 5, 'a compact JWE');
    assert.equal((await sessionKeys(probe)).length, before + 1, 'the session is in Redis');

    // B never saw the login: the session comes from Redis.
    const atB = await api(baseB, '/oidc/data', cookie);
    assert.equal(atB.status, 200);
    assert.equal(atB.body.url, '/anything/data');
    assert.equal(atB.body.headers['x-user-sub'], withScope.sub);
    assert.match(atB.body.headers.authorization, /^Bearer ey/);
    assert.ok(!String(atB.body.headers.cookie ?? '').includes('session='), 'the session cookie stays at the gateway');
    assert.equal((await api(baseA, '/oidc/data', cookie)).status, 200);

    const logout = await request(`${baseA}/oidc/logout`, { method: 'POST', headers: { cookie: `session=${cookie}` } });
    await logout.body.dump();
    assert.ok(logout.statusCode === 302 || logout.statusCode === 200, `logout answered ${logout.statusCode}`);
    const cleared = ([] as string[]).concat(logout.headers['set-cookie'] ?? []);
    assert.ok(cleared.some((c) => /^session=; .*Max-Age=0/.test(c)), `the cookie is deleted (${cleared.join(' | ')})`);
    assert.equal((await sessionKeys(probe)).length, before, 'the session is gone from Redis');

    // The same old cookie, replayed: refused by B (and A) as no session at all.
    const replayB = await api(baseB, '/oidc/data', cookie);
    assert.equal(replayB.status, 401);
    assert.deepEqual(replayB.body, { message: 'Unauthorized' });
    assert.equal(replayB.headers.location, undefined);
    assert.equal((await api(baseA, '/oidc/data', cookie)).status, 401);
  });

  it('answers 503 (fail closed, not 500) to a session cookie while Redis is down, and recovers without a restart', async () => {
    const cookie = await loginThroughA();
    assert.equal((await api(baseB, '/oidc/x', cookie)).status, 200);
    await redis.stop();
    try {
      for (const base of [baseB, baseA]) {
        const r = await api(base, '/oidc/x', cookie);
        assert.equal(r.status, 503, `${base}: ${JSON.stringify(r.body)}`);
        assert.equal(typeof r.body.message, 'string');
      }
      // Without a session cookie there is nothing to look up: the usual 401.
      assert.equal((await api(baseB, '/oidc/x')).status, 401);
      const failed = await gwB.waitForLog((l) => l.status === 503 && typeof l.reason === 'string' && l.reason.includes('session store unavailable'));
      assert.equal(failed.msg, 'request failed');
      const logs = [...gwA.logs(), ...gwB.logs()];
      assert.ok(!logs.some((l) => l.status === 500 || l.statusCode === 500 || l.res?.statusCode === 500), 'no 500 was logged');
    } finally {
      await redis.restart();
    }
    // The restarted Redis is empty: the session is gone (401, not 503), and a new login works.
    await waitFor(async () => (await api(baseB, '/oidc/x', cookie)).status === 401);
    const fresh = await loginThroughA();
    assert.equal((await api(baseB, '/oidc/x', fresh)).status, 200);
  });
});

/** Polls `check` until it holds (reconnecting clients need a moment); fails after 10 s. */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail('condition not met within 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}
