import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coerceEntityBody, parseFormBody } from '../../src/admin/admin-body.js';
import { fieldsTree, schemaViolation } from '../../src/admin/admin.errors.js';
import { documentWithIds, EntityState, stableUuid } from '../../src/admin/admin-entities.js';
import { readGatewaySettings, SettingsError } from '../../src/config/gateway-settings.js';

describe('admin form bodies, read as Kong reads them', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['name=r&paths=/oidc', { name: 'r', paths: '/oidc' }],
    ['paths[]=/a&paths[]=/b', { paths: ['/a', '/b'] }],
    ['paths=/a&paths=/b', { paths: ['/a', '/b'] }],
    ['config.scopes_required=kong_api_access&config.consumer_optional=true', { config: { scopes_required: 'kong_api_access', consumer_optional: 'true' } }],
    ['config[origins]=https%3A%2F%2Fa.example', { config: { origins: 'https://a.example' } }],
  ];
  for (const [form, parsed] of cases) it(`parses ${form}`, () => assert.deepEqual(parseFormBody(form), parsed));

  it('types string values by the declarative schema: arrays, booleans, numbers; unclear values stay strings', () => {
    assert.deepEqual(coerceEntityBody('routes', { paths: '/oidc', strip_path: 'false', regex_priority: '3', name: '123' }), { paths: ['/oidc'], strip_path: false, regex_priority: 3, name: '123' });
    assert.deepEqual(coerceEntityBody('services', { port: '8080', retries: 'x' }), { port: 8080, retries: 'x' });
    assert.deepEqual(
      coerceEntityBody('plugins', { name: 'openid-connect', config: { client_id: 'gatehouse', consumer_optional: 'true', scopes_required: 'kong_api_access', leeway: '5' } }),
      { name: 'openid-connect', config: { client_id: ['gatehouse'], consumer_optional: true, scopes_required: ['kong_api_access'], leeway: 5 } },
    );
  });
});

describe('admin errors and entities', () => {
  it('Kong\'s schema violation: fields shaped like the entity, the loader\'s paths in the message', () => {
    const tree = fieldsTree([{ path: 'config.issuer', message: 'is required' }, { path: 'paths[1]', message: 'bad' }, { path: '', message: 'whole' }]) as any;
    assert.deepEqual(tree.config, { issuer: 'is required' });
    assert.equal(tree.paths[1], 'bad');
    assert.deepEqual(tree['@entity'], ['whole']);
    assert.equal(schemaViolation([{ path: 'name', message: 'x' }]).body.message, 'schema violation (name: x)');
  });

  it('gives entities of a file without ids stable ids, and nests the document back', () => {
    const file = { _format_version: '3.0', services: [{ name: 's', url: 'http://u', routes: [{ name: 'r', paths: ['/r'], plugins: [{ name: 'cors' }] }] }], plugins: [{ name: 'rate-limiting', route: 'r', service: 's' }] };
    const a = documentWithIds(file);
    const b = documentWithIds(file);
    assert.deepEqual(a, b);
    const state = EntityState.fromDocument(a);
    assert.equal(state.find('services', 's')!.id, stableUuid('service:s'));
    assert.equal(state.plugins.size, 2);
    assert.deepEqual(EntityState.fromDocument(state.toDocument().document).toDocument().document, state.toDocument().document);
  });
});

describe('admin settings', () => {
  it('defaults to 127.0.0.1:8001 without auth; off disables', () => {
    const s = readGatewaySettings({});
    assert.deepEqual(s.adminListen, { host: '127.0.0.1', port: 8001 });
    assert.equal(s.adminAuth, undefined);
    assert.equal(readGatewaySettings({ GATEHOUSE_ADMIN_LISTEN: 'off' }).adminListen, undefined);
  });

  it('refuses an exposed listener without an issuer, and an issuer without an audience', () => {
    assert.throws(() => readGatewaySettings({ GATEHOUSE_ADMIN_LISTEN: '0.0.0.0:8001' }), (e: SettingsError) => /listens beyond loopback/.test(e.message));
    assert.throws(() => readGatewaySettings({ GATEHOUSE_ADMIN_ISSUER: 'https://idp.example' }), (e: SettingsError) => /GATEHOUSE_ADMIN_AUDIENCE: is required/.test(e.message));
    const s = readGatewaySettings({ GATEHOUSE_ADMIN_LISTEN: '0.0.0.0:8001', GATEHOUSE_ADMIN_ISSUER: 'https://idp.example', GATEHOUSE_ADMIN_AUDIENCE: 'admin' });
    assert.deepEqual(s.adminAuth, { issuer: 'https://idp.example', audience: 'admin' });
  });
});
