import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadDeclarativeConfigFile, parseDeclarativeConfig } from '../../src/config/config.loader.js';
import type { OpenIdConnectConfig } from '../../src/config/openid-connect.schema.js';

/**
 * The declarative schema and its error messages. Each file in
 * test/fixtures/config/invalid/ has a sibling `<name>.expected.txt` listing
 * exactly the problems the loader must report, one `path: message` per line
 * (`#` lines are comments). Files in valid/ must load.
 */

// dist/test/unit → project root: fixtures are read from the source tree, not compiled.
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/config');
const CONFIG_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

const SECRET = 'c0rrect-h0rse-battery-staple';
const SESSION_SECRET = 'x'.repeat(16) + 'session-secret-32-bytes!';
const ENV: NodeJS.ProcessEnv = {
  GATEHOUSE_TEST_SECRET: SECRET,
  GATEHOUSE_TEST_EMPTY: '',
  OIDC_CLIENT_SECRET: SECRET,
  GATEHOUSE_SESSION_SECRET: SESSION_SECRET,
};

function configFiles(folder: string): string[] {
  return readdirSync(join(FIXTURES, folder))
    .filter((f) => CONFIG_EXTENSIONS.has(extname(f)))
    .sort();
}

function problemLines(err: ConfigError): string[] {
  return err.problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
}

function expectConfigError(text: string, source: string, env: NodeJS.ProcessEnv = ENV): ConfigError {
  try {
    parseDeclarativeConfig(text, source, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${source} loaded, but it is invalid`);
}

describe('invalid configs: every expected problem, and only those', () => {
  const files = configFiles('invalid');

  it('has fixtures, YAML and JSON, each with a unique name', () => {
    assert.ok(files.length >= 15, `only ${files.length} invalid fixtures`);
    assert.ok(files.some((f) => f.endsWith('.json')), 'no JSON fixture');
    const names = files.map((f) => f.slice(0, -extname(f).length));
    assert.equal(new Set(names).size, names.length, 'two fixtures share a name, so they would share an expected.txt');
  });

  for (const file of files) {
    it(file, () => {
      const name = file.slice(0, -extname(file).length);
      const expected = readFileSync(join(FIXTURES, 'invalid', `${name}.expected.txt`), 'utf8')
        .split('\n')
        .map((l) => l.trimEnd())
        .filter((l) => l && !l.startsWith('#'));
      assert.ok(expected.length > 0, `${name}.expected.txt lists no problem`);

      const err = expectConfigError(readFileSync(join(FIXTURES, 'invalid', file), 'utf8'), file);
      const actual = problemLines(err);
      for (const line of expected) assert.ok(actual.includes(line), `missing problem:\n  ${line}\nreported:\n  ${actual.join('\n  ')}`);
      assert.deepEqual([...actual].sort(), [...expected].sort(), 'reported problems differ from the expected list');

      // The thrown message (what main.ts prints) lists the same lines under the file name.
      assert.equal(err.code, 'GATEHOUSE_CONFIG_INVALID');
      assert.ok(err.message.startsWith(`${file}: ${expected.length} problem`), err.message);
      for (const line of expected) assert.ok(err.message.includes(`\n  ${line}`), `message lacks ${line}`);
      // No fixture may echo the value of a variable that is set.
      assert.ok(!err.message.includes(SECRET), 'a resolved secret leaked into the error');
      assert.ok(!JSON.stringify(err.problems).includes(SECRET), 'a resolved secret leaked into a problem');
    });
  }
});

describe('vault references', () => {
  const doc = (issuer: string) => `
_format_version: "3.0"
services:
  - name: api
    url: http://upstream.internal
    routes: [{ name: r, paths: [/r] }]
    plugins:
      - name: openid-connect
        config:
          issuer: ${issuer}
          auth_methods: [bearer]
          client_id: [gatehouse]
          client_secret: ["{vault://env/GATEHOUSE_TEST_CLIENT_SECRET}"]
`;

  it('a missing variable is a problem naming the variable', () => {
    const err = expectConfigError(doc('http://idp.internal'), 'vault.yaml', {});
    assert.deepEqual(problemLines(err), [
      'services[0].plugins[0].config.client_secret[0]: environment variable GATEHOUSE_TEST_CLIENT_SECRET is not set (referenced as {vault://env/GATEHOUSE_TEST_CLIENT_SECRET})',
    ]);
  });

  it('a present variable is resolved into the config', () => {
    const config = parseDeclarativeConfig(doc('http://idp.internal'), 'vault.yaml', { GATEHOUSE_TEST_CLIENT_SECRET: SECRET });
    const plugin = config.services[0].plugins[0];
    assert.equal(plugin.name, 'openid-connect');
    assert.deepEqual(plugin.config.client_secret, [SECRET]);
  });

  it('the value of a present variable never appears in a problem, even where a message quotes the value', () => {
    const value = 'hunter2-secret-value';
    // The secret becomes a service reference and an issuer: values messages might quote.
    const text =
      doc('"{vault://env/GATEHOUSE_TEST_CLIENT_SECRET}"') +
      'routes:\n  - { name: t, service: "{vault://env/GATEHOUSE_TEST_CLIENT_SECRET}", paths: [/t] }\n';
    const err = expectConfigError(text, 'vault.yaml', { GATEHOUSE_TEST_CLIENT_SECRET: value });
    assert.deepEqual(problemLines(err).sort(), [
      'routes[0].service: no service named "[redacted]"',
      'services[0].plugins[0].config.issuer: must be an http(s) URL',
    ]);
    assert.ok(!err.message.includes(value), err.message);
  });
});

describe('loading files', () => {
  it('an unreadable file is a ConfigError naming the reason', async () => {
    const missing = join(FIXTURES, 'does-not-exist.yaml');
    await assert.rejects(loadDeclarativeConfigFile(missing, ENV), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(problemLines(err), ['cannot read the file (ENOENT)']);
      assert.ok(err.message.startsWith(`${missing}: 1 problem in the declarative config`));
      return true;
    });
  });

  it('a file is read as JSON or YAML by its extension', async () => {
    const loaded = await loadDeclarativeConfigFile(join(FIXTURES, 'valid', 'top-level.json'), ENV);
    assert.equal(loaded.source, join(FIXTURES, 'valid', 'top-level.json'));
    assert.equal(loaded.config.routes[0].name, 'orders-route');
    // The same JSON text named .yaml also loads (YAML is a superset), and a YAML text named .json does not.
    const json = readFileSync(join(FIXTURES, 'valid', 'top-level.json'), 'utf8');
    assert.equal(parseDeclarativeConfig(json, 'as.yaml', ENV).routes[0].name, 'orders-route');
    const yaml = readFileSync(join(FIXTURES, 'valid', 'minimal.yaml'), 'utf8');
    assert.match(problemLines(expectConfigError(yaml, 'as.json'))[0], /^not valid JSON: /);
  });
});

describe('valid configs load with defaults applied', () => {
  const load = (file: string) => parseDeclarativeConfig(readFileSync(join(FIXTURES, 'valid', file), 'utf8'), file, ENV);

  for (const file of configFiles('valid')) {
    it(`${file} loads`, () => {
      const config = load(file);
      assert.ok(config.services.length > 0);
    });
  }

  it('minimal.yaml: service and route defaults', () => {
    const config = load('minimal.yaml');
    assert.equal(config._format_version, '3.0');
    assert.deepEqual(config.routes, []);
    assert.deepEqual(config.plugins, []);
    const [service] = config.services;
    assert.equal(service.url, 'http://upstream.internal:8080');
    assert.equal(service.connect_timeout, 60000);
    assert.equal(service.read_timeout, 60000);
    assert.equal(service.write_timeout, 60000);
    assert.equal(service.retries, 5);
    assert.equal(service.enabled, true);
    assert.deepEqual(service.plugins, []);
    const [route] = service.routes;
    assert.equal(route.strip_path, true);
    assert.equal(route.preserve_host, false);
    assert.equal(route.regex_priority, 0);
    assert.deepEqual(route.protocols, ['http', 'https']);
    assert.deepEqual(route.plugins, []);
  });

  it('kong-reference.yaml: openid-connect defaults and resolved secrets', () => {
    const config = load('kong-reference.yaml');
    const plugin = config.services[0].plugins[0];
    assert.equal(plugin.name, 'openid-connect');
    assert.equal(plugin.enabled, true);
    const c = plugin.config;
    assert.equal(c.issuer, 'http://keycloak.internal:8080/realms/demo');
    assert.deepEqual(c.client_secret, [SECRET]);
    assert.equal(c.session_secret, SESSION_SECRET);
    assert.deepEqual(c.scopes_required, ['kong_api_access']);
    assert.deepEqual(c.scopes_claim, ['scope']);
    assert.deepEqual(c.audience_claim, ['aud']);
    assert.deepEqual(c.roles_claim, ['roles']);
    assert.deepEqual(c.groups_claim, ['groups']);
    assert.deepEqual(c.credential_claim, ['sub']);
    assert.deepEqual(c.scopes, ['openid']);
    assert.deepEqual(c.client_auth, ['client_secret_basic']);
    assert.deepEqual(c.bearer_token_param_type, ['header']);
    assert.equal(c.upstream_access_token_header, 'authorization:bearer');
    assert.equal(c.session_cookie_name, 'session');
    assert.equal(c.session_idling_timeout, 900);
    assert.equal(c.session_rolling_timeout, 3600);
    assert.equal(c.session_absolute_timeout, 86400);
    assert.equal(c.session_cookie_same_site, 'Lax');
    assert.equal(c.session_cookie_http_only, true);
    assert.equal(c.unauthorized_error_message, 'Unauthorized');
    assert.equal(c.forbidden_error_message, 'Forbidden');
    assert.equal(c.leeway, 0);
    assert.equal(c.verify_signature, true);
    assert.equal(c.run_on_preflight, true);
  });

  it('parts-and-top-level.yaml: explicit values win, references become names', () => {
    const config = load('parts-and-top-level.yaml');
    const [service] = config.services;
    assert.equal(service.url, undefined);
    assert.equal(service.protocol, 'https');
    assert.equal(service.port, 8443);
    assert.equal(service.connect_timeout, 1000);
    assert.equal(service.read_timeout, 2000);
    assert.equal(service.write_timeout, 3000);
    assert.equal(service.retries, 0);
    const [route] = service.routes;
    assert.equal(route.strip_path, false);
    assert.equal(route.preserve_host, true);
    assert.equal(route.regex_priority, 10);
    assert.equal(config.routes[0].service, 'billing', '{ name: billing } is read as the name');
    assert.equal(config.plugins[0].service, 'billing');
    assert.deepEqual((config.plugins[0].config as OpenIdConnectConfig).auth_methods, ['bearer', 'introspection']);
  });

  it('top-level.json: a route-scoped global plugin keeps its scope', () => {
    const config = load('top-level.json');
    assert.equal(config.routes[0].strip_path, false);
    assert.equal(config.routes[0].preserve_host, false);
    assert.equal(config.plugins[0].route, 'orders-route');
    assert.equal(config.plugins[0].service, undefined);
    assert.deepEqual((config.plugins[0].config as OpenIdConnectConfig).scopes_required, ['orders:read']);
  });
});
