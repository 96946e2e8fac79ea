import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { readGatewaySettings } from '../../src/config/gateway-settings.js';
import type { OpenIdConnectConfig } from '../../src/config/openid-connect.schema.js';
import { createLogger } from '../../src/common/logger.js';
import { DEMO_PASSWORD, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { startDemo, stopDemo } from '../../src/demo/demo.js';
import { startEchoUpstream } from '../../src/demo/echo-upstream.js';

/**
 * The demo OpenID Provider against real HTTP: discovery, the demo-only password
 * grant, a scripted browser login (authorization code + PKCE), refresh,
 * introspection, revocation, logout page and key rotation.
 */

const CLIENT_ID = 'gatehouse-test';
const CLIENT_SECRET = randomBytes(16).toString('hex');
const REDIRECT_URI = 'http://localhost:8000/oidc';
const RESOURCE = 'http://localhost:8000';
const basic = 'Basic ' + Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');

type Json = Record<string, any>;

async function form(url: string, body: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; json: Json }> {
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(body) });
  return { status: res.status, json: (await res.json()) as Json };
}

function claims(jwt: string): Json {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/** Every absolute http(s) URL in a page, by origin. */
function origins(html: string): string[] {
  return [...html.matchAll(/https?:\/\/[^\s"'<>)]+/g)].map((m) => new URL(m[0]).origin);
}

/** A minimal browser: one cookie jar (the IdP is one host), manual redirects. */
class Browser {
  cookies = new Map<string, string>();
  async get(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const value = pair.slice(i + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === '') this.cookies.delete(pair.slice(0, i));
      else this.cookies.set(pair.slice(0, i), value);
    }
    return res;
  }
  /** Follows redirects on the IdP until one leaves it (or a page is reached). */
  async follow(url: string, issuer: string, init?: RequestInit): Promise<{ res: Response; url: string }> {
    let res = await this.get(url, init);
    let current = url;
    for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i++) {
      current = new URL(res.headers.get('location')!, current).href;
      if (!current.startsWith(issuer)) return { res, url: current };
      await res.body?.cancel();
      res = await this.get(current);
    }
    return { res, url: current };
  }
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(idp: DemoIdp, extra: Record<string, string> = {}) {
  const { verifier, challenge } = pkce();
  const state = randomBytes(8).toString('hex');
  const params = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email kong_api_access',
    state,
    nonce: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  });
  return { url: `${idp.issuer}/auth?${params}`, verifier, state };
}

/** Scripted login through the real form; returns the callback URL the IdP redirected to. */
async function login(idp: DemoIdp, username: string, password = DEMO_PASSWORD) {
  const browser = new Browser();
  const auth = authorizeUrl(idp);
  const page = await browser.follow(auth.url, idp.issuer);
  assert.equal(page.res.status, 200, 'login page');
  const html = await page.res.text();
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  assert.ok(action, 'login form action');
  const done = await browser.follow(new URL(action, page.url).href, idp.issuer, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }),
  });
  return { ...auth, callback: new URL(done.url), browser };
}

async function exchange(idp: DemoIdp, code: string, verifier: string) {
  return form(`${idp.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI }, { authorization: basic });
}

describe('demo OpenID Provider', () => {
  let idp: DemoIdp;
  let discovery: Json;

  before(async () => {
    idp = await startDemoIdp({
      port: 0,
      clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [REDIRECT_URI] }],
      resource: RESOURCE,
    });
    discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Json;
  });
  after(() => idp.stop());

  const passwordGrant = (username: string, password = DEMO_PASSWORD, scope = 'openid kong_api_access') =>
    form(`${idp.issuer}/token`, { grant_type: 'password', username, password, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope });

  it('listens on loopback on a free port and publishes a complete discovery document', () => {
    assert.equal(idp.issuer, `http://127.0.0.1:${idp.port}`);
    assert.notEqual(idp.port, 0);
    assert.equal(discovery.issuer, idp.issuer);
    assert.equal(discovery.jwks_uri, `${idp.issuer}/jwks`);
    assert.equal(discovery.introspection_endpoint, `${idp.issuer}/token/introspection`);
    assert.equal(discovery.revocation_endpoint, `${idp.issuer}/token/revocation`);
    assert.equal(discovery.end_session_endpoint, `${idp.issuer}/session/end`);
    assert.ok(discovery.code_challenge_methods_supported.includes('S256'));
    assert.equal(discovery.authorization_response_iss_parameter_supported, true);
    assert.deepEqual(discovery.response_types_supported, ['code']);
    assert.ok(discovery.grant_types_supported.includes('password'));
    assert.ok(discovery.grant_types_supported.includes('refresh_token'));
  });

  it('password grant: Blog_with_scope gets an RFC 9068 JWT access token with kong_api_access', async () => {
    const { status, json } = await passwordGrant('Blog_with_scope');
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.token_type, 'Bearer');
    assert.equal(decodeProtectedHeader(json.access_token).typ, 'at+jwt');
    const { payload } = await jwtVerify(json.access_token, createRemoteJWKSet(new URL(discovery.jwks_uri)), {
      issuer: idp.issuer,
      audience: RESOURCE,
      typ: 'at+jwt',
    });
    assert.deepEqual(String(payload.scope).split(' ').sort(), ['kong_api_access', 'openid']);
    assert.equal(payload.sub, idp.users[0].sub);
    assert.equal(payload.client_id, CLIENT_ID);
    assert.equal(payload.email, 'blog_with_scope@example.com');
    assert.deepEqual((payload.realm_access as Json).roles, ['blog-reader', 'blog-writer']);
    assert.equal(typeof json.refresh_token, 'string');
    assert.equal(claims(json.id_token).sub, idp.users[0].sub);
  });

  it('password grant: Blog_without_scope asks for kong_api_access and does not get it', async () => {
    const { status, json } = await passwordGrant('Blog_without_scope');
    assert.equal(status, 200, JSON.stringify(json));
    const scope = String(claims(json.access_token).scope).split(' ');
    assert.ok(scope.includes('openid'));
    assert.ok(!scope.includes('kong_api_access'), `scope was ${scope.join(' ')}`);
    assert.equal(json.scope, 'openid');
  });

  it('password grant: a wrong password or unknown user is 400 invalid_grant', async () => {
    for (const [user, password] of [['Blog_with_scope', 'wrong'], ['nobody', DEMO_PASSWORD]]) {
      const { status, json } = await passwordGrant(user, password);
      assert.equal(status, 400);
      assert.equal(json.error, 'invalid_grant');
      assert.equal(json.access_token, undefined);
    }
  });

  it('password grant: a wrong client secret is 401 invalid_client', async () => {
    const res = await form(`${idp.issuer}/token`, { grant_type: 'password', username: 'Blog_with_scope', password: DEMO_PASSWORD, client_id: CLIENT_ID, client_secret: 'nope' });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'invalid_client');
  });

  it('introspects a JWT access token (active), and after revocation reports it inactive', async () => {
    const { json: tokens } = await passwordGrant('Blog_with_scope');
    const introspect = () => form(`${idp.issuer}/token/introspection`, { token: tokens.access_token }, { authorization: basic });
    const first = await introspect();
    assert.equal(first.status, 200);
    assert.equal(first.json.active, true);
    assert.equal(first.json.client_id, CLIENT_ID);
    assert.equal(first.json.sub, idp.users[0].sub);
    assert.ok(String(first.json.scope).split(' ').includes('kong_api_access'));
    assert.equal(typeof first.json.exp, 'number');

    const unauthenticated = await form(`${idp.issuer}/token/introspection`, { token: tokens.access_token });
    assert.equal(unauthenticated.status, 401);

    const revoked = await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: { authorization: basic },
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    assert.equal(revoked.status, 200);
    assert.equal((await introspect()).json.active, false);
  });

  it('introspects refresh tokens through oidc-provider itself', async () => {
    const { json: tokens } = await passwordGrant('Blog_with_scope');
    const res = await form(`${idp.issuer}/token/introspection`, { token: tokens.refresh_token }, { authorization: basic });
    assert.equal(res.status, 200);
    assert.equal(res.json.active, true);
    assert.equal(res.json.client_id, CLIENT_ID);
    assert.equal(res.json.sub, idp.users[0].sub);
    assert.equal(res.json.scope, 'openid kong_api_access');
    const garbage = await form(`${idp.issuer}/token/introspection`, { token: 'not-a-token' }, { authorization: basic });
    assert.equal(garbage.json.active, false);
  });

  it('serves a login page with a real form and nothing from other hosts', async () => {
    const browser = new Browser();
    const page = await browser.follow(authorizeUrl(idp).url, idp.issuer);
    assert.equal(page.res.status, 200);
    assert.match(page.url, new RegExp(`^${idp.issuer}/interaction/`));
    const html = await page.res.text();
    assert.match(html, /name="username"/);
    assert.match(html, /id="password" name="password"/);
    assert.match(html, /<button type="submit"/);
    assert.deepEqual(origins(html).filter((o) => o !== idp.issuer), []);
    assert.ok([...browser.cookies.keys()].length > 0);
    for (const name of browser.cookies.keys()) assert.match(name, /^_demo_idp_/, `cookie ${name}`);
  });

  it('requires PKCE', async () => {
    const browser = new Browser();
    const { url } = authorizeUrl(idp, { code_challenge: '', code_challenge_method: '' });
    const stripped = url.replace(/&code_challenge=&code_challenge_method=/, '');
    const res = await browser.get(stripped);
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get('location')!);
    assert.equal(to.origin + to.pathname, REDIRECT_URI);
    assert.equal(to.searchParams.get('error'), 'invalid_request');
    assert.match(to.searchParams.get('error_description') ?? '', /PKCE/);
    assert.equal(to.searchParams.get('iss'), idp.issuer);
  });

  it('browser login: a wrong password shows the form again with an error', async () => {
    const browser = new Browser();
    const page = await browser.follow(authorizeUrl(idp).url, idp.issuer);
    const action = /action="([^"]+)"/.exec(await page.res.text())![1];
    const res = await browser.get(new URL(action, page.url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'Blog_with_scope', password: 'wrong' }),
    });
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /Invalid username or password/);
    assert.match(html, /name="password"/);
    assert.match(html, /value="Blog_with_scope"/);
  });

  it('browser login as Blog_with_scope: code (with iss) → JWT access token with kong_api_access, ID token, refresh token', async () => {
    const { callback, state, verifier } = await login(idp, 'Blog_with_scope');
    assert.equal(callback.origin + callback.pathname, REDIRECT_URI);
    assert.equal(callback.searchParams.get('state'), state);
    assert.equal(callback.searchParams.get('iss'), idp.issuer); // RFC 9207
    const code = callback.searchParams.get('code');
    assert.ok(code, `callback ${callback}`);

    const { status, json } = await exchange(idp, code, verifier);
    assert.equal(status, 200, JSON.stringify(json));
    const at = claims(json.access_token);
    assert.equal(decodeProtectedHeader(json.access_token).typ, 'at+jwt');
    assert.equal(at.aud, RESOURCE);
    assert.deepEqual(String(at.scope).split(' ').sort(), ['email', 'kong_api_access', 'openid', 'profile']);
    const id = claims(json.id_token);
    assert.equal(id.sub, idp.users[0].sub);
    assert.equal(id.aud, CLIENT_ID);
    assert.equal(id.email, 'blog_with_scope@example.com');
    assert.equal(typeof json.refresh_token, 'string');

    // The refresh token gives a new JWT access token with the same scopes.
    const refreshed = await form(`${idp.issuer}/token`, { grant_type: 'refresh_token', refresh_token: json.refresh_token }, { authorization: basic });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    const at2 = claims(refreshed.json.access_token);
    assert.notEqual(at2.jti, at.jti);
    assert.deepEqual(String(at2.scope).split(' ').sort(), ['email', 'kong_api_access', 'openid', 'profile']);
  });

  it('browser login as Blog_without_scope: the token lacks kong_api_access', async () => {
    const { callback, verifier } = await login(idp, 'Blog_without_scope');
    const code = callback.searchParams.get('code');
    assert.ok(code, `callback ${callback}`);
    const { json } = await exchange(idp, code, verifier);
    const scope = String(claims(json.access_token).scope).split(' ').sort();
    assert.deepEqual(scope, ['email', 'openid', 'profile']);
    assert.equal(claims(json.id_token).sub, idp.users[1].sub);
  });

  it('RP-initiated logout shows a self-contained confirmation page', async () => {
    const { browser, callback, verifier } = await login(idp, 'Blog_with_scope');
    const { json } = await exchange(idp, callback.searchParams.get('code')!, verifier);
    const params = new URLSearchParams({ id_token_hint: json.id_token, post_logout_redirect_uri: REDIRECT_URI, state: 'bye' });
    const res = await browser.get(`${idp.issuer}/session/end?${params}`);
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /id="op\.logoutForm"/);
    assert.match(html, /name="logout"/);
    assert.deepEqual(origins(html).filter((o) => o !== idp.issuer), []);
    assert.doesNotMatch(html, /@import|fonts\.googleapis/);
  });

  it('rotateKeys signs with new keys on the same port and keeps refresh tokens working', async () => {
    const before = await passwordGrant('Blog_with_scope');
    const oldKid = decodeProtectedHeader(before.json.access_token).kid;
    const port = idp.port;
    await idp.rotateKeys();
    const after = await passwordGrant('Blog_with_scope');
    const newKid = decodeProtectedHeader(after.json.access_token).kid;
    assert.notEqual(newKid, oldKid);
    assert.equal(idp.port, port);
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: Json[] };
    const kids = jwks.keys.map((k) => k.kid);
    assert.ok(kids.includes(newKid));
    assert.ok(!kids.includes(oldKid));
    assert.ok(jwks.keys.every((k) => k.d === undefined), 'jwks_uri publishes no private members');
    await jwtVerify(after.json.access_token, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer: idp.issuer });
    // State outlives the provider instance: the old refresh token still works.
    const refreshed = await form(`${idp.issuer}/token`, { grant_type: 'refresh_token', refresh_token: before.json.refresh_token }, { authorization: basic });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    assert.equal(decodeProtectedHeader(refreshed.json.access_token).kid, newKid);
  });
});

describe('echo upstream', () => {
  it('echoes method, path, query, headers and body as JSON', async (t) => {
    const echo = await startEchoUpstream({ port: 0 });
    t.after(() => echo.stop());
    const res = await fetch(`${echo.url}/anything/a/b?x=1&x=2&y=z`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-sub': 'abc' },
      body: JSON.stringify({ hello: 'world' }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as Json;
    assert.equal(body.method, 'POST');
    assert.equal(body.path, '/anything/a/b');
    assert.equal(body.url, '/anything/a/b?x=1&x=2&y=z');
    assert.deepEqual(body.args, { x: ['1', '2'], y: 'z' });
    assert.equal(body.headers['x-user-sub'], 'abc');
    assert.equal(body.body, '{"hello":"world"}');
    assert.deepEqual(body.json, { hello: 'world' });
    assert.equal(body.origin, '127.0.0.1');
  });
});

describe('startDemo', () => {
  it('starts the IdP and echo on free loopback ports and returns the demo config with the real proxy port', async (t) => {
    const env: NodeJS.ProcessEnv = {
      GATEHOUSE_DEMO_IDP_LISTEN: '127.0.0.1:0',
      GATEHOUSE_DEMO_UPSTREAM_LISTEN: '127.0.0.1:0',
      GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0',
      GATEHOUSE_STATUS_LISTEN: '127.0.0.1:0',
      GATEHOUSE_LOG_LEVEL: 'fatal',
    };
    const settings = readGatewaySettings(env);
    const config = await startDemo(settings, createLogger('fatal'), env);
    t.after(stopDemo);
    assert.equal(config.demo, true);
    assert.notEqual(settings.proxyListen.port, 0, 'the proxy port is chosen before the redirect URI is written');
    const plugin = config.declarative.services[0].plugins[0];
    assert.equal(plugin.name, 'openid-connect');
    assert.deepEqual(plugin.config.redirect_uri, [`http://127.0.0.1:${settings.proxyListen.port}/oidc`]);
    assert.equal(plugin.config.issuer, env.GATEHOUSE_DEMO_ISSUER);
    assert.equal(config.issuers.length, 1);

    const discovery = (await (await fetch(`${env.GATEHOUSE_DEMO_ISSUER}/.well-known/openid-configuration`)).json()) as Json;
    assert.equal(discovery.issuer, env.GATEHOUSE_DEMO_ISSUER);
    const echo = (await (await fetch(`${env.GATEHOUSE_DEMO_UPSTREAM_URL}/x`)).json()) as Json;
    assert.equal(echo.path, '/anything/x');

    // The generated client can get a token with the README's command.
    const token = await form(`${env.GATEHOUSE_DEMO_ISSUER}/token`, {
      grant_type: 'password',
      username: 'Blog_with_scope',
      password: DEMO_PASSWORD,
      client_id: 'gatehouse',
      client_secret: env.GATEHOUSE_DEMO_CLIENT_SECRET!,
      scope: 'openid kong_api_access',
    });
    assert.equal(token.status, 200, JSON.stringify(token.json));
    assert.equal(claims(token.json.access_token).aud, `http://127.0.0.1:${settings.proxyListen.port}`);
  });

  it('binds the gateway to loopback by default and sends browsers to http://localhost', async (t) => {
    const env: NodeJS.ProcessEnv = { GATEHOUSE_DEMO_IDP_LISTEN: '127.0.0.1:0', GATEHOUSE_DEMO_UPSTREAM_LISTEN: '127.0.0.1:0', GATEHOUSE_LOG_LEVEL: 'fatal' };
    const settings = readGatewaySettings(env);
    assert.equal(settings.proxyListen.host, '0.0.0.0', 'the production default');
    const config = await startDemo(settings, createLogger('fatal'), env);
    t.after(stopDemo);
    assert.equal(settings.proxyListen.host, '127.0.0.1');
    assert.equal(settings.statusListen.host, '127.0.0.1');
    assert.deepEqual((config.declarative.services[0].plugins[0].config as OpenIdConnectConfig).redirect_uri, [`http://localhost:${settings.proxyListen.port}/oidc`]);
  });
});
