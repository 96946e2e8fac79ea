import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { SessionStoreUnavailableError } from '../../src/auth/auth.errors.js';
import { createSessionStore, type SessionData, type SessionStore } from '../../src/auth/session.store.js';
import { openIdConnectConfigSchema } from '../../src/config/openid-connect.schema.js';
import { DEMO_USERS, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { sessionCookieAfterLogin } from '../helpers/idp-login.js';
import { freePort } from '../helpers/ports.js';
import { sessionStoreContract } from '../helpers/session-store.contract.js';
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

describe('session_storage: redis', () => {
  let server: RedisServer;
  let probe: Redis;
  const stores: SessionStore[] = [];

  const config = (overrides: Record<string, unknown> = {}) =>
    openIdConnectConfigSchema.parse({
      issuer: 'https://idp.example',
      auth_methods: ['session'],
      session_secret: 'a-test-secret-that-is-long-enough-0123456789',
      session_storage: 'redis',
      session_redis_port: server.port,
      ...overrides,
    });
  const store = (overrides: Record<string, unknown> = {}, secure = false) => {
    const s = createSessionStore(config(overrides), secure);
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

  sessionStoreContract('redis', store);

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

  it('refuses a stored session with a time field of the wrong type', async () => {
    const s = store();
    const data = session(s);
    const cookie = cookieHeader(await s.write(data, cookieRequest()));
    assert.ok(await s.read(cookieRequest(cookie)), 'control: as written, it reads');
    await probe.set(`${PREFIX}${data.sid}`, await s.seal({ ...data, seen: 'recently' }));
    assert.equal(await s.read(cookieRequest(cookie)), undefined);
  });

  describe('a logout stays a logout', () => {
    it('a copy read before the logout and written after it does not bring the session back', async () => {
      const s = store();
      const data = session(s);
      const cookie = cookieHeader(await s.write(data, cookieRequest()));
      // A request reads the session, is refreshed or touched, and writes it after another request logged out.
      const read = (await s.read(cookieRequest(cookie)))!;
      const concurrentRead = (await s.read(cookieRequest(cookie)))!;
      await s.destroy(cookieRequest(cookie), data);
      assert.deepEqual(await s.write({ ...read, access_token: 'refreshed' }, cookieRequest(cookie)), [], 'no cookie for a session that is gone');
      assert.ok(s.touch(concurrentRead, concurrentRead.seen + 600));
      assert.deepEqual(await s.writeTouched(concurrentRead, cookieRequest(cookie)), []);
      assert.equal(await probe.exists(`${PREFIX}${data.sid}`), 0);
      assert.equal(await s.read(cookieRequest(cookie)), undefined);
      assert.equal(await store().read(cookieRequest(cookie)), undefined, 'nor at another instance');
    });

    it('a session that expired in Redis is not stored again by a late write', async () => {
      const s = store();
      const data = session(s);
      const cookie = cookieHeader(await s.write(data, cookieRequest()));
      const read = (await s.read(cookieRequest(cookie)))!;
      await probe.del(`${PREFIX}${data.sid}`);
      assert.deepEqual(await s.write(read, cookieRequest(cookie)), []);
      assert.equal(await probe.exists(`${PREFIX}${data.sid}`), 0);
    });

    it('only a login creates a session: its first write, even of a copy; an explicit create works for any session', async () => {
      const s = store();
      const fresh = { ...s.create({ iss: 'https://idp.example', sub: 'bob', access_token: 'at' }) };
      const set = await s.write(fresh, cookieRequest());
      assert.equal(set.length, 1);
      assert.deepEqual(await s.read(cookieRequest(cookieHeader(set))), fresh);
      // A session this store never created (say, built from a payload) is not created by a plain write.
      const foreign = { ...fresh, sid: randomBytes(24).toString('base64url') };
      assert.deepEqual(await s.write(foreign, cookieRequest()), []);
      assert.equal(await probe.exists(`${PREFIX}${foreign.sid}`), 0);
      assert.equal((await s.write(foreign, cookieRequest(), { create: true })).length, 1);
      assert.equal(await probe.exists(`${PREFIX}${foreign.sid}`), 1);
      // A created session is created once: the same id again is a bug, not a silent overwrite.
      await assert.rejects(s.write(foreign, cookieRequest(), { create: true }), /already stored/);
    });

    it('a late touch does not overwrite tokens a refresh stored meanwhile', async () => {
      const s = store();
      const data = session(s);
      const cookie = cookieHeader(await s.write(data, cookieRequest()));
      const touched = (await s.read(cookieRequest(cookie)))!;
      const refreshing = (await s.read(cookieRequest(cookie)))!;
      const refreshed = { ...refreshing, access_token: 'new-access-token', refresh_token: 'new-refresh-token' };
      assert.equal((await s.write(refreshed, cookieRequest(cookie))).length, 1);
      assert.ok(s.touch(touched, touched.seen + 600));
      assert.deepEqual(await s.writeTouched(touched, cookieRequest(cookie)), [], 'the touch is dropped');
      const now = (await s.read(cookieRequest(cookie)))!;
      assert.equal(now.access_token, 'new-access-token');
      assert.equal(now.refresh_token, 'new-refresh-token');
    });

    it('a touch of an unchanged session is written', async () => {
      const s = store();
      const data = session(s);
      const cookie = cookieHeader(await s.write(data, cookieRequest()));
      const read = (await s.read(cookieRequest(cookie)))!;
      assert.ok(s.touch(read, read.seen + 600));
      assert.equal((await s.writeTouched(read, cookieRequest(cookie))).length, 1);
      assert.equal((await store().read(cookieRequest(cookie), read.seen))!.seen, read.seen);
    });
  });

  it('shares one connection among every store naming the same server, database and credentials, and closes it with the last', async () => {
    const clients = async (db: number) => String(await probe.client('LIST')).split('\n').filter((l: string) => new RegExp(`\\bdb=${db}\\b`).test(l)).length;
    const onDb5 = [store({ session_redis_database: 5 }), store({ session_redis_database: 5, session_cookie_name: 'other' }), store({ session_redis_database: 5, session_redis_prefix: 'x:' })];
    const onDb6 = store({ session_redis_database: 6 });
    for (const s of [...onDb5, onDb6]) {
      const data = session(s);
      assert.deepEqual(await s.read(cookieRequest(cookieHeader(await s.write(data, cookieRequest())))), data);
    }
    assert.equal(await clients(5), 1, 'one connection for three stores');
    assert.equal(await clients(6), 1, 'another database, another connection');
    await onDb5[0].close();
    await onDb5[0].close(); // twice: still one release
    await onDb5[1].close();
    const last = onDb5[2];
    const data = session(last);
    assert.deepEqual(await last.read(cookieRequest(cookieHeader(await last.write(data, cookieRequest())))), data, 'the last user still works');
    assert.equal(await clients(5), 1);
    await last.close();
    await waitFor(async () => (await clients(5)) === 0);
    assert.equal(await clients(6), 1, 'other servers are not affected');
  });

  it('treats a Redis that stops answering as down (503 within about a second), and recovers when it answers again', async () => {
    const s = store();
    const data = session(s);
    const cookie = cookieHeader(await s.write(data, cookieRequest()));
    server.pause();
    try {
      const calls: [string, () => Promise<unknown>][] = [
        ['read', () => s.read(cookieRequest(cookie))],
        ['read again', () => s.read(cookieRequest(cookie))],
        ['write', () => s.write(session(s), cookieRequest())],
        ['destroy', () => s.destroy(cookieRequest(cookie), data)],
        ['refresh lock', () => s.acquireRefreshLock(data.sid, 1000)],
      ];
      for (const [name, call] of calls) {
        const started = Date.now();
        const err = await bounded(call(), 8_000, `${name} hung on a Redis that does not answer`).then(
          () => assert.fail(`${name} must not succeed while Redis does not answer`),
          (e: unknown) => e,
        );
        const took = Date.now() - started;
        assert.ok(err instanceof SessionStoreUnavailableError, `${name}: ${String(err)}`);
        assert.equal(err.status, 503);
        assert.ok(took < 2_500, `${name} took ${took} ms`);
      }
    } finally {
      server.resume();
    }
    await waitFor(async () => (await s.read(cookieRequest(cookie)).catch(() => 'error')) !== 'error');
    // The destroy above may have reached Redis before it froze: either way the store answers again.
    const again = session(s);
    assert.deepEqual(await s.read(cookieRequest(cookieHeader(await s.write(again, cookieRequest())))), again);
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
    // A gateway waiting on Redis for ever must fail the test, not stall it.
    const res = await request(base + path, { method, headersTimeout: 10_000, headers: { accept: 'application/json', ...(cookie ? { cookie: `session=${cookie}` } : {}) } });
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

  it('answers 503 within a bounded time while Redis is frozen, and serves the session again once it answers', async () => {
    const cookie = await loginThroughA();
    assert.equal((await api(baseB, '/oidc/x', cookie)).status, 200);
    redis.pause();
    try {
      for (const base of [baseB, baseA, baseB]) {
        const started = Date.now();
        const r = await api(base, '/oidc/x', cookie);
        const took = Date.now() - started;
        assert.equal(r.status, 503, `${base}: ${JSON.stringify(r.body)}`);
        assert.equal(r.headers['retry-after'], '5');
        assert.ok(took < 3_500, `${base} answered after ${took} ms`);
      }
    } finally {
      redis.resume();
    }
    await waitFor(async () => (await api(baseB, '/oidc/x', cookie)).status === 200);
    assert.equal((await api(baseA, '/oidc/x', cookie)).status, 200, 'the same session, after the freeze');
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

/** `promise`, or a failure with `message` after `ms` (a hang must fail the test, not stall it). */
function bounded<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it holds (reconnecting clients need a moment); fails after 10 s. */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail('condition not met within 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}
