import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configWarnings } from '../../src/config/config-warnings.js';
import { ConfigError, parseDeclarativeConfig } from '../../src/config/config.loader.js';

const ISSUER = 'https://idp.example/realms/x';

function load(plugin: Record<string, unknown>, where: 'service' | 'global' = 'service') {
  const doc = {
    _format_version: '3.0',
    services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: 'r', paths: ['/r'] }], plugins: where === 'service' ? [{ name: 'openid-connect', config: { issuer: ISSUER, ...plugin } }] : [] }],
    plugins: where === 'global' ? [{ name: 'openid-connect', config: { issuer: ISSUER, ...plugin } }] : [],
  };
  return parseDeclarativeConfig(JSON.stringify(doc), 'kong.json', {});
}

describe('start-time warnings about openid-connect settings', () => {
  const cases: { name: string; config: Record<string, unknown>; path?: string; match?: RegExp }[] = [
    { name: 'no audience on a bearer route', config: { auth_methods: ['bearer'] }, path: 'services[0].plugins[0].config.audience', match: /^SECURITY: no audience configured/ },
    { name: 'no audience on an introspection route', config: { auth_methods: ['introspection'], client_id: ['c'], client_secret: ['s'] }, path: 'services[0].plugins[0].config.audience', match: /RFC 9068/ },
    { name: 'signatures not verified', config: { auth_methods: ['bearer'], audience: ['a'], verify_signature: false }, path: 'services[0].plugins[0].config.verify_signature', match: /NOT checked/ },
    { name: 'display_errors', config: { auth_methods: ['bearer'], audience: ['a'], display_errors: true }, path: 'services[0].plugins[0].config.display_errors', match: /error_description/ },
    { name: 'consumer_optional false', config: { auth_methods: ['bearer'], audience: ['a'], consumer_optional: false }, path: 'services[0].plugins[0].config.consumer_optional', match: /manages no consumers/ },
    { name: 'consumer_claim', config: { auth_methods: ['bearer'], audience: ['a'], consumer_claim: ['sub'] }, path: 'services[0].plugins[0].config.consumer_claim', match: /no effect/ },
  ];
  for (const c of cases) {
    it(`warns: ${c.name}`, () => {
      const warnings = configWarnings(load(c.config));
      const w = warnings.find((x) => x.path === c.path);
      assert.ok(w, `expected a warning at ${c.path}, got ${JSON.stringify(warnings)}`);
      assert.match(w!.message, c.match!);
    });
  }

  it('says nothing about a route that names its audience, or requires one', () => {
    assert.deepEqual(configWarnings(load({ auth_methods: ['bearer'], audience: ['https://api.example'] })), []);
    assert.deepEqual(configWarnings(load({ auth_methods: ['bearer'], audience_required: ['https://api.example'] })), []);
  });

  it('names global plugins by their own path', () => {
    const warnings = configWarnings(load({ auth_methods: ['bearer'] }, 'global'));
    assert.deepEqual(warnings.map((w) => w.path), ['plugins[0].config.audience']);
  });

  it('refuses verify_claims and verify_nonce false instead of ignoring them', () => {
    for (const key of ['verify_claims', 'verify_nonce']) {
      assert.throws(
        () => load({ auth_methods: ['bearer'], [key]: false }),
        (err: unknown) => err instanceof ConfigError && err.message.includes(`services[0].plugins[0].config.${key}`) && /always verifies/.test(err.message),
      );
    }
  });
});
