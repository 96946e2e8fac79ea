import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { GatewayError } from '../../src/common/gateway.error.js';
import { RequestContext } from '../../src/common/request-context.js';
import { parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { RouteMatcher } from '../../src/proxy/route-matcher.js';
import { RouteTable } from '../../src/proxy/route-table.js';

/**
 * The route is chosen for the normalised path, and the path sent upstream is
 * built from that same normalised path: a path the upstream would read as
 * another resource ("//admin", "/public/..;/admin") can neither slip past the
 * route that protects that resource nor reach the upstream in its raw form.
 *
 * One service on the root with a public catch-all, a public `/public` and a
 * protected-by-config `/admin` (strip_path false), and a second service under
 * `/static` reached through `/assets` (strip_path true).
 */
const table = RouteTable.compile(
  parseDeclarativeConfig(
    JSON.stringify({
      _format_version: '3.0',
      services: [
        {
          name: 'app',
          url: 'http://app.internal',
          routes: [
            { name: 'public', paths: ['/'] },
            { name: 'public-area', paths: ['/public'], strip_path: false },
            { name: 'admin', paths: ['/admin'], strip_path: false },
          ],
        },
        { name: 'static', url: 'http://app.internal/static', routes: [{ name: 'assets', paths: ['/assets'] }] },
      ],
    }),
    'test.json',
    {},
  ),
);
const matcher = new RouteMatcher({ routeTable: table });

function resolve(url: string): RequestContext {
  const ctx = new RequestContext('test', false);
  matcher.resolve({ url, method: 'GET', headers: { host: 'gw.test' } } as unknown as IncomingMessage, ctx);
  return ctx;
}

describe('RouteMatcher: the route and the upstream path come from the normalised path', () => {
  // [raw request target, route, path sent upstream (without the query)]
  const cases: [string, string, string][] = [
    ['/admin', 'admin', '/admin'],
    ['//admin', 'admin', '/admin'],
    ['///admin', 'admin', '/admin'],
    ['//admin//users', 'admin', '/admin/users'],
    ['/%2e//admin', 'admin', '/admin'],
    ['/public/%2e%2e//admin', 'admin', '/admin'],
    ['/x/../admin', 'admin', '/admin'],
    ['/public//x', 'public-area', '/public/x'],
    ['//public', 'public-area', '/public'],
    ['/other//x/', 'public', '/other/x/'],
    ['//assets//a.css', 'assets', '/static/a.css'],
    ['/assets..x', 'assets', '/static/..x'],
  ];
  for (const [raw, route, upstream] of cases) {
    it(`${raw} → route ${route}, upstream ${upstream}`, () => {
      const ctx = resolve(raw);
      assert.equal(ctx.match?.route.name, route);
      assert.equal(ctx.match?.upstreamPath, upstream);
      // The same path again routes the same way: the router and the upstream agree.
      assert.equal(table.match('GET', 'gw.test', ctx.path)?.route, ctx.match?.route);
    });
  }

  it('the query string is kept apart and forwarded as sent', () => {
    const ctx = resolve('//admin?next=//evil.test/..;/x');
    assert.equal(ctx.match?.route.name, 'admin');
    assert.equal(ctx.path, '/admin');
    assert.equal(ctx.query, '?next=//evil.test/..;/x');
  });
});

describe('RouteMatcher: paths refused with 400 and a reason in the JSON body', () => {
  const DOT_PARAMS = 'dot segment with ";" parameters in path';
  const EMPTY_PARAMS = 'empty segment with ";" parameters in path';
  const JOIN = 'the part of the path left after strip_path would be a dot segment upstream';
  // [raw request target, reason]
  const cases: [string, string][] = [
    ['/public/..;/admin', DOT_PARAMS],
    ['/%2e%2e;/admin', DOT_PARAMS],
    ['/%2E%2E;/admin', DOT_PARAMS],
    ['/x/..;/admin', DOT_PARAMS],
    ['/.;/admin', DOT_PARAMS],
    ['/public/..;jsessionid=1/admin', DOT_PARAMS],
    ['/public/..%3b/admin', DOT_PARAMS],
    ['//..;/admin', DOT_PARAMS],
    ['/;/admin', EMPTY_PARAMS],
    ['/;x/admin', EMPTY_PARAMS],
    ['/assets../admin', JOIN],
    ['/assets..;/admin', JOIN],
    ['/assets.', JOIN],
    ['/../admin', 'path climbs above the root'],
    ['/a%2Fb', 'encoded "/" or "\\" in path'],
  ];
  for (const [raw, reason] of cases) {
    it(`${raw} → 400 (${reason})`, () => {
      assert.throws(
        () => resolve(raw),
        (err: unknown) => {
          assert.ok(err instanceof GatewayError, String(err));
          assert.equal(err.status, 400);
          assert.equal(err.message, reason, 'the reason is logged');
          assert.deepEqual(err.body, { reason }, 'and told to the client');
          return true;
        },
      );
    });
  }
});
