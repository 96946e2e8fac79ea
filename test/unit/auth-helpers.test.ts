import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { headerSafe, isBrowserNavigation, safeReturnPath } from '../../src/auth/openid-connect.service.js';

/**
 * The openid-connect plugin's small rules: where a login may return to, which
 * claim values may become header text, and which requests are a browser
 * navigating (the only ones ever sent to the IdP's login page).
 */

describe('safeReturnPath (no open redirects after login)', () => {
  const cases: [string, string | undefined, string | undefined, string][] = [
    ['a same-origin path', '/app/page', undefined, '/app/page'],
    ['a path with a query', '/app/page?x=1&y=%2F', undefined, '/app/page?x=1&y=%2F'],
    ['the root', '/', undefined, '/'],
    ['protocol-relative //host', '//evil.com/x', undefined, '/'],
    ['protocol-relative with a backslash /\\host', '/\\evil.com', undefined, '/'],
    ['an absolute https URL', 'https://evil.com/', undefined, '/'],
    ['an absolute http URL', 'http://evil.com', undefined, '/'],
    ['a javascript: URL', 'javascript:alert(1)', undefined, '/'],
    ['a relative path', 'app/page', undefined, '/'],
    ['a backslash-led path', '\\\\evil.com', undefined, '/'],
    ['CRLF (header injection)', '/app\r\nSet-Cookie: session=x', undefined, '/'],
    ['a lone LF', '/app\nx', undefined, '/'],
    ['a lone CR', '/app\rx', undefined, '/'],
    ['empty', '', undefined, '/'],
    ['nothing: the fallback', undefined, '/home', '/home'],
    ['unsafe: the fallback', '//evil.com', '/home', '/home'],
    ['unsafe fallback too: the root', '//evil.com', 'https://evil.com', '/'],
    ['unsafe fallback (protocol-relative)', undefined, '//evil.com', '/'],
    ['a safe candidate wins over the fallback', '/mine', '/home', '/mine'],
  ];
  for (const [name, candidate, fallback, expected] of cases) {
    it(name, () => assert.equal(safeReturnPath(candidate, fallback), expected));
  }

  it('never returns anything a browser would resolve to another origin', () => {
    const base = 'https://gateway.example';
    const attempts = ['//evil.com', '/\\evil.com', '/\\/evil.com', 'https://evil.com', 'https:evil.com', '\\/evil.com', '/app/../..//evil.com', '/.//evil.com'];
    for (const a of attempts) {
      const out = safeReturnPath(a);
      assert.equal(new URL(out, base).origin, base, `${JSON.stringify(a)} → ${out}`);
    }
  });
});

describe('headerSafe (claim values as upstream header text)', () => {
  const cases: [string, unknown, string][] = [
    ['plain ASCII as is', 'alice', 'alice'],
    ['spaces and punctuation as is', 'Alice <a@example.com>', 'Alice <a@example.com>'],
    ['CRLF encoded', 'x\r\nX-Admin: true', 'x%0D%0AX-Admin%3A%20true'],
    ['a lone LF encoded', 'a\nb', 'a%0Ab'],
    ['a NUL encoded', 'a\0b', 'a%00b'],
    ['a tab encoded', 'a\tb', 'a%09b'],
    ['DEL encoded', 'a\x7fb', 'a%7Fb'],
    ['unicode encoded (UTF-8 percent-encoding)', 'Zoë', 'Zo%C3%AB'],
    ['emoji encoded', '🔑', '%F0%9F%94%91'],
    ['an array of strings joined with commas', ['admin', 'user'], 'admin,user'],
    ['an array of strings with unicode encoded', ['ä', 'b'], '%C3%A4%2Cb'],
    ['a mixed array as JSON', ['a', 1], '["a",1]'],
    ['an object as JSON', { a: 1 }, '{"a":1}'],
    ['an object with CRLF: JSON escapes it', { a: 'x\r\ny' }, '{"a":"x\\r\\ny"}'],
    ['an object with unicode: encoded', { n: 'é' }, '%7B%22n%22%3A%22%C3%A9%22%7D'],
    ['a number', 42, '42'],
    ['a boolean', true, 'true'],
    ['null', null, 'null'],
  ];
  for (const [name, value, expected] of cases) {
    it(name, () => assert.equal(headerSafe(value), expected));
  }

  it('always produces visible ASCII that Node accepts as a header value', () => {
    const values: unknown[] = ['\r\n', '\u2028', 'ü\r\nx: y', ['\r', '\n'], { k: '\u0000' }, 'a'.repeat(1000), '\u00ff', ' '];
    for (const v of values) {
      const out = headerSafe(v);
      assert.match(out, /^[\x20-\x7e]*$/, JSON.stringify(v));
      assert.doesNotThrow(() => new Headers({ 'x-test': out }), JSON.stringify(v));
    }
  });
});

describe('isBrowserNavigation (who may be redirected to the IdP)', () => {
  const req = (method: string, headers: Record<string, string>) => ({ method, headers }) as unknown as IncomingMessage;
  const html = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';
  const cases: [string, string, Record<string, string>, boolean][] = [
    ['a browser navigating (Chrome headers)', 'GET', { accept: html, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'upgrade-insecure-requests': '1' }, true],
    ['a browser without Fetch Metadata', 'GET', { accept: html }, true],
    ['HEAD of a page', 'HEAD', { accept: 'text/html' }, true],
    ['POST of a form', 'POST', { accept: html, 'sec-fetch-mode': 'navigate' }, false],
    ['PUT', 'PUT', { accept: html }, false],
    ['DELETE', 'DELETE', { accept: html }, false],
    ['OPTIONS', 'OPTIONS', { accept: html }, false],
    ['an API client asking for JSON', 'GET', { accept: 'application/json' }, false],
    ['no Accept header (curl)', 'GET', {}, false],
    ['Accept */* (curl, fetch default)', 'GET', { accept: '*/*' }, false],
    ['XMLHttpRequest', 'GET', { accept: html, 'x-requested-with': 'XMLHttpRequest' }, false],
    ['XMLHttpRequest in another case', 'GET', { accept: html, 'x-requested-with': 'xmlhttprequest' }, false],
    ['fetch() in CORS mode', 'GET', { accept: 'text/html', 'sec-fetch-mode': 'cors' }, false],
    ['fetch() same-origin', 'GET', { accept: 'text/html', 'sec-fetch-mode': 'same-origin' }, false],
    ['no-cors subresource', 'GET', { accept: 'text/html', 'sec-fetch-mode': 'no-cors' }, false],
    ['an iframe/page with a bearer token', 'GET', { accept: html, 'sec-fetch-mode': 'navigate', authorization: 'Bearer abc' }, false],
    ['any Authorization header', 'GET', { accept: html, authorization: 'Basic YTpi' }, false],
  ];
  for (const [name, method, headers, expected] of cases) {
    it(name, () => assert.equal(isBrowserNavigation(req(method, headers)), expected));
  }
});

describe('regressions', () => {
  it('encodes a claim with a lone surrogate instead of throwing (never a 500)', () => {
    assert.doesNotThrow(() => headerSafe('a\ud800b'));
    assert.match(headerSafe('a\ud800b'), /^[\x20-\x7e]+$/);
  });

  it('refuses a return path with a tab or any control character (browsers strip them into //host)', () => {
    assert.equal(safeReturnPath('/\t/evil.com'), '/');
    assert.equal(safeReturnPath('/a\x00b'), '/');
  });
});
