import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer, signingKey, TEST_CA_FILE } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * An https issuer whose discovery document names plain-http endpoints: keys
 * and tokens never travel over http (back-channel endpoints are refused), and
 * browser-facing ones are warned about once per issuer.
 */
describe('openid-connect: plain-http endpoints of an https issuer', () => {
  let plainJwks: FakeIssuer;
  let refused: FakeIssuer;
  let warned: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    const keys = [await signingKey('RS256')];
    // Serves the very same keys, over http.
    plainJwks = await FakeIssuer.start(keys);
    refused = await FakeIssuer.start(keys, 0, { tls: true, metadata: () => ({ jwks_uri: `${plainJwks.issuer}/jwks` }) });
    warned = await FakeIssuer.start(undefined, 0, {
      tls: true,
      metadata: () => ({ authorization_endpoint: 'http://127.0.0.1:1/auth', end_session_endpoint: 'http://127.0.0.1:1/logout' }),
    });
    upstream = await startUpstream();
    gw = await startGateway({
      config: oneService(upstream.url, [
        { name: 'refused', paths: ['/refused'], plugins: [bearerPlugin(refused.issuer)] },
        { name: 'warned', paths: ['/warned'], plugins: [bearerPlugin(warned.issuer)] },
        { name: 'warned-again', paths: ['/warned-again'], plugins: [bearerPlugin(warned.issuer, { extra_jwks_uris: [`${warned.issuer}/jwks`] })] },
        {
          name: 'login',
          paths: ['/login'],
          plugins: [
            bearerPlugin(warned.issuer, {
              auth_methods: ['authorization_code', 'session'],
              client_id: ['gatehouse'],
              client_secret: ['s3cret'],
              redirect_uri: ['http://127.0.0.1:1/login/callback'],
              session_secret: 'x'.repeat(32),
            }),
          ],
        },
      ]),
      env: { NODE_EXTRA_CA_CERTS: TEST_CA_FILE },
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    for (const idp of [plainJwks, refused, warned]) await idp?.stop();
  });

  const call = async (path: string, headers: Record<string, string>) => {
    const res = await request(gw.proxyUrl + path, { headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  };

  it('refuses an https issuer whose jwks_uri is http: 503, readiness says why, the keys are never fetched', { timeout: 30_000 }, async () => {
    const r = await call('/refused', { authorization: `Bearer ${await refused.token({ scope: 'x' })}` });
    assert.equal(r.status, 503, r.text);
    assert.equal(refused.discoveryFetches >= 1, true, 'the discovery document was fetched over https');
    assert.equal(plainJwks.jwksFetches, 0, 'no key was fetched over http');
    const ready = await httpRequest(gw.statusUrl, '/health/ready');
    assert.equal(ready.status, 503);
    const failed = Object.values(ready.json().error as Record<string, { status: string; message?: string }>);
    assert.ok(
      failed.some((e) => e.status === 'down' && /plain-http endpoints, refused: jwks_uri/.test(e.message ?? '')),
      JSON.stringify(ready.json().error),
    );
  });

  it('warns once per issuer about browser-facing http endpoints, naming them, and keeps working', async () => {
    const token = await warned.token({ scope: 'x' });
    assert.equal((await call('/warned', { authorization: `Bearer ${token}` })).status, 200);
    assert.equal((await call('/warned-again', { authorization: `Bearer ${token}` })).status, 200);
    await httpRequest(gw.statusUrl, '/health/ready');

    // Login still works with the http authorization endpoint (it is the browser that goes there).
    const login = await call('/login', { accept: 'text/html' });
    assert.equal(login.status, 302, login.text);
    assert.match(String(login.headers.location), /^http:\/\/127\.0\.0\.1:1\/auth\?/);

    const isWarning = (l: Record<string, any>) => l.level === 'warn' && typeof l.msg === 'string' && l.msg.includes('plain-http endpoints');
    await gw.waitForLog((l) => isWarning(l) && l.issuer === warned.issuer);
    await new Promise((r) => setTimeout(r, 500)); // log lines are written in batches: let a second one show
    const lines = gw.logs().filter(isWarning);
    const forWarned = lines.filter((l) => l.issuer === warned.issuer);
    assert.equal(forWarned.length, 1, JSON.stringify(lines));
    assert.deepEqual(forWarned[0].endpoints, ['authorization_endpoint', 'end_session_endpoint']);
    assert.match(forWarned[0].msg, /\(authorization_endpoint, end_session_endpoint\)/);
  });
});
