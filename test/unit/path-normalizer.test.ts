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
    ['/a//b/', '/a//b/', 'empty segments are kept (they are not dot segments)'],
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
