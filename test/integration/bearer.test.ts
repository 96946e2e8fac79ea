import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportSPKI } from 'jose';
import { request } from 'undici';
import { FakeIssuer, signingKey } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Bearer JWT access tokens end to end: the built gateway, a real upstream and
 * an issuer whose keys the test holds (so it can forge every kind of bad token).
 */
describe('openid-connect: bearer tokens and requirements', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    const plugin = (config: Record<string, unknown>) => bearerPlugin(issuer.issuer, { rediscovery_lifetime: 2, ...config });
    gw = await startGateway({
      config: oneService(upstream.url, [
        { name: 'scoped', paths: ['/scoped'], plugins: [plugin({ scopes_required: ['kong_api_access'], upstream_headers_claims: ['sub', 'email'], upstream_headers_names: ['x-user-sub', 'x-user-email'] })] },
        { name: 'matrix', paths: ['/matrix'], plugins: [plugin({ scopes_required: ['a b', 'c'] })] },
        { name: 'roles', paths: ['/roles'], plugins: [plugin({ roles_required: ['admin'], roles_claim: ['realm_access', 'roles'] })] },
        { name: 'aud', paths: ['/aud'], plugins: [plugin({ audience_required: ['https://api.example'] })] },
        { name: 'for-us', paths: ['/for-us'], plugins: [plugin({ audience: ['https://gateway.example'] })] },
        { name: 'groups', paths: ['/groups'], plugins: [plugin({ groups_required: ['staff'], forbidden_error_message: 'Staff only' })] },
        { name: 'hs', paths: ['/hs'], plugins: [plugin({ enable_hs_signatures: true, client_id: ['c'], client_secret: ['a-shared-secret-that-is-long-enough-000'] })] },
        { name: 'plain', paths: ['/plain'], plugins: [plugin({})] },
        { name: 'lenient', paths: ['/lenient'], plugins: [plugin({ leeway: 60 })] },
        { name: 'client', paths: ['/client'], plugins: [plugin({ client_id: ['gatehouse'] })] },
        { name: 'open', paths: ['/open'] },
      ]),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  const call = async (path: string, token?: string, headers: Record<string, string> = {}) => {
    const res = await request(gw.proxyUrl + path, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };

  it('answers 401 with an RFC 6750 challenge and a JSON body when no token is sent', async () => {
    const r = await call('/scoped');
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { message: 'Unauthorized' });
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="gatehouse"');
  });

  it('proxies a valid token with the required scope, with identity headers set by the gateway only', async () => {
    const token = await issuer.token({ sub: 'alice', email: 'alice@example.com', scope: 'openid kong_api_access' });
    const r = await call('/scoped', token, { 'x-user-sub': 'mallory', X_User_Email: 'mallory@evil' });
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-user-sub'], 'alice');
    assert.equal(r.body.headers['x-user-email'], 'alice@example.com');
    assert.equal(r.body.headers['x_user_email'], undefined, 'underscore spelling of an identity header must be removed');
    assert.equal(r.body.headers.authorization, `Bearer ${token}`);
  });

  it('answers 403 insufficient_scope and logs the scopes the token had', async () => {
    const token = await issuer.token({ sub: 'bob', scope: 'openid profile email' });
    const r = await call('/scoped', token);
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { message: 'Forbidden' });
    assert.match(String(r.headers['www-authenticate']), /^Bearer realm="gatehouse", error="insufficient_scope", scope="kong_api_access"$/);
    const line = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('required scopes were not found'));
    assert.equal(line.msg, 'required scopes were not found [ openid, profile, email ]');
    assert.equal(line.caller, 'bob');
    assert.equal(line.route, 'scoped');
    assert.ok(!JSON.stringify(gw.logs()).includes(token), 'the token must never be logged');
  });

  it('applies Kong\'s AND/OR rule, string and array claims, exact case-sensitive matching', async () => {
    const cases: [unknown, number][] = [
      ['a b', 200],
      [['b', 'a'], 200],
      ['a', 403],
      ['c', 200],
      ['x c', 200],
      ['A B', 403],
      ['ab', 403],
      [['a', 'b c'], 403],
      [undefined, 403],
    ];
    for (const [scope, status] of cases) {
      const token = await issuer.token(scope === undefined ? {} : { scope });
      assert.equal((await call('/matrix', token)).status, status, `scope ${JSON.stringify(scope)}`);
    }
  });

  it('reads nested role claims, audience and groups', async () => {
    assert.equal((await call('/roles', await issuer.token({ realm_access: { roles: ['user', 'admin'] } }))).status, 200);
    assert.equal((await call('/roles', await issuer.token({ realm_access: { roles: ['user', 'administrator'] } }))).status, 403);
    assert.equal((await call('/roles', await issuer.token({ roles: ['admin'] }))).status, 403);
    assert.equal((await call('/aud', await issuer.token({ aud: ['https://other', 'https://api.example'] }))).status, 200);
    assert.equal((await call('/aud', await issuer.token({ aud: 'https://api.example.evil' }))).status, 403);
    const g = await call('/groups', await issuer.token({ groups: ['users'] }));
    assert.equal(g.status, 403);
    assert.deepEqual(g.body, { message: 'Staff only' });
  });

  it('rejects every kind of bad token with 401 invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const other = await signingKey('RS256', issuer.keys[0].kid); // same kid, different key
    const pem = await exportSPKI((await import('node:crypto')).createPublicKey({ key: issuer.keys[0].publicJwk as any, format: 'jwk' }) as any).catch(() => undefined);
    const hsWithPublicKey = await new SignJWT({ scope: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: issuer.keys[0].kid, typ: 'at+jwt' })
      .setIssuer(issuer.issuer)
      .setExpirationTime(now + 300)
      .sign(new TextEncoder().encode(pem ?? JSON.stringify(issuer.keys[0].publicJwk)));
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: issuer.issuer, sub: 'x', exp: now + 300 })).toString('base64url')}.`;
    const bad: Record<string, string> = {
      expired: await issuer.token({ exp: now - 60, iat: now - 600 }),
      'not yet valid': await issuer.token({ nbf: now + 600 }),
      'wrong iss': await issuer.token({ iss: 'http://127.0.0.1:1/other' }),
      unsigned,
      'wrong key': await issuer.token({}, { key: other }),
      'HS256 with the public key': hsWithPublicKey,
      'ID token': await issuer.token({ aud: 'test-client', nonce: 'n-1', at_hash: 'x' }, { typ: 'JWT' }),
      'logout token': await issuer.token({ events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }, { typ: 'logout+jwt' }),
      'unknown crit header': await issuer.token({}, { header: { crit: ['urn:example:unknown'], 'urn:example:unknown': true } }),
      garbage: 'not-a-token',
      'jku pointing elsewhere with unknown kid': await issuer.token({}, { key: await signingKey('RS256'), header: { jku: 'http://127.0.0.1:1/jwks' } }),
    };
    for (const [name, token] of Object.entries(bad)) {
      const r = await call('/scoped', token);
      assert.equal(r.status, 401, name);
      assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/, name);
      assert.deepEqual(r.body, { message: 'Unauthorized' }, name);
    }
  });

  it('refuses a token issued in the future beyond the leeway (RFC 7519 §4.1.6)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const r = await call('/plain', await issuer.token({ iat: now + 600 }));
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/);
    const line = await gw.waitForLog((l) => typeof l.reason === 'string' && l.reason.includes('iat (in the future)'));
    assert.equal(line.reason, 'invalid token: claim check failed: iat (in the future)');
    assert.equal((await call('/plain', await issuer.token({ iat: now + 30 }))).status, 401);
    assert.equal((await call('/lenient', await issuer.token({ iat: now + 30 }))).status, 200, 'within the route\'s leeway');
    assert.equal((await call('/lenient', await issuer.token({ iat: now + 600 }))).status, 401);
  });

  it('refuses ID tokens without nonce or at_hash, and keeps accepting access tokens that look alike (RFC 9068 §4, RFC 8725 §3.11)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const idTokens: [string, string, Record<string, unknown>][] = [
      ['/plain', 'Keycloak (typ ID)', { typ: 'ID', aud: 'gatehouse', azp: 'gatehouse', sid: 's1', email: 'a@example.com' }],
      ['/plain', 'Okta (auth_time, no scp)', { aud: '0oa1client', amr: ['pwd'], auth_time: now - 60 }],
      ['/plain', 'Auth0 (sid, no scope)', { aud: 'spa-client', sid: 's1', nickname: 'alice' }],
      ['/plain', 'Google-style (aud is azp)', { aud: 'c.apps.example', azp: 'c.apps.example', email: 'a@example.com' }],
      ['/client', 'issued to this route\'s client_id', { aud: 'gatehouse', email: 'a@example.com' }],
    ];
    for (const [path, name, claims] of idTokens) {
      const r = await call(path, await issuer.token(claims, { typ: 'JWT' }));
      assert.equal(r.status, 401, name);
      assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/, name);
    }
    const keycloakAccessToken = { typ: 'Bearer', aud: 'account', azp: 'gatehouse', scope: 'openid profile', sid: 's1', auth_time: now - 60 };
    for (const path of ['/plain', '/client']) assert.equal((await call(path, await issuer.token(keycloakAccessToken, { typ: 'JWT' }))).status, 200, path);
    assert.equal((await call('/client', await issuer.token({ aud: 'gatehouse' }, { typ: 'at+jwt' }))).status, 200, 'an RFC 9068 access token for the gateway itself');
  });

  it('rejects a token for another audience with 401 invalid_token where the route names its audience (RFC 9068 §4)', async () => {
    const ours = await call('/for-us', await issuer.token({ aud: ['https://gateway.example', 'https://x'] }));
    assert.equal(ours.status, 200);
    for (const aud of ['https://other.example', undefined, ['https://gateway.example.evil']]) {
      const r = await call('/for-us', await issuer.token(aud === undefined ? {} : { aud }));
      assert.equal(r.status, 401, `aud ${JSON.stringify(aud)}`);
      assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/);
    }
  });

  it('accepts HS256 only where enable_hs_signatures is on, with the client secret', async () => {
    const now = Math.floor(Date.now() / 1000);
    const hs = await new SignJWT({ sub: 's' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setIssuer(issuer.issuer)
      .setExpirationTime(now + 300)
      .sign(new TextEncoder().encode('a-shared-secret-that-is-long-enough-000'));
    assert.equal((await call('/hs', hs)).status, 200);
    assert.equal((await call('/matrix', hs)).status, 401);
  });

  it('accepts a rotated signing key after one JWKS refetch, and a flood of unknown kids costs at most one fetch', async () => {
    const fresh = await signingKey('ES256');
    const token = await issuer.token({ scope: 'kong_api_access' }, { key: fresh });
    issuer.keys.push(fresh);
    await new Promise((r) => setTimeout(r, 2100)); // past rediscovery_lifetime since the keys were first loaded
    const before = issuer.jwksFetches;
    assert.equal((await call('/scoped', token)).status, 200);
    assert.equal(issuer.jwksFetches, before + 1);
    const flood = await Promise.all(
      Array.from({ length: 20 }, async () => call('/scoped', await issuer.token({ scope: 'kong_api_access' }, { key: await signingKey('RS256') }))),
    );
    for (const r of flood) assert.equal(r.status, 401);
    assert.ok(issuer.jwksFetches <= before + 2, `at most one refetch per cooldown (fetches: ${issuer.jwksFetches - before})`);
  });

  it('leaves routes without the plugin open', async () => {
    assert.equal((await call('/open')).status, 200);
  });
});

describe('openid-connect: identity provider outage', () => {
  it('fails closed with 503 while the issuer is unreachable, keeps cached keys working, and recovers by itself', async () => {
    const issuer = await FakeIssuer.start();
    const port = issuer.port;
    await issuer.stop();
    const upstream = await startUpstream();
    const gw = await startGateway({
      config: oneService(upstream.url, [{ name: 'r', paths: ['/r'], plugins: [bearerPlugin(issuer.issuer)] }]),
    });
    try {
      const token = await issuer.token({ scope: 'x' });
      const down = await request(`${gw.proxyUrl}/r`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(down.statusCode, 503);
      assert.match(await down.body.text(), /"message"/);
      const ready = await request(`${gw.statusUrl}/health/ready`);
      assert.equal(ready.statusCode, 503);
      await ready.body.dump();

      await issuer.listen(port);
      let status = 0;
      for (let i = 0; i < 60 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const r = await request(`${gw.proxyUrl}/r`, { headers: { authorization: `Bearer ${token}` } });
        status = r.statusCode;
        await r.body.dump();
      }
      assert.equal(status, 200, 'recovered without a restart');

      // Keys are cached now: the IdP going away again does not break valid tokens.
      await issuer.stop();
      const another = await issuer.token({ scope: 'y' });
      const cached = await request(`${gw.proxyUrl}/r`, { headers: { authorization: `Bearer ${another}` } });
      assert.equal(cached.statusCode, 200);
      await cached.body.dump();
    } finally {
      await gw.stop();
      await upstream.close();
    }
  });
});
