import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Paths that one side reads as another resource than the other side does. The
 * gateway routes a public catch-all `/`, a public `/public` and an
 * openid-connect-protected `/admin` (strip_path false) on one service, and
 * `/assets` (strip_path true) onto a second service under `/static`. Upstreams
 * merge `//` (nginx, most frameworks) and treat `..;` as `..` (Tomcat, Jetty,
 * Spring): every spelling of `/admin` must reach the protected route (401
 * without a token) or be refused (400), and never reach the upstream
 * unauthenticated. Requests go out through node:http with the path verbatim,
 * so no client library normalises them first.
 */
describe('proxy: path confusion between the router and the upstream', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'app',
            url: upstream.url,
            routes: [
              { name: 'public', paths: ['/'] },
              { name: 'public-area', paths: ['/public'], strip_path: false },
              { name: 'admin', paths: ['/admin'], strip_path: false, plugins: [bearerPlugin(issuer.issuer)] },
            ],
          },
          { name: 'static', url: `${upstream.url}/static`, routes: [{ name: 'assets', paths: ['/assets'] }] },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  const attacks = [
    '//admin',
    '///admin',
    '//admin/users',
    '/%2e//admin',
    '/%2F/admin',
    '/public/..;/admin',
    '/public/%2e%2e;/admin',
    '/public/%2E%2E;/admin',
    '/%2e%2e;/admin',
    '/x/..;/admin',
    '/x/.%2e;/admin',
    '/public/..;jsessionid=1/admin',
    '/public/..%3B/admin',
    '/.;/admin',
    '/;/admin',
    '/;jsessionid=1/admin',
    '//..;/admin',
    '/assets../admin',
    '/assets..;/admin',
    '/assets../../admin',
  ];

  for (const path of attacks) {
    test(`${path} without a token → 401 on the protected route or 400, never the upstream`, async () => {
      const before = upstream.requests.length;
      const res = await httpRequest(gw.proxyUrl, path);
      assert.ok(res.status === 401 || res.status === 400, `status ${res.status}: ${res.text()}`);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const requestId = res.headers['x-request-id'];
      const line = await gw.waitForLog((l) => l.msg === 'request' && l.request_id === requestId);
      if (res.status === 401) assert.equal(line.route, 'admin', 'a 401 comes from the protected route');
      else assert.equal(typeof res.json().reason, 'string', 'a 400 says why');
      assert.equal(upstream.requests.length, before, `the upstream saw ${upstream.requests.slice(before).map((r) => r.url)}`);
    });
  }

  test('with a valid token, //admin//users reaches the upstream as /admin/users, the path its route was chosen for', async () => {
    const token = await issuer.token({ sub: 'alice' });
    const res = await httpRequest(gw.proxyUrl, '//admin//users?q=1', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.equal(res.json().url, '/admin/users?q=1');
    assert.equal(res.json().headers['x-forwarded-path'], '/admin/users');
  });

  for (const [sent, received] of [
    ['/public/x', '/public/x'],
    ['//public//x/', '/public/x/'],
    ['/public/a;v=1/b', '/public/a;v=1/b'],
    ['/assets//a.css', '/static/a.css'],
    ['/other/./y', '/other/y'],
  ]) {
    test(`public ${sent} reaches the upstream as ${received}`, async () => {
      const res = await httpRequest(gw.proxyUrl, sent);
      assert.equal(res.status, 200);
      assert.equal(res.json().url, received);
    });
  }
});
