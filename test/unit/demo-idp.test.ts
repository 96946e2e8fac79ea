import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadDeclarativeConfigFile } from '../../src/config/config.loader.js';
import { publicJwks, generateSigningKeys } from '../../src/demo/idp/index.js';
import { errorPage, escapeHtml, loginPage } from '../../src/demo/idp/login-page.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DEMO_YAML = resolve(ROOT, 'config/demo.yaml');
const KEYCLOAK_YAML = resolve(ROOT, 'config/examples/keycloak.yaml');

const demoEnv = (): NodeJS.ProcessEnv => ({
  GATEHOUSE_DEMO_ISSUER: 'http://127.0.0.1:8180',
  GATEHOUSE_DEMO_UPSTREAM_URL: 'http://127.0.0.1:8280/anything',
  GATEHOUSE_DEMO_CLIENT_SECRET: 'client-secret-value-123',
  GATEHOUSE_DEMO_SESSION_SECRET: 'session-secret-value-at-least-32-characters-long',
  GATEHOUSE_DEMO_REDIRECT_URI: 'http://localhost:8000/oidc',
  GATEHOUSE_DEMO_LOGOUT_REDIRECT_URI: 'http://localhost:8000/oidc',
  GATEHOUSE_DEMO_AUDIENCE: 'http://localhost:8000',
});

const keycloakEnv = (): NodeJS.ProcessEnv => ({
  OIDC_CLIENT_SECRET: 'keycloak-client-secret',
  GATEHOUSE_SESSION_SECRET: 'another-session-secret-of-32-characters-or-more',
});

async function loadError(file: string, env: NodeJS.ProcessEnv): Promise<ConfigError> {
  try {
    await loadDeclarativeConfigFile(file, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('the config loaded although a variable is missing');
}

describe('config/demo.yaml', () => {
  it('loads through the declarative loader with the demo variables set', async () => {
    const { config } = await loadDeclarativeConfigFile(DEMO_YAML, demoEnv());
    assert.equal(config.services.length, 1);
    const service = config.services[0];
    assert.equal(service.name, 'openidconnect');
    assert.equal(service.routes.length, 1);
    assert.equal(service.routes[0].name, 'openidconnectRoute');
    assert.deepEqual(service.routes[0].paths, ['/oidc']);
    const plugin = service.plugins.find((p) => p.name === 'openid-connect');
    assert.ok(plugin, 'openid-connect plugin on the service');
    const c = plugin.config;
    assert.equal(c.issuer, 'http://127.0.0.1:8180');
    assert.deepEqual(c.client_id, ['gatehouse']);
    assert.deepEqual(c.client_secret, ['client-secret-value-123']);
    assert.deepEqual(c.redirect_uri, ['http://localhost:8000/oidc']);
    assert.equal(c.consumer_optional, true);
    assert.deepEqual(c.scopes_required, ['kong_api_access']);
    assert.deepEqual(c.scopes, ['openid', 'profile', 'email', 'kong_api_access']);
    assert.deepEqual(c.auth_methods, ['authorization_code', 'session', 'bearer', 'refresh_token']);
    assert.equal(c.session_secret, 'session-secret-value-at-least-32-characters-long');
    assert.deepEqual(c.upstream_headers_claims, ['sub', 'email']);
    assert.deepEqual(c.upstream_headers_names, ['x-user-sub', 'x-user-email']);
  });

  it('names the missing variable and never echoes the resolved secrets', async () => {
    const env = demoEnv();
    delete env.GATEHOUSE_DEMO_CLIENT_SECRET;
    const err = await loadError(DEMO_YAML, env);
    assert.match(err.message, /GATEHOUSE_DEMO_CLIENT_SECRET/);
    assert.ok(err.problems.some((p) => p.path.includes('client_secret')), JSON.stringify(err.problems));
    assert.doesNotMatch(err.message, /session-secret-value/);
  });

  it('reports every missing variable at once', async () => {
    const err = await loadError(DEMO_YAML, {});
    for (const name of ['GATEHOUSE_DEMO_ISSUER', 'GATEHOUSE_DEMO_UPSTREAM_URL', 'GATEHOUSE_DEMO_CLIENT_SECRET', 'GATEHOUSE_DEMO_SESSION_SECRET', 'GATEHOUSE_DEMO_REDIRECT_URI']) {
      assert.match(err.message, new RegExp(name));
    }
  });
});

describe('config/examples/keycloak.yaml', () => {
  it('loads with OIDC_CLIENT_SECRET and GATEHOUSE_SESSION_SECRET set', async () => {
    const { config } = await loadDeclarativeConfigFile(KEYCLOAK_YAML, keycloakEnv());
    const service = config.services[0];
    assert.equal(service.name, 'openidconnect');
    assert.deepEqual(service.routes[0].paths, ['/oidc']);
    const plugin = service.plugins.find((p) => p.name === 'openid-connect');
    assert.ok(plugin);
    assert.equal(plugin.config.issuer, 'http://keycloak.example:8080/realms/demo');
    assert.deepEqual(plugin.config.client_secret, ['keycloak-client-secret']);
    assert.deepEqual(plugin.config.roles_claim, ['realm_access', 'roles']);
    assert.deepEqual(plugin.config.scopes_required, ['kong_api_access']);
  });

  it('names OIDC_CLIENT_SECRET when it is not set', async () => {
    const env = keycloakEnv();
    delete env.OIDC_CLIENT_SECRET;
    const err = await loadError(KEYCLOAK_YAML, env);
    assert.match(err.message, /OIDC_CLIENT_SECRET/);
    assert.doesNotMatch(err.message, /GATEHOUSE_SESSION_SECRET/);
  });
});

describe('demo IdP pages and keys', () => {
  it('escapes everything interpolated into HTML', () => {
    assert.equal(escapeHtml(`<a href="x" onclick='y'>&`), '&#60;a href&#61;&#34;x&#34; onclick&#61;&#39;y&#39;&#62;&#38;');
    const page = loginPage({ action: '/interaction/abc/login', clientName: '<script>alert(1)</script>', username: '"><img src=x>', error: 'bad' });
    assert.doesNotMatch(page, /<script>alert/);
    assert.doesNotMatch(page, /"><img/);
    assert.match(errorPage({ error: '<b>' }), /&#60;b&#62;/);
  });

  it('renders a login form with username, password and a submit button, and no URL', () => {
    const page = loginPage({ action: '/interaction/abc/login', clientName: 'gw', error: 'Invalid username or password.' });
    assert.match(page, /<form method="post" action="\/interaction\/abc\/login"/);
    assert.match(page, /<input type="text" id="username" name="username"/);
    assert.match(page, /<input type="password" id="password" name="password"/);
    assert.match(page, /<button type="submit"/);
    assert.match(page, /Invalid username or password\./);
    assert.doesNotMatch(page, /https?:\/\//);
    assert.doesNotMatch(page, /@import|<link|<script/);
  });

  it('generates an RS256 and an ES256 key whose public halves carry no private members', async () => {
    const set = await generateSigningKeys();
    assert.deepEqual(set.keys.map((k) => [k.kty, k.alg]), [['RSA', 'RS256'], ['EC', 'ES256']]);
    assert.ok(set.keys.every((k) => typeof k.kid === 'string' && k.kid.length > 20 && typeof k.d === 'string'));
    const pub = publicJwks(set);
    for (const k of pub.keys) for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(m in k, false, `${k.kty} public key has ${m}`);
    assert.deepEqual(pub.keys.map((k) => k.kid), set.keys.map((k) => k.kid));
  });
});
