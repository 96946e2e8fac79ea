import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { RouteTable, upstreamPathV0 } from '../../src/proxy/route-table.js';

/**
 * Route matching by Kong's rules (Proxy reference → "Routes and matching
 * capabilities"), table-driven. Configs go through the real schema so defaults
 * (strip_path true, regex_priority 0, ...) are the ones users get.
 */

interface RouteDef {
  name: string;
  paths?: string[];
  methods?: string[];
  hosts?: string[];
  regex_priority?: number;
  strip_path?: boolean;
  plugins?: unknown[];
}

interface ServiceDef {
  name: string;
  url?: string;
  enabled?: boolean;
  routes?: RouteDef[];
  plugins?: unknown[];
}

function compile(doc: { services: ServiceDef[]; routes?: unknown[]; plugins?: unknown[] }): RouteTable {
  const config = parseDeclarativeConfig(JSON.stringify({ _format_version: '3.0', ...doc }), 'test.json', {});
  return RouteTable.compile(config);
}

/** One service `svc` (http://svc.internal, no path) holding the given routes. */
function table(routes: RouteDef[]): RouteTable {
  return compile({ services: [{ name: 'svc', url: 'http://svc.internal', routes }] });
}

type Request = [method: string, host: string | undefined, path: string];
interface MatchCase {
  name: string;
  routes: RouteDef[];
  /** Each request and the route it must reach (undefined: 404). */
  expect: [Request, string | undefined][];
}

function runMatchCases(cases: MatchCase[]) {
  for (const c of cases) {
    it(c.name, () => {
      const t = table(c.routes);
      for (const [[method, host, path], want] of c.expect) {
        const got = t.match(method, host, path)?.route.name;
        assert.equal(got, want, `${method} ${host ?? '(no host)'} ${path}: expected ${want ?? 'no route'}, got ${got ?? 'no route'}`);
      }
    });
  }
}

const GET = (path: string, host: string | undefined = 'gw.example.com'): Request => ['GET', host, path];

describe('RouteTable.match: paths', () => {
  runMatchCases([
    {
      name: 'a prefix is a plain string prefix, as in Kong (/oidc matches /oidcx), and case-sensitive',
      routes: [{ name: 'oidc', paths: ['/oidc'] }],
      expect: [
        [GET('/oidc'), 'oidc'],
        [GET('/oidc/'), 'oidc'],
        [GET('/oidc/callback'), 'oidc'],
        [GET('/oidcx'), 'oidc'],
        [GET('/oid'), undefined],
        [GET('/OIDC'), undefined],
        [GET('/'), undefined],
      ],
    },
    {
      name: 'the longest matching prefix wins, whatever the order of definition',
      routes: [
        { name: 'v1', paths: ['/api/v1'] },
        { name: 'api', paths: ['/api'] },
        { name: 'v1-users', paths: ['/api/v1/users'] },
        { name: 'root', paths: ['/'] },
      ],
      expect: [
        [GET('/api/v1/users/7'), 'v1-users'],
        [GET('/api/v1/orders'), 'v1'],
        [GET('/api/v2'), 'api'],
        [GET('/apix'), 'api'],
        [GET('/other'), 'root'],
        [GET('/'), 'root'],
      ],
    },
    {
      name: 'a regex path is tried before prefix paths, even longer ones',
      routes: [
        { name: 'prefix', paths: ['/users/4'] },
        { name: 'regex', paths: ['~/users/\\d+$'] },
      ],
      expect: [
        [GET('/users/42'), 'regex'],
        [GET('/users/4x'), 'prefix'],
        [GET('/users/abc'), undefined],
      ],
    },
    {
      name: 'a regex path is anchored at the start of the path, not at the end',
      routes: [{ name: 'items', paths: ['~/v\\d+/items'] }],
      expect: [
        [GET('/v1/items'), 'items'],
        [GET('/v10/items/3'), 'items'],
        [GET('/api/v1/items'), undefined],
      ],
    },
    {
      name: 'a regex with $ matches only the whole path',
      routes: [{ name: 'exact-ish', paths: ['~/status$'] }],
      expect: [
        [GET('/status'), 'exact-ish'],
        [GET('/status/x'), undefined],
      ],
    },
    {
      name: 'among regex paths the higher regex_priority wins',
      routes: [
        { name: 'digits', paths: ['~/items/\\d+'], regex_priority: 0 },
        { name: 'anything', paths: ['~/items/.+'], regex_priority: 10 },
        { name: 'negative', paths: ['~/items/5'], regex_priority: -1 },
      ],
      expect: [
        [GET('/items/5'), 'anything'],
        [GET('/items/x'), 'anything'],
      ],
    },
    {
      name: 'equal regex_priority: the route defined first wins',
      routes: [
        { name: 'first', paths: ['~/items/.+'] },
        { name: 'second', paths: ['~/items/\\d+'] },
      ],
      expect: [[GET('/items/5'), 'first']],
    },
    {
      name: 'regex_priority does not reorder prefix paths',
      routes: [
        { name: 'short', paths: ['/p'], regex_priority: 100 },
        { name: 'long', paths: ['/p/q'] },
      ],
      expect: [
        [GET('/p/q'), 'long'],
        [GET('/p/r'), 'short'],
      ],
    },
    {
      name: 'a prefix path equal to the whole request path beats any regex',
      routes: [
        { name: 'regex', paths: ['~/users/\\w+'], regex_priority: 100 },
        { name: 'me', paths: ['/users/me'] },
      ],
      expect: [
        [GET('/users/me'), 'me'],
        [GET('/users/me2'), 'regex'],
        [GET('/users/you'), 'regex'],
      ],
    },
    {
      name: 'a route with several paths matches on any of them, each with its own rank',
      routes: [
        { name: 'multi', paths: ['/a', '~/b/\\d+'] },
        { name: 'longer-a', paths: ['/a/b'] },
      ],
      expect: [
        [GET('/a/x'), 'multi'],
        [GET('/b/1'), 'multi'],
        [GET('/a/b/c'), 'longer-a'],
        [GET('/b/x'), undefined],
      ],
    },
  ]);
});

describe('RouteTable.match: hosts and methods', () => {
  runMatchCases([
    {
      name: 'plain host: case-insensitive, any port unless the route names one',
      routes: [{ name: 'api', hosts: ['api.example.com'], paths: ['/'] }],
      expect: [
        [GET('/', 'api.example.com'), 'api'],
        [GET('/', 'API.Example.COM'), 'api'],
        [GET('/', 'api.example.com:8000'), 'api'],
        [GET('/', 'www.example.com'), undefined],
        [GET('/', 'api.example.com.evil.test'), undefined],
        [GET('/', undefined), undefined],
      ],
    },
    {
      name: 'leading wildcard *.example.com: one or more labels, never the bare domain',
      routes: [{ name: 'wild', hosts: ['*.example.com'] }],
      expect: [
        [GET('/x', 'a.example.com'), 'wild'],
        [GET('/x', 'a.b.example.com'), 'wild'],
        [GET('/x', 'a.example.com:8443'), 'wild'],
        [GET('/x', 'example.com'), undefined],
        [GET('/x', 'a.example.org'), undefined],
        [GET('/x', 'aexample.com'), undefined],
      ],
    },
    {
      name: 'trailing wildcard example.*: any suffix, as Kong (example.co.uk included)',
      routes: [{ name: 'wild', hosts: ['example.*'] }],
      expect: [
        [GET('/', 'example.com'), 'wild'],
        [GET('/', 'example.co.uk'), 'wild'],
        [GET('/', 'example.org:8080'), 'wild'],
        [GET('/', 'example'), undefined],
        [GET('/', 'www.example.com'), undefined],
      ],
    },
    {
      name: 'a host with a port matches only that port',
      routes: [
        { name: 'tls', hosts: ['api.example.com:8443'] },
        { name: 'wild-port', hosts: ['*.example.org:8443'] },
      ],
      expect: [
        [GET('/', 'api.example.com:8443'), 'tls'],
        [GET('/', 'api.example.com'), undefined],
        [GET('/', 'api.example.com:80'), undefined],
        [GET('/', 'a.example.org:8443'), 'wild-port'],
        [GET('/', 'a.example.org'), undefined],
      ],
    },
    {
      name: 'methods: only the listed ones, exact upper case',
      routes: [{ name: 'rw', methods: ['GET', 'POST'], paths: ['/items'] }],
      expect: [
        [['GET', 'h', '/items'], 'rw'],
        [['POST', 'h', '/items'], 'rw'],
        [['DELETE', 'h', '/items'], undefined],
        [['get', 'h', '/items'], undefined],
      ],
    },
    {
      name: 'a route without paths matches every path of its host or method',
      routes: [{ name: 'deletes', methods: ['DELETE'] }],
      expect: [
        [['DELETE', 'h', '/anything/at/all'], 'deletes'],
        [['GET', 'h', '/anything/at/all'], undefined],
      ],
    },
  ]);
});

describe('RouteTable.match: priority between routes', () => {
  runMatchCases([
    {
      name: 'a route matching on more categories beats one on fewer, even with a shorter path',
      routes: [
        { name: 'path-only', paths: ['/api/v1/long'] },
        { name: 'path-method', paths: ['/api'], methods: ['GET'] },
        { name: 'path-method-host', paths: ['/'], methods: ['GET'], hosts: ['api.example.com'] },
      ],
      expect: [
        [['GET', 'other.example.com', '/api/v1/long'], 'path-method'],
        [['POST', 'other.example.com', '/api/v1/long'], 'path-only'],
        [['GET', 'api.example.com', '/api/v1/long'], 'path-method-host'],
        [['POST', 'api.example.com', '/api/v1/long'], 'path-only'],
      ],
    },
    {
      name: 'more categories beat a regex path too',
      routes: [
        { name: 'regex', paths: ['~/api/.*'], regex_priority: 100 },
        { name: 'prefix-method', paths: ['/api'], methods: ['GET'] },
      ],
      expect: [
        [GET('/api/x'), 'prefix-method'],
        [['PUT', 'h', '/api/x'], 'regex'],
      ],
    },
    {
      name: 'routes whose hosts are all plain beat routes with a wildcard host',
      routes: [
        { name: 'wild-long', hosts: ['*.example.com'], paths: ['/x/long'] },
        { name: 'mixed', hosts: ['api.example.com', '*.example.net'], paths: ['/x/longer'] },
        { name: 'plain-short', hosts: ['api.example.com'], paths: ['/'] },
      ],
      expect: [
        [GET('/x/longer', 'api.example.com'), 'plain-short'],
        [GET('/x/longer', 'a.example.net'), 'mixed'],
        [GET('/x/long', 'other.example.com'), 'wild-long'],
        [GET('/y', 'other.example.com'), undefined],
      ],
    },
    {
      name: 'a host-only route beats a path-only route (same count, plain hosts first)',
      routes: [
        { name: 'by-path', paths: ['/admin'] },
        { name: 'by-host', hosts: ['admin.example.com'] },
      ],
      expect: [
        [GET('/admin', 'admin.example.com'), 'by-host'],
        [GET('/admin', 'www.example.com'), 'by-path'],
      ],
    },
    {
      name: 'identical routes: the one defined first wins',
      routes: [
        { name: 'first', paths: ['/same'], methods: ['GET'] },
        { name: 'second', paths: ['/same'], methods: ['GET'] },
      ],
      expect: [[GET('/same/x'), 'first']],
    },
  ]);

  it('nested routes come before top-level routes in definition order', () => {
    const t = compile({
      services: [
        { name: 'a', url: 'http://a.internal', routes: [{ name: 'nested', paths: ['/same'] }] },
        { name: 'b', url: 'http://b.internal' },
      ],
      routes: [{ name: 'top', service: 'b', paths: ['/same'] }],
    });
    assert.equal(t.match('GET', 'h', '/same')?.route.name, 'nested');
    const top = compile({
      services: [{ name: 'b', url: 'http://b.internal' }],
      routes: [{ name: 'top', service: 'b', paths: ['/same'] }],
    });
    assert.equal(top.match('GET', 'h', '/same')?.route.service.name, 'b');
  });

  it('the routes of a disabled service are left out, as in Kong', () => {
    const t = compile({
      services: [
        { name: 'off', url: 'http://off.internal', enabled: false, routes: [{ name: 'off-route', paths: ['/x'] }] },
        { name: 'on', url: 'http://on.internal', routes: [{ name: 'fallback', paths: ['/'] }] },
      ],
      routes: [{ name: 'off-top', service: 'off', paths: ['/y'] }],
    });
    assert.equal(t.match('GET', 'h', '/x')?.route.name, 'fallback');
    assert.equal(t.match('GET', 'h', '/y')?.route.name, 'fallback');
    assert.deepEqual(t.routes.map((r) => r.name), ['fallback']);
  });
});

describe('upstream path: strip_path and the service path (Kong path_handling v0)', () => {
  // [service path, route path, request path, strip_path, upstream path]
  // Rows marked "Kong docs" are the path_handling table of Kong's Route object docs.
  const rows: [string, string, string, boolean, string][] = [
    ['/s', '/tv0', '/tv0req', true, '/s/req'], // Kong docs
    ['/s', '/tv0', '/tv0', true, '/s'], // Kong docs
    ['/s', '/tv0/', '/tv0/req', true, '/s/req'], // Kong docs
    ['/s', '/tv0/', '/tv0/', true, '/s/'], // Kong docs
    ['/s', '/fv0', '/fv0req', false, '/s/fv0req'], // Kong docs
    ['/s', '/fv0', '/fv0', false, '/s/fv0'], // Kong docs
    ['/s', '/fv0/', '/fv0/req', false, '/s/fv0/req'], // Kong docs
    ['/s', '/fv0/', '/fv0/', false, '/s/fv0/'], // Kong docs
    ['/s', '/r', '/r/req', true, '/s/req'],
    ['/s/', '/r', '/r/req', true, '/s/req'],
    ['/s/', '/r', '/rreq', true, '/s/req'],
    ['/s/', '/r', '/r', true, '/s'],
    ['/s/', '/r', '/r/', true, '/s/'],
    ['/s/', '/r', '/r/req', false, '/s/r/req'],
    ['/', '/r', '/r', true, '/'],
    ['/', '/r', '/r/', true, '/'],
    ['/', '/r', '/r/req', true, '/req'],
    ['/', '/r', '/rx', true, '/x'],
    ['/', '/r', '/r/req', false, '/r/req'],
    ['/', '/', '/', true, '/'],
    ['/', '/', '/req/x/', true, '/req/x/'],
    ['/s', '/', '/', true, '/s'],
    ['/s', '/', '/req', true, '/s/req'],
    ['/s', '/', '/', false, '/s'],
    ['/s/', '/', '/', true, '/s/'],
  ];

  for (const [servicePath, routePath, requestPath, stripPath, upstream] of rows) {
    it(`service ${servicePath} + route ${routePath} (strip_path ${stripPath}) + ${requestPath} → ${upstream}`, () => {
      // Directly, and through the route table with a real service URL.
      assert.equal(upstreamPathV0(servicePath, requestPath, stripPath, stripPath ? routePath.length : 0), upstream);
      const t = compile({
        services: [{ name: 'svc', url: `http://svc.internal${servicePath}`, routes: [{ name: 'r', paths: [routePath], strip_path: stripPath }] }],
      });
      assert.equal(t.match('GET', 'h', requestPath)?.upstreamPath, upstream);
    });
  }

  it('a service URL without a path is the root', () => {
    const t = compile({ services: [{ name: 'svc', url: 'http://svc.internal:8080', routes: [{ name: 'r', paths: ['/api'] }] }] });
    assert.equal(t.match('GET', 'h', '/api/items')?.upstreamPath, '/items');
    assert.equal(t.match('GET', 'h', '/api')?.upstreamPath, '/');
  });

  it('a regex path strips exactly what it matched', () => {
    const t = compile({
      services: [
        {
          name: 'svc',
          url: 'http://svc.internal/api',
          routes: [
            { name: 'strip', paths: ['~/v\\d+'] },
            { name: 'keep', paths: ['~/k\\d+'], strip_path: false },
          ],
        },
      ],
    });
    assert.equal(t.match('GET', 'h', '/v2/items')?.upstreamPath, '/api/items');
    assert.equal(t.match('GET', 'h', '/v22')?.upstreamPath, '/api');
    assert.equal(t.match('GET', 'h', '/k2/items')?.upstreamPath, '/api/k2/items');
  });

  it('a route without paths forwards the whole path', () => {
    const t = compile({ services: [{ name: 'svc', url: 'http://svc.internal/base', routes: [{ name: 'r', hosts: ['h'] }] }] });
    assert.equal(t.match('GET', 'h', '/a/b')?.upstreamPath, '/base/a/b');
  });
});

/**
 * strip_path with a route path that ends inside a segment (`/api/x` matching
 * `/api/x..`) turns what is left into a segment of its own upstream. The request
 * path has no dot segments (the normaliser removed them), but the remainder can
 * become one: `/s` + `..` would be `/s/..`, which the upstream resolves out of
 * the service path. Such a match has no upstream path (the request is refused).
 */
describe('upstream path: a remainder that would become a dot segment upstream', () => {
  // [service path, route path, request path]
  const refused: [string, string, string][] = [
    ['/s', '/api/x', '/api/x..'],
    ['/s', '/api/x', '/api/x../admin'],
    ['/s/', '/api/x', '/api/x../admin'],
    ['/', '/api/x', '/api/x../admin'],
    ['/s', '/api/x', '/api/x.'],
    ['/s', '/api/x', '/api/x./y'],
    ['/s', '/api/x', '/api/x..;/admin'],
    ['/s', '/api/x', '/api/x.;y'],
    ['/s', '/api/x', '/api/x..%3B/admin'],
    ['/s', '/api/x', '/api/x;y/admin'],
  ];
  for (const [servicePath, routePath, requestPath] of refused) {
    it(`service ${servicePath} + route ${routePath} (strip_path true) + ${requestPath} → no upstream path`, () => {
      assert.equal(upstreamPathV0(servicePath, requestPath, true, routePath.length), undefined);
      const t = compile({
        services: [{ name: 'svc', url: `http://svc.internal${servicePath}`, routes: [{ name: 'r', paths: [routePath] }] }],
      });
      const m = t.match('GET', 'h', requestPath);
      assert.ok(m, 'the route still matches');
      assert.equal(m.route.name, 'r');
      assert.equal(m.upstreamPath, undefined);
    });
  }

  // [service path, route path, request path, strip_path, upstream path]
  const kept: [string, string, string, boolean, string][] = [
    ['/s', '/api/x', '/api/x.y', true, '/s/.y'],
    ['/s', '/api/x', '/api/x..y', true, '/s/..y'],
    ['/s', '/api/x', '/api/x...', true, '/s/...'],
    ['/s', '/api/x', '/api/x../admin', false, '/s/api/x../admin'],
    ['/s', '/api/x', '/api/x;y/admin', false, '/s/api/x;y/admin'],
    ['/s', '/api/', '/api/x;y', true, '/s/x;y'],
  ];
  for (const [servicePath, routePath, requestPath, stripPath, upstream] of kept) {
    it(`service ${servicePath} + route ${routePath} (strip_path ${stripPath}) + ${requestPath} → ${upstream}`, () => {
      assert.equal(upstreamPathV0(servicePath, requestPath, stripPath, stripPath ? routePath.length : 0), upstream);
    });
  }

  it('a regex path that ends inside a segment is checked the same way', () => {
    const t = compile({ services: [{ name: 'svc', url: 'http://svc.internal/api', routes: [{ name: 'v', paths: ['~/v\\d'] }] }] });
    assert.equal(t.match('GET', 'h', '/v1../admin')?.upstreamPath, undefined);
    assert.equal(t.match('GET', 'h', '/v1/admin')?.upstreamPath, '/api/admin');
  });
});

describe('upstream services', () => {
  it('origin, Host header, timeouts and retries come from the service', () => {
    const t = compile({
      services: [
        { name: 'plain', url: 'http://a.internal', routes: [{ name: 'a', paths: ['/a'] }] },
        { name: 'port', url: 'http://b.internal:8080/x', routes: [{ name: 'b', paths: ['/b'] }] },
        { name: 'tls', url: 'https://c.internal', routes: [{ name: 'c', paths: ['/c'] }] },
        { name: 'v6', url: 'http://[::1]:9999', routes: [{ name: 'd', paths: ['/d'] }] },
      ],
    });
    const svc = (path: string) => t.match('GET', 'h', path)!.route.service;
    assert.deepEqual(
      [svc('/a'), svc('/b'), svc('/c'), svc('/d')].map((s) => [s.origin, s.hostHeader, s.path]),
      [
        ['http://a.internal:80', 'a.internal', '/'],
        ['http://b.internal:8080', 'b.internal:8080', '/x'],
        ['https://c.internal:443', 'c.internal', '/'],
        ['http://[::1]:9999', '[::1]:9999', '/'],
      ],
    );
    assert.equal(svc('/a').connectTimeoutMs, 60000);
    assert.equal(svc('/a').retries, 5);
    assert.equal(t.services.length, 4);
  });

  it('strip_path and preserve_host are carried on the compiled route', () => {
    const t = compile({
      services: [
        {
          name: 'svc',
          url: 'http://svc.internal',
          routes: [
            { name: 'defaults', paths: ['/d'] },
            { name: 'explicit', paths: ['/e'], strip_path: false, preserve_host: true } as RouteDef,
          ],
        },
      ],
    });
    const d = t.match('GET', 'h', '/d')!.route;
    const e = t.match('GET', 'h', '/e')!.route;
    assert.deepEqual([d.stripPath, d.preserveHost], [true, false]);
    assert.deepEqual([e.stripPath, e.preserveHost], [false, true]);
  });
});

describe('plugin precedence: route > service > global', () => {
  // Each plugin instance is told apart by its issuer.
  const oidc = (tag: string, extra: Record<string, unknown> = {}) => ({
    name: 'openid-connect',
    ...extra,
    config: { issuer: `http://idp.internal/${tag}`, auth_methods: ['bearer'] },
  });
  const t = compile({
    services: [
      {
        name: 'with-plugin',
        url: 'http://a.internal',
        plugins: [oidc('service')],
        routes: [
          { name: 'route-plugin', paths: ['/route'], plugins: [oidc('route')] },
          { name: 'disabled-route-plugin', paths: ['/disabled'], plugins: [oidc('disabled', { enabled: false })] },
          { name: 'inherits-service', paths: ['/service'] },
        ],
      },
      { name: 'bare', url: 'http://b.internal', routes: [{ name: 'inherits-global', paths: ['/global'] }] },
      {
        name: 'scoped-by-top-level',
        url: 'http://c.internal',
        routes: [
          { name: 'top-route', paths: ['/top-route'] },
          { name: 'top-both', paths: ['/top-both'] },
          { name: 'top-service', paths: ['/top-service'] },
        ],
      },
      { name: 'other', url: 'http://d.internal', routes: [{ name: 'other-route', paths: ['/other'] }] },
    ],
    plugins: [
      oidc('global'),
      oidc('top-level-route', { route: 'top-route' }),
      oidc('top-level-route-only', { route: 'top-both' }),
      oidc('top-level-route-and-service', { route: 'top-both', service: 'scoped-by-top-level' }),
      oidc('top-level-service', { service: 'scoped-by-top-level' }),
      // Bound to a route of another service: applies nowhere.
      oidc('mismatched', { route: 'other-route', service: 'bare' }),
    ],
  });

  const cases: [path: string, issuer: string][] = [
    ['/route', 'route'],
    ['/disabled', 'service'],
    ['/service', 'service'],
    ['/global', 'global'],
    ['/top-route', 'top-level-route'],
    ['/top-both', 'top-level-route-and-service'],
    ['/top-service', 'top-level-service'],
    ['/other', 'global'],
  ];
  for (const [path, issuer] of cases) {
    it(`${path} runs the ${issuer} instance`, () => {
      const plugins = t.match('GET', 'h', path)!.route.plugins;
      assert.equal(plugins['openid-connect']?.issuer, `http://idp.internal/${issuer}`);
    });
  }

  it('a disabled plugin with nothing beneath it leaves the route unprotected', () => {
    const only = compile({
      services: [{ name: 's', url: 'http://s.internal', routes: [{ name: 'r', paths: ['/'], plugins: [oidc('off', { enabled: false })] }] }],
    });
    assert.equal(only.match('GET', 'h', '/')!.route.plugins['openid-connect'], undefined);
  });
});
