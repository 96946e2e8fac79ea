import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { DEMO_PASSWORD, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const RESOURCE = 'https://blog-api.example';

/**
 * The reference blog configures Kong with three Admin API calls. They are sent
 * here byte for byte as httpie sends them (the first as JSON, the other two
 * form-encoded with `-f`) to a fresh gateway with the embedded store; the only
 * difference is the upstream, a local echo instead of httpbin.org.
 */
describe('the blog\'s three Admin API commands, against a fresh gateway with the embedded store', () => {
  let idp: DemoIdp;
  let upstream: Upstream;
  let gw: GatewayProcess;
  const client = gatehouseClient();
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-blog-'));
  const env = { GATEHOUSE_DATABASE: 'embedded', GATEHOUSE_DATA_DIR: dataDir };

  before(async () => {
    idp = await startDemoIdp({ clients: [client.registration(['http://localhost:8000/oidc'])], resource: RESOURCE });
    upstream = await startUpstream();
    gw = await startGateway({ env });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await idp?.stop();
  });

  async function token(username: string): Promise<string> {
    const res = await request(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username, password: DEMO_PASSWORD, client_id: client.id, client_secret: client.secret, scope: 'openid profile email kong_api_access' }).toString(),
    });
    assert.equal(res.statusCode, 200);
    return ((await res.body.json()) as { access_token: string }).access_token;
  }

  /** What `http POST url a=b` sends (JSON), and what `http -f POST url a=b` sends (a form). */
  async function httpie(path: string, items: [string, string][], form: boolean) {
    const res = await request(`${gw.adminUrl}${path}`, {
      method: 'POST',
      headers: form
        ? { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: '*/*' }
        : { 'content-type': 'application/json', accept: 'application/json, */*;q=0.5' },
      body: form ? new URLSearchParams(items).toString() : JSON.stringify(Object.fromEntries(items)),
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, any> };
  }

  const call = async (bearer: string) => {
    const res = await request(`${gw.proxyUrl}/oidc`, { headers: { authorization: `Bearer ${bearer}` } });
    return { status: res.statusCode, body: await res.body.text() };
  };

  async function scenarioHolds(g: GatewayProcess) {
    const allowed = await call(await token('Blog_with_scope'));
    assert.equal(allowed.status, 200, allowed.body);
    assert.equal(JSON.parse(allowed.body).url.startsWith('/anything'), true);
    const refused = await call(await token('Blog_without_scope'));
    assert.equal(refused.status, 403);
    assert.deepEqual(JSON.parse(refused.body), { message: 'Forbidden' });
    const line = await g.waitForLog((l) => l.msg === 'required scopes were not found [ openid, profile, email ]' && l.route === 'openidconnectRoute');
    assert.equal(line.level, 'warn');
  }

  it('creates the service, the route and the plugin, and the route works at once (no restart)', async () => {
    const before = await request(`${gw.proxyUrl}/oidc`);
    assert.equal(before.statusCode, 404);
    await before.body.dump();

    const service = await httpie('/services', [['name', 'openidconnect'], ['url', `${upstream.url}/anything`]], false);
    assert.equal(service.status, 201, JSON.stringify(service.body));
    assert.equal(service.body.name, 'openidconnect');
    assert.equal(service.body.path, '/anything');
    assert.equal(service.body.protocol, 'http');

    const route = await httpie('/services/openidconnect/routes', [['name', 'openidconnectRoute'], ['paths', '/oidc']], true);
    assert.equal(route.status, 201, JSON.stringify(route.body));
    assert.deepEqual(route.body.paths, ['/oidc']);
    assert.deepEqual(route.body.service, { id: service.body.id });
    assert.equal(route.body.strip_path, true);

    const plugin = await httpie(
      '/routes/openidconnectRoute/plugins',
      [
        ['name', 'openid-connect'],
        ['config.issuer', idp.issuer],
        ['config.client_id', client.id],
        ['config.client_secret', client.secret],
        ['config.redirect_uri', 'http://localhost:8000/oidc'],
        ['config.consumer_optional', 'true'],
        ['config.scopes_required', 'kong_api_access'],
      ],
      true,
    );
    assert.equal(plugin.status, 201, JSON.stringify(plugin.body));
    assert.deepEqual(plugin.body.config.scopes_required, ['kong_api_access']);
    assert.equal(plugin.body.config.consumer_optional, true);
    assert.deepEqual(plugin.body.route, { id: route.body.id });

    await scenarioHolds(gw);
    const audit = gw.logs().filter((l) => l.msg === 'admin change');
    assert.deepEqual(audit.map((l) => [l.action, l.entity, l.actor]), [['create', 'services', 'local'], ['create', 'routes', 'local'], ['create', 'plugins', 'local']]);
    assert.ok(!JSON.stringify(audit).includes(client.secret), 'the audit log never carries a secret');
  });

  it('still works after a restart: the embedded store kept it', async () => {
    await gw.stop();
    gw = await startGateway({ env });
    await scenarioHolds(gw);
    const listed = await request(`${gw.adminUrl}/routes`);
    const body = (await listed.body.json()) as { data: { name: string }[] };
    assert.deepEqual(body.data.map((r) => r.name), ['openidconnectRoute']);
  });
});
