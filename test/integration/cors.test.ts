import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.net';

/**
 * The cors plugin in front of openid-connect, against the built gateway: a
 * browser's preflight needs no token, the actual request's answer (200, 401 or
 * 403) is readable by the allowed page only, and `*` never goes with credentials.
 */
describe('cors: before authentication, on every answer', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let varying: Server;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    // An upstream with its own Vary and its own opinion on CORS.
    varying = createServer((_req, res) => {
      res.writeHead(200, { vary: 'Accept-Encoding', 'access-control-allow-origin': 'https://upstream-choice.example', 'content-length': 2 });
      res.end('ok');
    });
    await new Promise<void>((r) => varying.listen(0, '127.0.0.1', r));
    const bearer = (config: Record<string, unknown> = {}) => bearerPlugin(issuer.issuer, { audience: ['api'], ...config });
    const cors = (config: Record<string, unknown> = {}) => ({
      name: 'cors',
      config: { origins: [APP, 'https://.*\\.partner\\.example'], credentials: true, max_age: 600, exposed_headers: ['X-Total', 'X-Page'], ...config },
    });
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'api',
            url: upstream.url,
            routes: [
              // cors after openid-connect in the file: priority, not position, decides.
              { name: 'api', paths: ['/api'], plugins: [bearer({ run_on_preflight: true }), cors()] },
              { name: 'scoped', paths: ['/scoped'], plugins: [cors(), bearer({ scopes_required: ['orders:write'] })] },
              { name: 'star-creds', paths: ['/star-creds'], plugins: [cors({ origins: ['*'] })] },
              { name: 'star', paths: ['/star'], plugins: [cors({ origins: ['*'], credentials: false, headers: ['Authorization', 'Content-Type'] })] },
              { name: 'continue', paths: ['/continue'], plugins: [cors({ preflight_continue: true }), bearer({ run_on_preflight: false })] },
              { name: 'continue-auth', paths: ['/continue-auth'], plugins: [cors({ preflight_continue: true }), bearer()] },
            ],
          },
          { name: 'varying', url: `http://127.0.0.1:${(varying.address() as AddressInfo).port}`, routes: [{ name: 'varying', paths: ['/varying'], plugins: [cors()] }] },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    varying?.closeAllConnections();
    await new Promise((r) => varying?.close(r));
    await issuer?.stop();
  });

  async function call(path: string, headers: Record<string, string> = {}, method = 'GET') {
    const before = upstream.requests.length;
    const res = await request(`${gw.proxyUrl}${path}`, { method: method as 'GET', headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, reachedUpstream: upstream.requests.length > before, upstream: upstream.requests.at(-1) };
  }
  const preflight = (path: string, origin: string, extra: Record<string, string> = {}) =>
    call(path, { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type', ...extra }, 'OPTIONS');
  const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((h) => h.startsWith('access-control-'));

  it('answers a preflight without a token, before openid-connect (listed first, run_on_preflight true)', async () => {
    const r = await preflight('/api/orders', APP);
    assert.equal(r.status, 200);
    assert.equal(r.reachedUpstream, false);
    assert.equal(r.headers['access-control-allow-origin'], APP);
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-allow-methods'], 'GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT');
    assert.equal(r.headers['access-control-allow-headers'], 'authorization,content-type', 'echoes Access-Control-Request-Headers by default');
    assert.equal(r.headers['access-control-max-age'], '600');
    assert.equal(r.headers.vary, 'Origin');
    assert.equal(r.headers['content-length'], '0');
    assert.equal(r.headers['www-authenticate'], undefined);
  });

  it('an actual request with a token gets the allowed origin, credentials, exposed headers and Vary: Origin', async () => {
    const r = await call('/api/orders', { origin: APP, authorization: `Bearer ${await issuer.token({ aud: 'api' })}` });
    assert.equal(r.status, 200);
    assert.equal(r.reachedUpstream, true);
    assert.equal(r.headers['access-control-allow-origin'], APP);
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-expose-headers'], 'X-Total,X-Page');
    assert.equal(r.headers.vary, 'Origin');
    assert.equal(r.headers['access-control-allow-methods'], undefined, 'preflight-only headers stay on preflights');
  });

  it('a regex origin is reflected as the request sent it', async () => {
    const r = await call('/api/orders', { origin: 'https://shop.partner.example', authorization: `Bearer ${await issuer.token({ aud: 'api' })}` });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://shop.partner.example');
    const refused = await call('/api/orders', { origin: 'https://shop.partner.example.evil.net', authorization: `Bearer ${await issuer.token({ aud: 'api' })}` });
    assert.deepEqual(corsHeaders(refused.headers), []);
  });

  it('the 401 without a token carries the CORS headers, so the page can read it', async () => {
    const r = await call('/api/orders', { origin: APP });
    assert.equal(r.status, 401);
    assert.equal(r.reachedUpstream, false);
    assert.match(String(r.headers['www-authenticate']), /^Bearer/);
    assert.equal(r.headers['access-control-allow-origin'], APP);
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-expose-headers'], 'X-Total,X-Page');
    assert.equal(r.headers.vary, 'Origin');
  });

  it('the 403 for a missing scope carries them too', async () => {
    const r = await call('/scoped/orders', { origin: APP, authorization: `Bearer ${await issuer.token({ aud: 'api', scope: 'orders:read' })}` }, 'POST');
    assert.equal(r.status, 403);
    assert.equal(r.headers['access-control-allow-origin'], APP);
    assert.equal(r.headers.vary, 'Origin');
  });

  it('a disallowed origin gets no CORS header: not on the preflight, the 200 or the 401', async () => {
    const pre = await preflight('/api/orders', EVIL);
    assert.equal(pre.status, 200);
    assert.equal(pre.reachedUpstream, false);
    assert.deepEqual(corsHeaders(pre.headers), []);
    const ok = await call('/api/orders', { origin: EVIL, authorization: `Bearer ${await issuer.token({ aud: 'api' })}` });
    assert.equal(ok.status, 200);
    assert.deepEqual(corsHeaders(ok.headers), []);
    const denied = await call('/api/orders', { origin: EVIL });
    assert.equal(denied.status, 401);
    assert.deepEqual(corsHeaders(denied.headers), []);
    // Still Vary: a shared cache must not hand this answer to an allowed origin.
    assert.equal(denied.headers.vary, 'Origin');
  });

  it('never sends * with credentials: origins * and credentials true reflect the origin', async () => {
    for (const r of [await preflight('/star-creds/x', EVIL), await call('/star-creds/x', { origin: EVIL })]) {
      assert.equal(r.headers['access-control-allow-origin'], EVIL);
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      assert.equal(r.headers.vary, 'Origin');
    }
    const warning = await gw.waitForLog((l) => l.path === 'services[0].routes[2].plugins[0].config.origins', 1000);
    assert.match(warning.msg, /credentials is true and origins allows every origin/);
  });

  it('origins * without credentials sends *, with no Vary and no credentials', async () => {
    const pre = await preflight('/star/x', EVIL);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.equal(pre.headers['access-control-allow-credentials'], undefined);
    assert.equal(pre.headers['access-control-allow-headers'], 'Authorization,Content-Type', 'configured headers replace the echo');
    assert.equal(pre.headers.vary, undefined);
    const r = await call('/star/x', { origin: EVIL });
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.equal(r.headers['access-control-allow-credentials'], undefined);
    const noOrigin = await call('/star/x');
    assert.equal(noOrigin.headers['access-control-allow-origin'], '*', 'allow_origin_absent (Kong 3 default)');
  });

  it('preflight_continue with run_on_preflight false passes the preflight to the upstream, untouched', async () => {
    const r = await preflight('/continue/orders', APP);
    assert.equal(r.status, 200);
    assert.equal(r.reachedUpstream, true);
    assert.equal(r.upstream!.method, 'OPTIONS');
    assert.equal(r.upstream!.headers['access-control-request-method'], 'POST');
    assert.deepEqual(corsHeaders(r.headers), [], 'the upstream answers the preflight (Kong adds nothing then)');
  });

  it('preflight_continue with run_on_preflight true leaves the preflight to openid-connect', async () => {
    const r = await preflight('/continue-auth/orders', APP);
    assert.equal(r.status, 401);
    assert.equal(r.reachedUpstream, false);
  });

  it('the upstream\'s Vary is kept and Origin added; its own Allow-Origin is replaced', async () => {
    const r = await call('/varying/x', { origin: APP });
    assert.equal(r.status, 200);
    assert.deepEqual(String(r.headers.vary).split(/\s*,\s*/).sort(), ['Accept-Encoding', 'Origin']);
    assert.equal(r.headers['access-control-allow-origin'], APP);
  });
});
