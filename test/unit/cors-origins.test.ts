import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configWarnings } from '../../src/config/config-warnings.js';
import { ConfigError, parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { allowedOrigin, compileOrigins } from '../../src/plugins/cors/cors.origins.js';

describe('cors origins: Kong\'s reading of exact entries, * and anchored regexes', () => {
  // [origins, request Origin, expected Access-Control-Allow-Origin (undefined: refused)]
  const cases: [string[], string, string | undefined][] = [
    [['https://app.example.com'], 'https://app.example.com', 'https://app.example.com'],
    [['https://app.example.com'], 'https://other.example.com', undefined],
    [['https://app.example.com'], 'http://app.example.com', undefined],
    // Exact entries are literal: "." is no wildcard (stricter than Kong 0.x's regex comparison).
    [['https://app.example.com'], 'https://appxexample.com', undefined],
    // Normalization both ways: default port dropped, scheme and host lower-cased.
    [['https://app.example.com:443'], 'https://app.example.com', 'https://app.example.com'],
    [['https://app.example.com'], 'https://APP.example.com:443', 'https://app.example.com'],
    [['http://localhost:3000'], 'http://localhost:3000', 'http://localhost:3000'],
    [['http://localhost:3000'], 'http://localhost:3001', undefined],
    [['null'], 'null', 'null'],
    [['https://a.example', 'https://b.example'], 'https://b.example', 'https://b.example'],
    // A regex without ":" is matched against the host alone, anchored at both ends.
    [['.*\\.example\\.com'], 'https://api.example.com', 'https://api.example.com'],
    [['.*\\.example\\.com'], 'http://api.example.com:8080', 'http://api.example.com:8080'],
    [['.*\\.example\\.com'], 'https://api.example.com.evil.net', undefined],
    [['.*\\.example\\.com'], 'https://example.com', undefined],
    // A regex with ":" is matched against the whole normalized origin.
    [['https://.*\\.example\\.com'], 'https://api.example.com', 'https://api.example.com'],
    [['https://.*\\.example\\.com'], 'http://api.example.com', undefined],
    [['https://.*\\.example\\.com'], 'https://api.example.com:8443', undefined],
    [['https://.*\\.example\\.com(:\\d+)?'], 'https://api.example.com:8443', 'https://api.example.com:8443'],
    // The user's own anchors are accepted.
    [['^https://[a-z]+\\.example\\.com$'], 'https://api.example.com', 'https://api.example.com'],
    [['^https://[a-z]+\\.example\\.com$'], 'https://api.example.com.evil', undefined],
    // Every branch of an alternation is anchored.
    [['https://a\\.example|https://b\\.example'], 'https://a.example.evil', undefined],
    [['https://a\\.example|https://b\\.example'], 'https://b.example', 'https://b.example'],
    [['https://(a|b)\\.example'], 'https://evil.https://a.example', undefined],
    // Regexes are case-sensitive (as Kong's), but the request origin is normalized first.
    [['https://[a-z]+\\.example'], 'https://API.example', 'https://api.example'],
    // Exact and regex entries together.
    [['https://app.example.com', '.*\\.partner\\.net'], 'https://app.example.com', 'https://app.example.com'],
    [['https://app.example.com', '.*\\.partner\\.net'], 'https://x.partner.net', 'https://x.partner.net'],
    [['https://app.example.com', '.*\\.partner\\.net'], 'https://x.partner.org', undefined],
    [['https://app.example.com'], 'not an origin', undefined],
    [['https://app.example.com'], '', undefined],
  ];
  for (const [origins, origin, expected] of cases) {
    it(`${JSON.stringify(origins)} ${expected ? 'allows' : 'refuses'} ${JSON.stringify(origin)}`, () => {
      const compiled = compileOrigins(origins);
      assert.equal(compiled.any, false);
      assert.equal(allowedOrigin(compiled, origin), expected);
    });
  }

  it('"*" anywhere, an empty list or no list allows every origin', () => {
    for (const o of [undefined, [], ['*'], ['https://a.example', '*']]) assert.equal(compileOrigins(o).any, true, JSON.stringify(o));
  });

  it('compiles exact entries into a Set and regexes once', () => {
    const c = compileOrigins(['https://a.example', 'https://B.example:443', '.*\\.c\\.example']);
    assert.deepEqual([...c.exact], ['https://a.example', 'https://b.example']);
    assert.equal(c.rules.length, 1);
    assert.equal(c.rules[0].byHost, true);
  });
});

describe('cors config at load', () => {
  function load(config: Record<string, unknown>) {
    const doc = { _format_version: '3.0', services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: 'r', paths: ['/r'], plugins: [{ name: 'cors', config }] }] }] };
    return parseDeclarativeConfig(JSON.stringify(doc), 'kong.json', {});
  }
  function loadError(config: Record<string, unknown>): string {
    try {
      load(config);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.message;
    }
    assert.fail('expected a load error');
  }

  it('applies Kong\'s defaults', () => {
    const plugin = load({}).services[0].routes[0].plugins[0];
    assert.equal(plugin.name, 'cors');
    assert.deepEqual(plugin.config, {
      methods: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'],
      credentials: false,
      preflight_continue: false,
      private_network: false,
      allow_origin_absent: true,
    });
  });

  it('a bad regex in origins is a load error with its path', () => {
    const message = loadError({ origins: ['https://ok.example', 'https://(unclosed\\.example'] });
    assert.match(message, /services\[0\]\.routes\[0\]\.plugins\[0\]\.config\.origins\[1\]: 'https:\/\/\(unclosed\\\.example' is not a valid regex/);
  });

  it('every problem is reported at once, with its path', () => {
    const message = loadError({ origins: ['a[', 'b('], methods: ['GET', 'FETCH'], max_age: -1, credential: true });
    for (const where of ['config.origins[0]', 'config.origins[1]', 'config.methods[1]', 'config.max_age', 'config']) assert.ok(message.includes(`plugins[0].${where}`), `${where} in ${message}`);
    assert.match(message, /credential/);
  });

  it('warns at start about credentials with every origin allowed, and only then', () => {
    const warned = configWarnings(load({ credentials: true }));
    assert.equal(warned.length, 1);
    assert.equal(warned[0].path, 'services[0].routes[0].plugins[0].config.origins');
    assert.match(warned[0].message, /reflected/);
    assert.equal(configWarnings(load({ credentials: true, origins: ['*'] })).length, 1);
    assert.deepEqual(configWarnings(load({ credentials: true, origins: ['https://app.example'] })), []);
    assert.deepEqual(configWarnings(load({ origins: ['*'] })), []);
  });
});
