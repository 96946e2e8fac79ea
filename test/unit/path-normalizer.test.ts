import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizePath } from '../../src/proxy/path-normalizer.js';

/**
 * Path normalisation before routing (RFC 3986 §6.2.2): what is accepted and
 * how it is rewritten, and what is refused with 400 (the reason is what the
 * client is told, so each refusal asserts its reason).
 */

describe('normalizePath: accepted paths', () => {
  const cases: [raw: string, normalized: string, why: string][] = [
    // Fast path: nothing to do, the very same string comes back.
    ['/', '/', 'root'],
    ['/api/v1/users', '/api/v1/users', 'plain path'],
    ['/a.b/c..d/.e/f.', '/a.b/c..d/.e/f.', 'dots inside segment names are not dot segments'],
    ['/.well-known/openid-configuration', '/.well-known/openid-configuration', 'a segment starting with a dot'],
    ["/a-b_c~d!$&'()*+,;=:@", "/a-b_c~d!$&'()*+,;=:@", 'sub-delims, ":" and "@" are legal path characters'],
    // §2.3: percent-encoded unreserved characters are decoded.
    ['/%41%62%63', '/Abc', 'encoded letters'],
    ['/%30%39', '/09', 'encoded digits'],
    ['/%2D%2e%5F%7e', '/-._~', 'encoded "-", ".", "_", "~" (either hex case)'],
    // §6.2.2.1: other escapes stay encoded, with upper-case hex.
    ['/a%20b', '/a%20b', 'space stays encoded'],
    ['/a%3fb%23c', '/a%3Fb%23c', 'reserved "?" and "#" stay encoded, hex upper-cased'],
    ['/caf%c3%a9', '/caf%C3%A9', 'UTF-8 bytes stay encoded, hex upper-cased'],
    ['/100%25', '/100%25', 'an encoded "%" stays encoded'],
    ['/%25%32%46', '/%252F', 'double encoding is decoded once only ("%252F" is not "/")'],
    // §5.2.4: dot segments removed.
    ['/a/./b', '/a/b', 'single dot'],
    ['/a/b/../c', '/a/c', 'double dot'],
    ['/a/b/./../c/', '/a/c/', 'mixed, trailing slash kept'],
    ['/a/.', '/a/', 'trailing "." leaves the directory'],
    ['/a/b/..', '/a/', 'trailing ".." leaves the parent directory'],
    ['/a/..', '/', 'back to the root'],
    ['/./a', '/a', 'leading "."'],
    ['/a/%2e%2E/b', '/b', 'encoded dot segments are dot segments once decoded'],
    ['/a/.%2e/b', '/b', 'half-encoded ".."'],
    ['/a/%2e/b', '/a/b', 'encoded "."'],
    ['/api/../x', '/x', 'climbing back out of a prefix stays inside the root'],
    // Repeated slashes are merged: most upstreams serve "//admin" as "/admin", so the router must see "/admin".
    ['//admin', '/admin', 'leading double slash'],
    ['///admin', '/admin', 'leading triple slash'],
    ['/a//b/', '/a/b/', 'inner double slash, trailing slash kept'],
    ['/a///b//c', '/a/b/c', 'several runs'],
    ['//', '/', 'only slashes'],
    ['/a//', '/a/', 'trailing double slash'],
    ['/a/.//../b', '/b', 'slashes merged before dot segments are resolved'],
    ['/a/%2e%2e//admin', '/admin', 'encoded ".." next to a double slash'],
    ['/%2e/%2e//admin', '/admin', 'encoded "." segments and a double slash'],
    // ";" parameters on an ordinary segment are part of that segment and kept as sent.
    ['/a;b/c', '/a;b/c', 'parameters on an ordinary segment'],
    ['/a/b;jsessionid=1', '/a/b;jsessionid=1', 'a session id parameter on the last segment'],
    ['/a/x..;/b', '/a/x..;/b', '"x.." is an ordinary name'],
    ['/a/...;x/b', '/a/...;x/b', '"..." is an ordinary name'],
    ['/a/.hidden;v=1', '/a/.hidden;v=1', 'a name starting with a dot'],
    ['/a/b;x/../c', '/a/c', 'a segment with parameters is removed by a following ".."'],
  ];

  for (const [raw, normalized, why] of cases) {
    it(`${raw} → ${normalized} (${why})`, () => {
      assert.deepEqual(normalizePath(raw), { ok: true, path: normalized });
    });
  }

  it('the fast path returns the input string itself, untouched', () => {
    const raw = '/api/v1/orders/12345/items';
    const result = normalizePath(raw);
    assert.ok(result.ok);
    assert.equal(result.path, raw);
  });

  it('normalising twice changes nothing (the forwarded path routes the same way)', () => {
    for (const [raw] of cases) {
      const once = normalizePath(raw);
      assert.ok(once.ok);
      assert.deepEqual(normalizePath(once.path), once, raw);
    }
  });
});

const DOT_PARAMS = 'dot segment with ";" parameters in path';
const EMPTY_PARAMS = 'empty segment with ";" parameters in path';

describe('normalizePath: refused paths', () => {
  const cases: [raw: string, reason: string, why: string][] = [
    ['/a%2Fb', 'encoded "/" or "\\" in path', 'encoded slash, upper case'],
    ['/a%2fb', 'encoded "/" or "\\" in path', 'encoded slash, lower case'],
    ['/..%2f..%2fetc/passwd', 'encoded "/" or "\\" in path', 'traversal through an encoded slash'],
    ['/a%5Cb', 'encoded "/" or "\\" in path', 'encoded backslash'],
    ['/a%5cb', 'encoded "/" or "\\" in path', 'encoded backslash, lower case'],
    ['/a\\b', 'backslash in path', 'raw backslash'],
    ['/..\\..\\windows', 'backslash in path', 'backslash traversal'],
    ['/a%00b', 'encoded NUL in path', 'encoded NUL'],
    ['/a\u0000b', 'control character or space in path', 'raw NUL'],
    ['/a\tb', 'control character or space in path', 'tab'],
    ['/a\r\nb', 'control character or space in path', 'CR LF'],
    ['/a b', 'control character or space in path', 'raw space'],
    ['/a\u007fb', 'control character or space in path', 'DEL'],
    ['/a%', 'malformed percent-encoding in path', 'lone "%" at the end'],
    ['/a%4', 'malformed percent-encoding in path', 'one hex digit'],
    ['/a%zzb', 'malformed percent-encoding in path', 'non-hex digits'],
    ['/a%%41', 'malformed percent-encoding in path', '"%%"'],
    ['/..', 'path climbs above the root', '".." at the root'],
    ['/../etc/passwd', 'path climbs above the root', 'classic traversal'],
    ['/a/../../b', 'path climbs above the root', 'climbs one level too many'],
    ['/%2e%2e/secret', 'path climbs above the root', 'encoded traversal'],
    ['/a/./../..', 'path climbs above the root', 'after "." segments'],
    ['//..', 'path climbs above the root', '".." after a merged double slash'],
    ['/a//../..', 'path climbs above the root', 'the empty segment is not a level to climb out of'],
    // A segment that is "." or ".." once its ";" parameters are removed is a dot segment to Tomcat, Jetty
    // and Spring, and an ordinary name to nginx, Node or Go: refused rather than guessed.
    ['/public/..;/admin', DOT_PARAMS, '"..;" (Tomcat, Jetty, Spring serve /admin)'],
    ['/..;/admin', DOT_PARAMS, '"..;" at the root'],
    ['/x/..;/admin', DOT_PARAMS, '"..;" after one segment'],
    ['/%2e%2e;/admin', DOT_PARAMS, 'encoded "..;"'],
    ['/%2E%2E;/admin', DOT_PARAMS, 'encoded "..;", upper-case hex'],
    ['/.%2e;/admin', DOT_PARAMS, 'half-encoded "..;"'],
    ['/a/..;jsessionid=1/b', DOT_PARAMS, '".." with a session id parameter'],
    ['/a/..;a=1;b=2/b', DOT_PARAMS, '".." with two parameters'],
    ['/a/..;', DOT_PARAMS, '"..;" as the last segment'],
    ['/.;/admin', DOT_PARAMS, '".;" (Tomcat serves /admin)'],
    ['/a/.;x/b', DOT_PARAMS, '"." with a parameter'],
    ['/a/..%3B/b', DOT_PARAMS, 'an encoded ";" (servers that decode before removing parameters)'],
    ['/a/..%3b/b', DOT_PARAMS, 'an encoded ";", lower-case hex'],
    ['/a/.%3Bx/b', DOT_PARAMS, '"." with an encoded ";"'],
    ['//..;/admin', DOT_PARAMS, '"..;" after a double slash'],
    // An empty segment with parameters becomes "//" once they are removed, and then "/".
    ['/;/admin', EMPTY_PARAMS, '";" alone (Tomcat serves /admin)'],
    ['/;x=1/admin', EMPTY_PARAMS, 'an empty name with a parameter'],
    ['/a/;jsessionid=1', EMPTY_PARAMS, 'a parameter on the trailing empty segment'],
    ['/%3B/admin', EMPTY_PARAMS, 'an encoded ";" alone'],
    ['/a//;x/b', EMPTY_PARAMS, 'after a double slash'],
    ['a/b', 'path must start with "/"', 'relative path'],
    ['', 'path must start with "/"', 'empty'],
    ['*', 'path must start with "/"', 'asterisk-form'],
    ['http://evil.test/x', 'path must start with "/"', 'absolute-form URL'],
  ];

  for (const [raw, reason, why] of cases) {
    it(`${JSON.stringify(raw)} is refused (${why})`, () => {
      assert.deepEqual(normalizePath(raw), { ok: false, reason });
    });
  }
});

/**
 * Every path over a small alphabet of slashes, dots, ";" and escapes, up to five
 * pieces long: whatever is accepted is already in normal form (so the fast path
 * never lets a path through that the slow path would have changed, and the
 * upstream gets a path it has no reason to rewrite).
 */
describe('normalizePath: accepted paths are in normal form', () => {
  const pieces = ['/', '.', ';', 'a', '%2e', '%3b', '%2E%2E'];
  const SEGMENT_DOTS = /^(?:\.|\.\.)?(?:;|%3B)/;

  it('no "//", no dot segment, no dot or empty segment with parameters, and normalising again changes nothing', () => {
    let accepted = 0;
    const walk = (prefix: string, depth: number) => {
      const result = normalizePath(prefix);
      if (result.ok) {
        accepted++;
        const { path } = result;
        assert.ok(!path.includes('//'), `${prefix} → ${path}`);
        const segments = path.split('/').slice(1);
        for (const s of segments) {
          assert.ok(s !== '.' && s !== '..', `${prefix} → ${path}: dot segment`);
          assert.ok(!SEGMENT_DOTS.test(s), `${prefix} → ${path}: segment ${s}`);
        }
        assert.deepEqual(normalizePath(path), result, prefix);
      }
      if (depth === 0) return;
      for (const p of pieces) walk(prefix + p, depth - 1);
    };
    walk('/', 5);
    assert.ok(accepted > 1000, `only ${accepted} paths accepted`);
  });
});
