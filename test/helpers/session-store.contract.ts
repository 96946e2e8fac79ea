import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { epoch, type SessionData, type SessionStore } from '../../src/auth/session.store.js';

/**
 * What every session store must do, whatever it keeps the session in: run by
 * test/unit/session-store.test.ts against cookie storage and by
 * test/integration/redis-session.test.ts against a real Redis. A browser is a
 * cookie jar that applies the store's Set-Cookie headers exactly as a browser
 * would (a later header for the same name wins, Max-Age=0 deletes).
 */

export type StoreFactory = (overrides?: Record<string, unknown>, secure?: boolean) => SessionStore;

export const TEST_ISSUER = 'https://idp.example';

export class Jar {
  readonly cookies = new Map<string, string>();
  apply(setCookies: string[]): this {
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split('; ');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      if (attrs.includes('Max-Age=0')) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(eq + 1));
    }
    return this;
  }
  header(): string {
    return [...this.cookies].map(([n, v]) => `${n}=${v}`).join('; ');
  }
  req(): IncomingMessage {
    return request(this.header());
  }
}

export function request(cookie?: string): IncomingMessage {
  return { headers: cookie === undefined ? {} : { cookie } } as IncomingMessage;
}

/** A new login's session (by default with an access token of `tokenBytes` random bytes). */
export function newSession(s: SessionStore, fields: Partial<SessionData> = {}, now = epoch(), tokenBytes = 16): SessionData {
  return {
    ...s.create(
      { iss: TEST_ISSUER, sub: 'alice', access_token: 'at-' + randomBytes(tokenBytes).toString('hex'), refresh_token: 'rt-' + randomBytes(16).toString('hex'), id_token: 'idt-' + randomBytes(16).toString('hex'), expires_at: now + 300 },
      now,
    ),
    ...fields,
  };
}

/** The attributes of a Set-Cookie line, without its name/value and the lifetime (Max-Age, Expires). */
export function attributesOf(line: string): string[] {
  return line
    .split('; ')
    .slice(1)
    .filter((a) => !a.startsWith('Max-Age=') && !a.startsWith('Expires='));
}

const flip = (v: string, at: number) => v.slice(0, at) + (v[at] === 'A' ? 'B' : 'A') + v.slice(at + 1);
/** A 9 000-character access token: several cookies' worth in cookie storage. */
const big = () => randomBytes(6750).toString('base64url');

export function sessionStoreContract(kind: 'cookie' | 'redis', store: StoreFactory): void {
  describe(`SessionStore contract (${kind} storage)`, () => {
    const written = async (s = store(), fields: Partial<SessionData> = {}) => new Jar().apply(await s.write(newSession(s, fields), request()));

    describe('read and write', () => {
      it('round-trips a session through a Set-Cookie and the next request', async () => {
        const s = store();
        const data = newSession(s);
        const set = await s.write(data, request());
        assert.equal(set.length, 1);
        assert.match(set[0], /^session=eyJ[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
        assert.deepEqual(await s.read(new Jar().apply(set).req()), data);
      });

      it('round-trips a large session, each Set-Cookie within 4 KB', async () => {
        const s = store({}, true);
        const data = newSession(s, { access_token: big() });
        const set = await s.write(data, request());
        for (const line of set) assert.ok(Buffer.byteLength(line) <= 4096, `Set-Cookie of ${Buffer.byteLength(line)} bytes`);
        assert.equal(set.length > 1, kind === 'cookie', 'chunked only when the cookie holds the session');
        assert.deepEqual(await s.read(new Jar().apply(set).req()), data);
      });

      it('seals: no token or subject is readable in the cookie', async () => {
        const s = store();
        const data = newSession(s, { sub: 'alice-subject-id' });
        const set = (await s.write(data, request())).join('\n');
        // Long random values: a two-letter token would turn up in ~3 KB of base64 by chance.
        for (const secret of [data.access_token, data.refresh_token!, data.id_token!, 'alice-subject-id', data.sid]) assert.ok(!set.includes(secret), secret);
        const [header] = set.split('.');
        assert.deepEqual(JSON.parse(Buffer.from(header.slice('session='.length), 'base64url').toString()), { alg: 'dir', enc: 'A256GCM' });
      });

      it('is read the same by another store with the same secret and cookie name', async () => {
        const a = store();
        const data = newSession(a);
        const jar = new Jar().apply(await a.write(data, request()));
        assert.deepEqual(await store().read(jar.req()), data);
      });

      it('sets Max-Age to the nearest of the three timeouts', async () => {
        const now = epoch();
        const cases: [Record<string, unknown>, Partial<SessionData>, number][] = [
          [{}, {}, 900], // idle 900 < rolling 3600 < absolute 86400 (the defaults)
          [{ session_idling_timeout: 0 }, {}, 3600],
          [{ session_idling_timeout: 0, session_rolling_timeout: 0 }, {}, 86_400],
          [{ session_idling_timeout: 0, session_rolling_timeout: 0, session_absolute_timeout: 0 }, {}, 86_400],
          [{ session_absolute_timeout: 600 }, { created: now - 500 }, 100],
        ];
        for (const [overrides, fields, maxAge] of cases) {
          const s = store(overrides);
          const [line] = await s.write(newSession(s, fields, now), request());
          const got = Number(/Max-Age=(\d+)/.exec(line)![1]);
          // write() reads the clock itself: allow the second to tick over.
          assert.ok(got === maxAge || got === maxAge - 1, `${JSON.stringify(overrides)}: Max-Age=${got}, expected ${maxAge}`);
        }
      });

      it('follows the configured cookie name, path, domain and SameSite', async () => {
        const s = store({ session_cookie_name: 'app_session', session_cookie_path: '/app', session_cookie_domain: 'example.com', session_cookie_same_site: 'Strict', session_cookie_http_only: false });
        const set = await s.write(newSession(s), request());
        assert.equal(s.cookieName, 'app_session');
        assert.match(set[0], /^app_session=/);
        assert.deepEqual(attributesOf(set[0]), ['Path=/app', 'Domain=example.com', 'SameSite=Strict']);
        assert.ok(await s.read(new Jar().apply(set).req()));
        const d = store({ session_cookie_same_site: 'Default' });
        assert.deepEqual(attributesOf((await d.write(newSession(d), request()))[0]), ['Path=/', 'HttpOnly']);
      });

      it('uses the __Host- prefix and Secure on https with Path=/ and no Domain, and only there', async () => {
        const s = store({}, true);
        assert.equal(s.cookieName, '__Host-session');
        const set = await s.write(newSession(s), request());
        assert.match(set[0], /^__Host-session=/);
        assert.deepEqual(attributesOf(set[0]), ['Path=/', 'HttpOnly', 'Secure', 'SameSite=Lax']);
        assert.ok(await s.read(new Jar().apply(set).req()));
        for (const overrides of [{ session_cookie_path: '/app' }, { session_cookie_domain: 'example.com' }]) {
          const p = store(overrides, true);
          assert.equal(p.cookieName, 'session');
          assert.ok(attributesOf((await p.write(newSession(p), request()))[0]).includes('Secure'));
        }
      });

      it('does not accept the unprefixed cookie on a secure store, nor the prefixed one on a plain store', async () => {
        const secure = store({}, true);
        const plain = store({}, false);
        const value = (line: string) => line.split(';')[0].split('=').slice(1).join('=');
        const securePair = value((await secure.write(newSession(secure), request()))[0]);
        const plainPair = value((await plain.write(newSession(plain), request()))[0]);
        assert.ok(await secure.read(request(`__Host-session=${securePair}`)), 'control: the right name reads');
        assert.equal(await secure.read(request(`session=${plainPair}`)), undefined);
        assert.equal(await plain.read(request(`__Host-session=${securePair}`)), undefined);
      });

      it('creates a new random session id at every login', () => {
        const s = store();
        const ids = new Set(Array.from({ length: 50 }, () => newSession(s).sid));
        assert.equal(ids.size, 50);
        for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{32}$/);
      });
    });

    describe('chunks', () => {
      it('deletes the chunks an earlier, larger cookie left behind, and nothing else', async () => {
        const s = store();
        const jar = new Jar();
        for (let i = 2; i <= 4; i++) jar.cookies.set(`session_${i}`, 'left-over');
        jar.cookies.set('session_x', 'not ours');
        jar.cookies.set('other', 'kept');
        const data = newSession(s);
        const set = await s.write(data, jar.req());
        const deleted = set.filter((l) => l.includes('Max-Age=0'));
        assert.deepEqual(deleted.map((l) => l.split('=')[0]).sort(), ['session_2', 'session_3', 'session_4']);
        for (const line of deleted) {
          assert.deepEqual(attributesOf(line), ['Path=/', 'HttpOnly', 'SameSite=Lax'], 'deleted with the attributes it was set with');
          assert.ok(line.includes('Expires=Thu, 01 Jan 1970 00:00:00 GMT'));
        }
        jar.apply(set);
        assert.deepEqual([...jar.cookies.keys()].sort(), ['other', 'session', 'session_x']);
        assert.ok(!jar.cookies.get('session')!.includes('~'), 'a single cookie has no chunk count');
        assert.deepEqual(await s.read(jar.req()), data);
      });

      it('names every chunk as a session cookie, and nothing else', () => {
        const s = store();
        const cases: [string, boolean][] = [
          ['session', true],
          ['session_2', true],
          ['session_10', true],
          ['session_', false],
          ['session_x', false],
          ['session2', false],
          ['my_session', false],
          ['app_session', false],
          ['Session', false],
        ];
        // Passed around as a filter: it must work unbound.
        const isSessionCookie = s.isSessionCookie;
        for (const [name, expected] of cases) assert.equal(isSessionCookie(name), expected, name);
      });
    });

    describe('unreadable cookies are no session, never an error', () => {
      const cases: [string, () => Promise<IncomingMessage>][] = [
        ['no cookie at all', async () => request()],
        ['an empty session cookie', async () => request('session=')],
        ['garbage', async () => request('session=not-a-jwe')],
        ['a JWE-shaped forgery', async () => request('session=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAAA.BBBB.CCCC')],
        ['an unsecured JWT', async () => request(`session=${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"access_token":"x"}').toString('base64url')}.`)],
        [
          'one character of the ciphertext changed',
          async () => {
            const jar = await written();
            const parts = jar.cookies.get('session')!.split('.');
            parts[3] = flip(parts[3], 5);
            jar.cookies.set('session', parts.join('.'));
            return jar.req();
          },
        ],
        [
          'the authentication tag changed',
          async () => {
            const jar = await written();
            const parts = jar.cookies.get('session')!.split('.');
            parts[4] = flip(parts[4], 0);
            jar.cookies.set('session', parts.join('.'));
            return jar.req();
          },
        ],
        [
          'the protected header changed',
          async () => {
            const jar = await written();
            const parts = jar.cookies.get('session')!.split('.');
            parts[0] = Buffer.from('{"alg":"dir","enc":"A128GCM"}').toString('base64url');
            jar.cookies.set('session', parts.join('.'));
            return jar.req();
          },
        ],
        ['sealed with another secret', async () => (await written(store({ session_secret: randomBytes(32).toString('base64url') }))).req()],
        [
          'minted for another cookie name with the same secret',
          async () => {
            const other = await written(store({ session_cookie_name: 'other_app' }));
            return request(`session=${other.cookies.get('other_app')}`);
          },
        ],
        [
          'a chunk count naming chunks that were never sent',
          async () => {
            const jar = await written();
            jar.cookies.set('session', `2~${jar.cookies.get('session')}`);
            return jar.req();
          },
        ],
        ['a validly sealed value naming a session that was never stored', async () => request(`session=${await store().seal({ sid: 'never-stored' })}`)],
        ['a validly sealed payload that is not a session', async () => request(`session=${await store().seal({ access_token: 'x' })}`)],
        [
          'a validly sealed session with a time field of the wrong type',
          async () => {
            const s = store();
            return request(`session=${await s.seal({ ...newSession(s), created: 'yesterday' })}`);
          },
        ],
      ];
      for (const [name, make] of cases) {
        it(name, async () => {
          assert.equal(await store().read(await make()), undefined);
        });
      }

      it('a control case: the untouched cookie does read', async () => {
        assert.ok(await store().read((await written()).req()));
      });
    });

    describe('timeouts', () => {
      const jarFor = async (s: SessionStore, data: SessionData) => new Jar().apply(await s.write(data, request()));

      it('idle: alive until idling_timeout seconds after it was last seen', async () => {
        const s = store({ session_idling_timeout: 900, session_rolling_timeout: 0, session_absolute_timeout: 0 });
        const t0 = epoch();
        const jar = await jarFor(s, newSession(s, {}, t0));
        assert.ok(await s.read(jar.req(), t0 + 899));
        assert.equal(await s.read(jar.req(), t0 + 900), undefined);
      });

      it('idle: a touched and rewritten session lives on', async () => {
        const s = store({ session_idling_timeout: 900, session_rolling_timeout: 0, session_absolute_timeout: 0 });
        const t0 = epoch();
        const jar = await jarFor(s, newSession(s, {}, t0));
        const read = (await s.read(jar.req(), t0 + 100))!;
        assert.equal(s.touch(read, t0 + 100), true);
        jar.apply(await s.write(read, jar.req()));
        assert.ok(await s.read(jar.req(), t0 + 999));
        assert.equal(await s.read(jar.req(), t0 + 1000), undefined);
      });

      it('rolling: ends rolling_timeout seconds after the last renewal however active it is', async () => {
        const s = store({ session_idling_timeout: 900, session_rolling_timeout: 3600, session_absolute_timeout: 0 });
        const t0 = epoch();
        const jar = await jarFor(s, newSession(s, { seen: t0 + 3500 }, t0)); // seen recently, renewed at t0
        assert.ok(await s.read(jar.req(), t0 + 3599));
        assert.equal(await s.read(jar.req(), t0 + 3600), undefined);
      });

      it('absolute: ends absolute_timeout seconds after login, renewals notwithstanding', async () => {
        const s = store({ session_idling_timeout: 900, session_rolling_timeout: 3600, session_absolute_timeout: 7200 });
        const t0 = epoch();
        const jar = await jarFor(s, newSession(s, { seen: t0 + 7000, renewed: t0 + 7000 }, t0));
        assert.ok(await s.read(jar.req(), t0 + 7199));
        assert.equal(await s.read(jar.req(), t0 + 7200), undefined);
      });

      it('0 disables a timeout', async () => {
        const s = store({ session_idling_timeout: 0, session_rolling_timeout: 0, session_absolute_timeout: 0 });
        const t0 = epoch();
        const jar = await jarFor(s, newSession(s, {}, t0));
        assert.ok(await s.read(jar.req(), t0 + 10 * 365 * 86_400));
      });

      it('alive() is the same rule', () => {
        const s = store({ session_idling_timeout: 10, session_rolling_timeout: 20, session_absolute_timeout: 30 });
        const base = { sid: 'x', iss: 'i', sub: 's', access_token: 'a', created: 100, renewed: 100, seen: 100 };
        const cases: [Partial<SessionData>, number, boolean][] = [
          [{}, 109, true],
          [{}, 110, false],
          [{ seen: 115 }, 119, true],
          [{ seen: 115 }, 120, false], // rolling
          [{ seen: 125, renewed: 125 }, 129, true],
          [{ seen: 125, renewed: 125 }, 130, false], // absolute
        ];
        for (const [fields, now, expected] of cases) assert.equal(s.alive({ ...base, ...fields }, now), expected, `${JSON.stringify(fields)} at ${now}`);
      });
    });

    describe('touch', () => {
      it('advances `seen` only in steps (a quarter of the idle timeout, at most a minute)', () => {
        const s = store({ session_idling_timeout: 900, session_rolling_timeout: 0 });
        const data = newSession(s, {}, 1000);
        assert.equal(s.touch(data, 1000), false);
        assert.equal(s.touch(data, 1059), false);
        assert.equal(data.seen, 1000);
        assert.equal(s.touch(data, 1060), true);
        assert.equal(data.seen, 1060);
        assert.equal(s.touch(data, 1061), false);
        assert.equal(data.seen, 1060);
      });

      it('uses a quarter of a short idle timeout as the step', () => {
        const s = store({ session_idling_timeout: 20, session_rolling_timeout: 0 });
        const data = newSession(s, {}, 1000);
        assert.equal(s.touch(data, 1004), false);
        assert.equal(s.touch(data, 1005), true);
        assert.equal(data.seen, 1005);
      });

      it('renews once half the rolling timeout has passed', () => {
        const s = store({ session_idling_timeout: 0, session_rolling_timeout: 3600 });
        const data = newSession(s, {}, 1000);
        assert.equal(s.touch(data, 2799), false);
        assert.equal(data.renewed, 1000);
        assert.equal(s.touch(data, 2800), true);
        assert.equal(data.renewed, 2800);
      });

      it('never asks for a write when no timeout depends on activity', () => {
        const s = store({ session_idling_timeout: 0, session_rolling_timeout: 0 });
        assert.equal(s.touch(newSession(s, {}, 1000), 1000 + 86_000), false);
      });
    });

    describe('touch-only rewrites', () => {
      const config = { session_idling_timeout: 900, session_rolling_timeout: 0, session_absolute_timeout: 0 };

      it('hands the same rewrite to every request presenting the same session, for a while', async (t) => {
        t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
        const s = store(config);
        const t0 = epoch();
        const jar = new Jar().apply(await s.write(newSession(s, {}, t0), request()));
        // Two requests of one page, sent with the same cookie before either answer arrived.
        const [a, b] = [(await s.read(jar.req(), t0 + 300))!, (await s.read(jar.req(), t0 + 300))!];
        assert.ok(s.touch(a, t0 + 300) && s.touch(b, t0 + 300));
        const first = await s.writeTouched(a, jar.req());
        assert.equal(first.length, 1);
        assert.deepEqual(await s.writeTouched(b, jar.req()), first);
        assert.notDeepEqual(first, await s.write(b, jar.req()), 'control: a plain write seals anew (random IV)');
        // The handed-out cookie carries the touched session.
        assert.equal((await s.read(new Jar().apply(first).req(), t0 + 300))!.seen, t0 + 300);
        t.mock.timers.tick(10_001);
        const later = (await s.read(new Jar().apply(first).req(), t0 + 400))!;
        s.touch(later, t0 + 400);
        const again = await s.writeTouched(later, jar.req());
        assert.equal(again.length, 1);
        assert.notDeepEqual(again, first, 'after the window it is sealed anew');
      });

      it('never hands one session’s rewrite to another session', async () => {
        const s = store(config);
        const t0 = epoch();
        const jars = [new Jar(), new Jar()];
        for (const j of jars) j.apply(await s.write(newSession(s, {}, t0), request()));
        const out: string[][] = [];
        for (const j of jars) {
          const r = (await s.read(j.req(), t0 + 300))!;
          s.touch(r, t0 + 300);
          out.push(await s.writeTouched(r, j.req()));
        }
        assert.notDeepEqual(out[0], out[1]);
        const sids = await Promise.all(out.map(async (c) => (await s.read(new Jar().apply(c).req(), t0 + 300))!.sid));
        assert.notEqual(sids[0], sids[1]);
      });
    });

    describe('destroy', () => {
      it('deletes every session cookie, with the attributes they were set with', async () => {
        const s = store({ session_cookie_same_site: 'Strict' }, true);
        const set = await s.write(newSession(s, { access_token: big() }), request());
        const jar = new Jar().apply(set);
        jar.cookies.set('__Host-session_x', 'not ours');
        jar.cookies.set('other', 'kept');
        const del = await s.destroy(jar.req());
        assert.deepEqual(del.map((l) => l.split('=')[0]).sort(), set.map((l) => l.split('=')[0]).sort());
        for (const line of del) {
          assert.match(line, /^[^=]+=; /, 'empty value');
          assert.ok(line.includes('; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'));
          assert.deepEqual(attributesOf(line), attributesOf(set[0]));
        }
        jar.apply(del);
        assert.deepEqual([...jar.cookies.keys()].sort(), ['__Host-session_x', 'other']);
        assert.equal(await s.read(jar.req()), undefined);
      });

      it('deletes the session cookie even when the request carried none (a fresh login clears any old one)', async () => {
        const s = store();
        const del = await s.destroy(request());
        assert.deepEqual(del, ['session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax']);
      });

      it(kind === 'redis' ? 'ends the session for every copy of the cookie' : 'cannot revoke a copy of the cookie (nothing is kept server-side)', async () => {
        const s = store();
        const jar = await written(s);
        const copy = jar.req();
        jar.apply(await s.destroy(jar.req()));
        assert.equal(await s.read(jar.req()), undefined, 'the browser’s own cookie is gone');
        assert.equal((await s.read(copy)) === undefined, kind === 'redis');
      });
    });
  });
}
