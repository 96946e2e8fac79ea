import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cookieHeaderWithout, parseCookies, serializeCookie, type CookieAttributes } from '../../src/auth/cookies.js';

/** RFC 6265 cookie reading and writing, table-driven. */

describe('parseCookies', () => {
  const cases: [string, string | string[] | undefined, [string, string][]][] = [
    ['no header', undefined, []],
    ['empty header', '', []],
    ['one cookie', 'a=1', [['a', '1']]],
    ['several, with and without spaces', 'a=1;b=2; c=3', [['a', '1'], ['b', '2'], ['c', '3']]],
    ['first occurrence wins', 'session=new; session=old', [['session', 'new']]],
    ['first occurrence wins across header lines', ['a=1', 'a=2; b=3'], [['a', '1'], ['b', '3']]],
    ['quoted value is unquoted', 'a="hello world"', [['a', 'hello world']]],
    ['a lone quote is kept as is', 'a="', [['a', '"']]],
    ['an opening quote only is kept', 'a="abc', [['a', '"abc']]],
    ['value may contain = (base64 padding, JWE)', 'a=b=c==', [['a', 'b=c==']]],
    ['empty value', 'a=; b=2', [['a', ''], ['b', '2']]],
    ['whitespace around names and values is trimmed', '  a = 1 ;  b=2  ', [['a', '1'], ['b', '2']]],
    ['junk: no name, no =, stray semicolons', ';;=x; noequals; ;a=1;', [['a', '1']]],
    ['names are case-sensitive', 'A=1; a=2', [['A', '1'], ['a', '2']]],
  ];
  for (const [name, header, expected] of cases) {
    it(name, () => assert.deepEqual([...parseCookies(header)], expected));
  }
});

describe('serializeCookie', () => {
  const base: CookieAttributes = { path: '/', httpOnly: false, secure: false };
  const cases: [string, string, string, CookieAttributes, string][] = [
    ['minimal: a browser-session cookie', 's', 'v', base, 's=v; Path=/'],
    ['every attribute', 's', 'v', { path: '/app', domain: 'example.com', httpOnly: true, secure: true, sameSite: 'Strict', maxAge: 900 }, 's=v; Path=/app; Domain=example.com; Max-Age=900; HttpOnly; Secure; SameSite=Strict'],
    ['SameSite=None with Secure', 's', 'v', { ...base, secure: true, sameSite: 'None' }, 's=v; Path=/; Secure; SameSite=None'],
    ['SameSite=Lax', 's', 'v', { ...base, sameSite: 'Lax' }, 's=v; Path=/; SameSite=Lax'],
    ['Max-Age=0 deletes, with an Expires in the past for old browsers', 's', '', { ...base, httpOnly: true, maxAge: 0 }, 's=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly'],
    ['a positive Max-Age has no Expires', 's', 'v', { ...base, maxAge: 1 }, 's=v; Path=/; Max-Age=1'],
  ];
  for (const [name, cookie, value, attrs, expected] of cases) {
    it(name, () => assert.equal(serializeCookie(cookie, value, attrs), expected));
  }

  it('round-trips through parseCookies', () => {
    const value = 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..abc.def-_.ghi';
    const set = serializeCookie('__Host-session', value, { path: '/', httpOnly: true, secure: true, sameSite: 'Lax', maxAge: 60 });
    const pair = set.split(';')[0];
    assert.equal(parseCookies(pair).get('__Host-session'), value);
  });
});

describe('cookieHeaderWithout', () => {
  const isSession = (n: string) => n === 'session' || /^session_\d+$/.test(n);
  const cases: [string, string | string[] | undefined, string | undefined][] = [
    ['no header', undefined, undefined],
    ['only dropped cookies: nothing left', 'session=a; session_2=b', undefined],
    ['keeps the others in order', 'x=1; session=a; y=2; session_2=b; z=3', 'x=1; y=2; z=3'],
    ['similar names are kept', 'session2=a; my_session=b; session_x=c', 'session2=a; my_session=b; session_x=c'],
    ['every occurrence of a dropped name goes', 'session=a; x=1; session=b', 'x=1'],
    ['values are passed through untouched', 'x="q v"; session=a; y=a=b', 'x="q v"; y=a=b'],
    ['name-only parts are kept, empty parts are dropped', 'flag; ; session=a;', 'flag'],
    ['several header lines are joined', ['x=1; session=a', 'y=2'], 'x=1; y=2'],
  ];
  for (const [name, header, expected] of cases) {
    it(name, () => assert.equal(cookieHeaderWithout(header, isSession), expected));
  }
});
