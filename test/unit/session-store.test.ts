import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { SessionTooLargeError } from '../../src/auth/auth.errors.js';
import {
  CookieSessionStore,
  cookieSessionCapacity,
  createSessionStore,
  DEFAULT_MAX_COOKIE_BYTES,
  epoch,
  RedisSessionStore,
  SessionStore,
  sessionCapacityWarning,
  sessionCookieBudget,
  TYPICAL_TOKEN_BYTES,
  type SessionStoreOptions,
} from '../../src/auth/session.store.js';
import { openIdConnectConfigSchema } from '../../src/config/openid-connect.schema.js';
import { Jar, newSession, request, sessionStoreContract, TEST_ISSUER } from '../helpers/session-store.contract.js';

/**
 * Cookie storage: the shared contract, then what only a cookie that holds the
 * whole session has to get right: chunk layout and tampering, and fitting the
 * gateway's own request-header limit.
 */

const SECRET = randomBytes(32).toString('base64url');

function config(overrides: Record<string, unknown> = {}) {
  return openIdConnectConfigSchema.parse({ issuer: TEST_ISSUER, auth_methods: ['session'], session_secret: SECRET, ...overrides });
}

function store(overrides: Record<string, unknown> = {}, secure = false, options: SessionStoreOptions = {}): SessionStore {
  return createSessionStore(config(overrides), secure, options);
}

/** A 9 000-character access token: three cookies' worth. */
const big = () => randomBytes(6750).toString('base64url');

/** The bytes the session's cookies take in the Cookie header a browser sends back. */
const cookieHeaderLength = (set: string[]) => new Jar().apply(set).header().length;

sessionStoreContract('cookie', (overrides, secure) => store(overrides, secure));

describe('createSessionStore', () => {
  it('builds the store session_storage names; `new SessionStore()` builds the same', async () => {
    const cookie = store();
    assert.ok(cookie instanceof CookieSessionStore);
    assert.equal(cookie.shared, false);
    const legacy = new SessionStore(config(), false);
    assert.ok(legacy instanceof CookieSessionStore);
    const redis = createSessionStore(config({ session_storage: 'redis', session_redis_port: 1 }), false);
    try {
      assert.ok(redis instanceof RedisSessionStore);
      assert.equal(redis.shared, true);
    } finally {
      await redis.close();
    }
  });
});

describe('cookie storage', () => {
  describe('chunks', () => {
    it('splits a large session into numbered cookies, the first carrying the count', async () => {
      const s = store({}, true);
      const data = newSession(s, { access_token: big() });
      const set = await s.write(data, request());
      assert.ok(set.length >= 3, `expected several chunks, got ${set.length}`);
      assert.deepEqual(
        set.map((l) => l.split('=')[0]),
        ['__Host-session', ...set.slice(1).map((_, i) => `__Host-session_${i + 2}`)],
      );
      assert.match(set[0], new RegExp(`^__Host-session=${set.length}~eyJ`));
      assert.deepEqual(await s.read(new Jar().apply(set).req()), data);
    });

    it('reassembles whatever order the browser sends the chunks in', async () => {
      const s = store();
      const data = newSession(s, { access_token: big() });
      const jar = new Jar().apply(await s.write(data, request()));
      const reversed = [...jar.cookies].reverse().map(([n, v]) => `${n}=${v}`).join('; ');
      assert.deepEqual(await s.read(request(`other=1; ${reversed}`)), data);
    });

    it('deletes its own extra chunks when the session shrinks', async () => {
      const s = store();
      const jar = new Jar().apply(await s.write(newSession(s, { access_token: big() }), request()));
      const before = [...jar.cookies.keys()];
      assert.ok(before.length >= 3);
      const small = newSession(s);
      jar.apply(await s.write(small, jar.req()));
      assert.deepEqual([...jar.cookies.keys()], ['session']);
      assert.deepEqual(await s.read(jar.req()), small);
    });

    const chunked = async () => {
      const s = store();
      return new Jar().apply(await s.write(newSession(s, { access_token: big() }), request()));
    };
    const tampered: [string, (jar: Jar) => void][] = [
      ['a truncated chunk', (jar) => jar.cookies.set('session_2', jar.cookies.get('session_2')!.slice(0, -10))],
      ['a missing chunk', (jar) => jar.cookies.delete('session_2')],
      [
        'chunks swapped',
        (jar) => {
          const [a, b] = [jar.cookies.get('session_2')!, jar.cookies.get('session_3')!];
          jar.cookies.set('session_2', b).set('session_3', a);
        },
      ],
      ['the chunk count raised', (jar) => jar.cookies.set('session', jar.cookies.get('session')!.replace(/^\d+~/, '9~'))],
      ['the chunk count removed (first chunk alone)', (jar) => jar.cookies.set('session', jar.cookies.get('session')!.replace(/^\d+~/, ''))],
    ];
    for (const [name, change] of tampered) {
      it(`reads no session from ${name}`, async () => {
        const jar = await chunked();
        assert.ok(await store().read(jar.req()), 'control: untouched, it reads');
        change(jar);
        assert.equal(await store().read(jar.req()), undefined);
      });
    }
  });

  describe('the gateway’s request-header limit', () => {
    it('derives the cookie budget from GATEHOUSE_MAX_HEADER_SIZE, and uses the default one unless told', async () => {
      assert.equal(sessionCookieBudget(16_384), 13_312);
      assert.equal(sessionCookieBudget(65_536), 62_464);
      assert.equal(sessionCookieBudget(1_000), 0);
      assert.equal(DEFAULT_MAX_COOKIE_BYTES, sessionCookieBudget(16_384));
      // 9 000 characters of tokens fit under the default limit (sealing adds a third), 10 500 do not.
      const s = store();
      assert.ok(await s.write(newSession(s, { access_token: 'a'.repeat(9_000) }), request()));
      await assert.rejects(s.write(newSession(s, { access_token: 'a'.repeat(10_500) }), request()), SessionTooLargeError);
    });

    it('refuses, with an error an operator can act on, a session whose cookies would exceed the limit; accepts one exactly at it', async () => {
      const data = newSession(store(), { access_token: big() });
      const needed = cookieHeaderLength(await store().write({ ...data }, request()));
      // Sealing adds a random IV but the length is fixed: the same session needs the same bytes again.
      assert.equal(cookieHeaderLength(await store().write({ ...data }, request())), needed);
      const exact = store({}, false, { maxCookieBytes: needed });
      assert.deepEqual(await exact.read(new Jar().apply(await exact.write({ ...data }, request())).req()), data);

      const tight = store({}, false, { maxCookieBytes: needed - 1 });
      const err = await tight.write({ ...data }, request()).then(
        () => assert.fail('a session over the limit must not be written'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SessionTooLargeError, String(err));
      assert.equal(err.status, 500);
      assert.ok(err.message.startsWith('session too large for cookies; use session_storage: redis or raise GATEHOUSE_MAX_HEADER_SIZE'), err.message);
      assert.equal(err.publicMessage, 'An unexpected error occurred', 'the operator advice stays in the log');
      assert.equal(err.cookieBytes, needed);
      assert.equal(err.maxCookieBytes, needed - 1);
    });

    it('refuses a session too large for ten cookies even when the header limit would allow it', async () => {
      const s = store({}, false, { maxCookieBytes: 1_000_000 });
      await assert.rejects(s.write(newSession(s, { access_token: randomBytes(40_000).toString('base64url') }), request()), /session_storage: redis/);
    });

    it('a session filling the default budget passes a Node server with the default limit, with a browser’s other headers', async () => {
      const s = store({}, true);
      const capacity = cookieSessionCapacity(config(), DEFAULT_MAX_COOKIE_BYTES);
      const data = sessionOfCapacity(s, capacity);
      const set = await s.write(data, request());
      const cookie = new Jar().apply(set).header();
      assert.ok(cookie.length <= DEFAULT_MAX_COOKIE_BYTES && cookie.length > DEFAULT_MAX_COOKIE_BYTES - 8, `${cookie.length} bytes`);
      const head = browserRequestHead(`other_site_cookie=${'x'.repeat(200)}; ${cookie}`);
      assert.ok(head.length - cookie.length > 1_200, 'a browser’s other headers and cookies come along');
      assert.equal(await statusFrom(16_384, head), 200);
      // Control: the same request with 3 KB more of other cookies is refused by Node.
      assert.equal(await statusFrom(16_384, browserRequestHead(`other_site_cookie=${'x'.repeat(3_300)}; ${cookie}`)), 431);
    });

    it('reports at start how many bytes of tokens a cookie session can hold', async () => {
      const c = config();
      const capacity = cookieSessionCapacity(c, DEFAULT_MAX_COOKIE_BYTES);
      assert.ok(capacity > 9_000 && capacity < 10_000, String(capacity));
      // Exactly: a session with that many bytes of tokens is written, one more byte is refused.
      const s = store({}, true);
      assert.ok(await s.write(sessionOfCapacity(s, capacity), request()));
      await assert.rejects(s.write(sessionOfCapacity(s, capacity + 1), request()), SessionTooLargeError);
      assert.ok(cookieSessionCapacity(c, sessionCookieBudget(32_768)) > capacity);
      assert.equal(cookieSessionCapacity(c, 100), 0);
      assert.equal(cookieSessionCapacity(config({ session_storage: 'redis' }), DEFAULT_MAX_COOKIE_BYTES), Infinity);
    });

    it('warns at start when the limit leaves too little room, and says what to do', () => {
      const c = config();
      assert.equal(sessionCapacityWarning(c, 16_384), undefined);
      const small = sessionCapacityWarning(c, 6_144);
      assert.ok(small, 'a 6 KB limit leaves less than typical tokens need');
      assert.ok(cookieSessionCapacity(c, sessionCookieBudget(6_144)) < TYPICAL_TOKEN_BYTES);
      assert.match(small, /GATEHOUSE_MAX_HEADER_SIZE=6144 leaves room for \d+ bytes of tokens/);
      assert.match(small, /use session_storage: redis or raise GATEHOUSE_MAX_HEADER_SIZE$/);
      assert.match(sessionCapacityWarning(c, 3_200)!, /leaves no room for a session cookie/);
      // Redis keeps only a reference in the cookie.
      assert.equal(sessionCapacityWarning(config({ session_storage: 'redis' }), 6_144), undefined);
    });
  });
});

/**
 * A session laid out as cookieSessionCapacity() assumes (a 64-character
 * subject, all three tokens) with `tokenBytes` bytes of tokens in all.
 */
function sessionOfCapacity(s: SessionStore, tokenBytes: number) {
  const now = epoch();
  const id = 'i'.repeat(Math.floor(tokenBytes / 3));
  const refresh = 'r'.repeat(Math.floor(tokenBytes / 3));
  return newSession(s, { sub: 's'.repeat(64), access_token: 'a'.repeat(tokenBytes - id.length - refresh.length), id_token: id, refresh_token: refresh, expires_at: now + 300 }, now);
}

/** What a desktop browser sends on a navigation, with the given Cookie header. */
function browserRequestHead(cookie: string): string {
  return [
    `GET /app/orders/2024/overview?tab=open&sort=desc&page=3 HTTP/1.1`,
    'Host: gateway.example.com',
    'Connection: keep-alive',
    'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24", "Google Chrome";v="131"',
    'sec-ch-ua-mobile: ?0',
    'sec-ch-ua-platform: "Windows"',
    'Upgrade-Insecure-Requests: 1',
    'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
    'Sec-Fetch-Site: same-origin',
    'Sec-Fetch-Mode: navigate',
    'Sec-Fetch-User: ?1',
    'Sec-Fetch-Dest: document',
    'Referer: https://gateway.example.com/app/orders/2024?tab=open&sort=desc&page=2&filter=customer%3Dacme',
    'Accept-Encoding: gzip, deflate, br, zstd',
    'Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7',
    'X-Forwarded-For: 203.0.113.7, 10.0.0.12',
    'X-Forwarded-Proto: https',
    'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    `Cookie: ${cookie}`,
    '',
    '',
  ].join('\r\n');
}

/** The status a Node HTTP server with this header limit (the gateway's) answers the raw request with. */
async function statusFrom(maxHeaderSize: number, head: string): Promise<number> {
  const server = createServer({ maxHeaderSize }, (_req: IncomingMessage, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const response = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => {
        text += d.toString('latin1');
        if (text.includes('\r\n')) socket.destroy();
      });
      socket.on('close', () => resolve(text));
      // Node may reset the connection right after refusing it: the status line has arrived by then.
      socket.on('error', (err) => (text ? resolve(text) : reject(err)));
      socket.write(head);
    });
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
  } finally {
    server.close();
  }
}
