import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer, json } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const SECRET = 'a-session-secret-that-is-long-enough-0000';

/**
 * What a client can smuggle past the openid-connect plugin, tried against the
 * built gateway: the gateway's own cookies, identity headers, credentials in
 * several places, bearer tokens on session-only routes, and the IdP's answers
 * (userinfo, introspection) read the wrong way round.
 */
describe('openid-connect: what clients must not get past the gateway', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let userinfoStatus = 200;
  let introspections: URLSearchParams[] = [];
  const introspectionAnswers: Record<string, Record<string, unknown>> = {
    'opaque-active': { active: true, sub: 'user-9', scope: 'read', exp: Math.floor(Date.now() / 1000) + 600 },
    'opaque-refresh': { active: true, sub: 'user-9', token_type: 'refresh_token', exp: Math.floor(Date.now() / 1000) + 600 },
  };

  before(async () => {
    issuer = await FakeIssuer.start(undefined, 0, {
      // Discovery advertises userinfo but no introspection endpoint: the configured one must be used.
      metadata: (iss) => ({ userinfo_endpoint: `${iss}/userinfo`, introspection_endpoint: undefined }),
      handlers: {
        '/userinfo': (req, res) => {
          if (userinfoStatus === 200) return json(res, { sub: 'user-1', email: 'u@example.com' });
          if (userinfoStatus === 401) {
            res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"', 'content-length': 0 });
            return res.end();
          }
          return json(res, { error: 'server_error' }, userinfoStatus);
        },
        '/introspect': (_req, res, body) => {
          const form = new URLSearchParams(body);
          introspections.push(form);
          return json(res, introspectionAnswers[form.get('token') ?? ''] ?? { active: false });
        },
      },
    });
    upstream = await startUpstream();
    const bearer = (config: Record<string, unknown> = {}) => bearerPlugin(issuer.issuer, { client_id: ['gw'], ...config });
    gw = await startGateway({
      config: oneService(upstream.url, [
        { name: 'api', paths: ['/api'], plugins: [bearer({ session_secret: SECRET, session_cookie_name: 'gw_session' })] },
        { name: 'open', paths: ['/open'] },
        { name: 'preflight', paths: ['/preflight'], plugins: [bearer({ run_on_preflight: false })] },
        {
          name: 'browser-only',
          paths: ['/browser-only'],
          plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, client_id: ['gw'], client_secret: ['s'], redirect_uri: ['http://127.0.0.1/browser-only'], session_secret: SECRET, auth_methods: ['authorization_code', 'session'] } }],
        },
        { name: 'hidden', paths: ['/hidden'], plugins: [bearer({ hide_credentials: true, bearer_token_param_type: ['header', 'query', 'cookie'], bearer_token_cookie_name: 'at' })] },
        { name: 'userinfo', paths: ['/userinfo'], plugins: [bearer({ client_secret: ['s'], upstream_user_info_header: 'x-userinfo' })] },
        {
          name: 'introspected',
          paths: ['/introspected'],
          plugins: [bearer({ client_secret: ['s'], auth_methods: ['introspection'], introspection_endpoint: `${issuer.issuer}/introspect`, cache_ttl_neg: 60 })],
        },
      ]),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  async function call(path: string, headers: Record<string, string> = {}, method = 'GET') {
    const before = upstream.requests.length;
    const res = await request(`${gw.proxyUrl}${path}`, { method: method as 'GET', headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, upstream: upstream.requests.length > before ? upstream.requests[upstream.requests.length - 1] : undefined };
  }

  const gatewayCookies = 'gw_session=aaa; gw_session_2=bbb; __Host-gw_session=ccc; __Secure-gw_session_3=ddd; gatehouse_auth_abc=eee; __Host-gatehouse_auth_x=fff; app=keep; gw_sessionx=keep2';

  it('never forwards the gateway\'s own cookies: bearer requests', async () => {
    const token = await issuer.token({});
    const r = await call('/api', { authorization: `Bearer ${token}`, cookie: gatewayCookies });
    assert.equal(r.status, 200);
    assert.equal(r.upstream!.headers.cookie, 'app=keep; gw_sessionx=keep2');
  });

  it('never forwards the gateway\'s own cookies: routes without any plugin', async () => {
    const r = await call('/open', { cookie: gatewayCookies });
    assert.equal(r.status, 200);
    assert.equal(r.upstream!.headers.cookie, 'app=keep; gw_sessionx=keep2');
    const only = await call('/open', { cookie: 'gw_session=a; gatehouse_auth_1=b' });
    assert.equal(only.upstream!.headers.cookie, undefined);
  });

  it('never forwards the gateway\'s own cookies or identity headers on a preflight passed through unauthenticated', async () => {
    const r = await call('/preflight', { origin: 'https://app.example', 'access-control-request-method': 'GET', cookie: gatewayCookies, 'x-consumer-username': 'admin', 'x-userinfo': 'e30=' }, 'OPTIONS');
    assert.equal(r.status, 200);
    assert.equal(r.upstream!.headers.cookie, 'app=keep; gw_sessionx=keep2');
    assert.equal(r.upstream!.headers['x-consumer-username'], undefined);
    assert.equal(r.upstream!.headers['x-userinfo'], undefined);
  });

  it('strips every identity header a client sends on a plugin route, whatever its spelling', async () => {
    const token = await issuer.token({});
    const spoofed = {
      'x-userinfo': 'e30=',
      'x-id-token': 'x',
      'x-access-token': 'x',
      'x-consumer-id': '1',
      'x-consumer-custom-id': 'admin',
      'x-credential-identifier': 'admin',
      'x-authenticated-userid': 'admin',
      'x-authenticated-scope': 'admin',
      'x-forwarded-user': 'admin',
      'x-forwarded-email': 'admin@example.com',
      'x-forwarded-groups': 'admins',
      'x-forwarded-preferred-username': 'admin',
      'x-auth-request-user': 'admin',
      'x-http-method-override': 'DELETE',
      'x-original-url': '/admin',
      'x-rewrite-url': '/admin',
      'x-remote-user': 'admin',
      x_consumer_username: 'admin',
      'X-Forwarded_User': 'admin',
      'x-unrelated': 'kept',
    };
    const r = await call('/api', { authorization: `Bearer ${token}`, ...spoofed });
    assert.equal(r.status, 200);
    const got = r.upstream!.headers;
    for (const name of Object.keys(spoofed)) {
      if (name === 'x-unrelated') continue;
      assert.equal(got[name.toLowerCase()], undefined, `${name} reached the upstream`);
    }
    assert.equal(got['x-unrelated'], 'kept');
  });

  it('does not accept bearer tokens on a route whose auth_methods do not include bearer', async () => {
    const token = await issuer.token({});
    const r = await call('/browser-only', { authorization: `Bearer ${token}`, accept: 'application/json' });
    assert.equal(r.status, 401);
    assert.equal(r.upstream, undefined);
  });

  it('refuses a token presented in more than one place (RFC 6750 §2)', async () => {
    const token = await issuer.token({});
    const other = await issuer.token({ sub: 'someone-else' });
    const twice = await call(`/hidden?access_token=${other}`, { authorization: `Bearer ${token}` });
    assert.equal(twice.status, 400);
    assert.match(String(twice.headers['www-authenticate']), /error="invalid_request"/);
    assert.equal(twice.upstream, undefined);
    const twoParams = await call(`/hidden?access_token=${token}&access_token=${other}`);
    assert.equal(twoParams.status, 400);
    const headerAndCookie = await call('/hidden', { authorization: `Bearer ${token}`, cookie: `at=${other}` });
    assert.equal(headerAndCookie.status, 400);
  });

  it('hide_credentials removes every place the route accepts tokens from', async () => {
    const token = await issuer.token({});
    const viaQuery = await call(`/hidden?a=1&access_token=${token}`);
    assert.equal(viaQuery.status, 200);
    assert.equal(viaQuery.upstream!.url, '/?a=1');
    const viaCookie = await call('/hidden', { cookie: `at=${token}; app=1` });
    assert.equal(viaCookie.status, 200);
    assert.equal(viaCookie.upstream!.headers.cookie, 'app=1');
    // An encoded parameter name is the same parameter to the upstream: it is a second token, not a passenger.
    const encoded = await call(`/hidden?access%5Ftoken=forged&x=2`, { authorization: `Bearer ${token}` });
    assert.equal(encoded.status, 400);
    assert.equal(encoded.upstream, undefined);
  });

  it('maps userinfo answers the right way round: the IdP refusing is 401, the IdP failing is 503', async () => {
    const token = await issuer.token({});
    userinfoStatus = 200;
    const ok = await call('/userinfo', { authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(JSON.parse(Buffer.from(String(ok.upstream!.headers['x-userinfo']), 'base64').toString()), { sub: 'user-1', email: 'u@example.com' });

    userinfoStatus = 401;
    const refused = await call('/userinfo', { authorization: `Bearer ${await issuer.token({})}` });
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers['www-authenticate']), /invalid_token/);

    userinfoStatus = 500;
    const failing = await call('/userinfo', { authorization: `Bearer ${await issuer.token({})}` });
    assert.equal(failing.status, 503);
    assert.ok(failing.headers['retry-after']);
  });

  it('introspects at the configured endpoint, with token_type_hint, refusing refresh tokens', async () => {
    introspections = [];
    const ok = await call('/introspected', { authorization: 'Bearer opaque-active' });
    assert.equal(ok.status, 200);
    assert.equal(introspections.length, 1);
    assert.equal(introspections[0].get('token_type_hint'), 'access_token');
    const refresh = await call('/introspected', { authorization: 'Bearer opaque-refresh' });
    assert.equal(refresh.status, 401);
    assert.equal(refresh.upstream, undefined);
  });

  it('remembers inactive tokens for cache_ttl_neg, so replaying a bogus token costs the IdP one call', async () => {
    introspections = [];
    for (let i = 0; i < 5; i++) {
      const r = await call('/introspected', { authorization: 'Bearer bogus-token' });
      assert.equal(r.status, 401);
    }
    assert.equal(introspections.filter((f) => f.get('token') === 'bogus-token').length, 1);
  });
});
