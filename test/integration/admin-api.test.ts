import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

type Res = { status: number; body: any; headers: Record<string, unknown> };

function client(base: () => string) {
  return async (method: string, path: string, body?: unknown, type = 'application/json'): Promise<Res> => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : type.includes('json') ? JSON.stringify(body) : new URLSearchParams(body as Record<string, string>).toString();
    const res = await request(`${base()}${path}`, { method: method as 'GET', headers: payload === undefined ? {} : { 'content-type': type }, body: payload });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
}

describe('Admin API with the embedded store: every endpoint and Kong\'s error shapes', () => {
  let gw: GatewayProcess;
  let upstream: Upstream;
  const admin = client(() => gw.adminUrl!);

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({ env: { GATEHOUSE_DATABASE: 'embedded' } });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('GET / and GET /status describe the node', async () => {
    const info = await admin('GET', '/');
    assert.equal(info.status, 200);
    assert.match(info.body.version, /^\d+\.\d+\.\d+/);
    assert.ok(info.body.plugins.available_on_server['openid-connect']);
    assert.equal(info.body.configuration.database, 'embedded');
    const status = await admin('GET', '/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.database.reachable, true);
    assert.match(status.body.configuration_hash, /^[0-9a-f]{32}$/);
  });

  it('creates, reads (by id and name), lists with paging and tags, updates, upserts and deletes services', async () => {
    const a = await admin('POST', '/services', { name: 'a', url: `${upstream.url}/a`, tags: ['team-x', 'blue'] });
    assert.equal(a.status, 201);
    assert.match(a.body.id, /^[0-9a-f-]{36}$/);
    assert.equal(typeof a.body.created_at, 'number');
    assert.deepEqual([a.body.protocol, a.body.port, a.body.path], ['http', Number(new URL(upstream.url).port), '/a']);
    assert.equal(a.body.retries, 5, 'Kong\'s defaults are filled in on read');
    const b = await admin('POST', '/services', 'name=b&host=127.0.0.1&port=' + new URL(upstream.url).port + '&tags=team-x', 'application/x-www-form-urlencoded');
    assert.equal(b.status, 201, JSON.stringify(b.body));
    assert.equal(b.body.port, Number(new URL(upstream.url).port), 'a form value is read as the schema\'s number');
    assert.deepEqual(b.body.tags, ['team-x'], 'a single form value for an array field');
    assert.deepEqual((await admin('GET', `/services/${a.body.id}`)).body.name, 'a');
    assert.deepEqual((await admin('GET', '/services/a')).body.id, a.body.id);

    const page1 = await admin('GET', '/services?size=1');
    assert.equal(page1.body.data.length, 1);
    assert.ok(page1.body.next.startsWith('/services?offset='));
    const page2 = await admin('GET', page1.body.next);
    assert.equal(page2.body.data[0].name, 'b');
    assert.equal(page2.body.next, null);
    assert.deepEqual((await admin('GET', '/services?tags=team-x,blue')).body.data.map((s: any) => s.name), ['a']);
    assert.deepEqual((await admin('GET', '/services?tags=blue/team-x')).body.data.map((s: any) => s.name), ['a', 'b']);

    const patched = await admin('PATCH', '/services/b', { retries: 2 });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.retries, 2);
    assert.ok(patched.body.updated_at >= patched.body.created_at);
    const put = await admin('PUT', '/services/c', { url: `${upstream.url}/c` });
    assert.equal(put.status, 200);
    assert.equal(put.body.name, 'c');
    assert.equal((await admin('DELETE', '/services/c')).status, 204);
    assert.equal((await admin('GET', '/services/c')).status, 404);
    assert.equal((await admin('DELETE', '/services/c')).status, 204, 'Kong: deleting what is not there is 204');
  });

  it('routes and plugins, nested under services and routes; the proxy follows every change', async () => {
    const r = await admin('POST', '/services/a/routes', 'name=ra&paths[]=/ra&methods=GET', 'application/x-www-form-urlencoded');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual([r.body.paths, r.body.methods, r.body.strip_path, r.body.preserve_host, r.body.protocols], [['/ra'], ['GET'], true, false, ['http', 'https']]);
    const proxied = await request(`${gw.proxyUrl}/ra/x`);
    assert.equal(proxied.statusCode, 200);
    await proxied.body.dump();
    assert.deepEqual((await admin('GET', '/services/a/routes')).body.data.map((x: any) => x.name), ['ra']);

    const cors = await admin('POST', '/routes/ra/plugins', 'name=cors&config.origins=https://app.example&config.credentials=true', 'application/x-www-form-urlencoded');
    assert.equal(cors.status, 201, JSON.stringify(cors.body));
    assert.deepEqual(cors.body.config.origins, ['https://app.example']);
    assert.equal(cors.body.config.credentials, true);
    assert.deepEqual(cors.body.route, { id: r.body.id });
    assert.equal(cors.body.service, null);
    const svcPlugin = await admin('POST', '/services/a/plugins', { name: 'rate-limiting', config: { minute: 100, policy: 'local' } });
    assert.equal(svcPlugin.status, 201, JSON.stringify(svcPlugin.body));
    assert.deepEqual((await admin('GET', '/routes/ra/plugins')).body.data.map((p: any) => p.name), ['cors']);
    assert.deepEqual((await admin('GET', '/services/a/plugins')).body.data.map((p: any) => p.name), ['rate-limiting']);
    assert.equal((await admin('GET', '/plugins')).body.data.length, 2);
    const patched = await admin('PATCH', `/plugins/${svcPlugin.body.id}`, 'config.minute=50', 'application/x-www-form-urlencoded');
    assert.equal(patched.body.config.minute, 50);
    assert.equal(patched.body.config.policy, 'local', 'a PATCHed config is merged');
    assert.ok((await admin('GET', '/plugins/enabled')).body.enabled_plugins.includes('proxy-cache'));

    // A route's plugins go with it; a service still used by a route is refused.
    const fk = await admin('DELETE', '/services/a');
    assert.equal(fk.status, 400);
    assert.deepEqual(fk.body, { code: 4, name: 'foreign key violation', message: "an existing 'routes' entity references this 'services' entity", fields: { '@referenced_by': 'routes' } });
    assert.equal((await admin('DELETE', '/routes/ra')).status, 204);
    assert.deepEqual((await admin('GET', '/plugins')).body.data.map((p: any) => p.name), ['rate-limiting']);
    const gone = await request(`${gw.proxyUrl}/ra/x`);
    assert.equal(gone.statusCode, 404);
    await gone.body.dump();
  });

  it('answers Kong\'s errors: 400 schema violation, 409 unique, 404, 405, 415, bad JSON', async () => {
    const bad = await admin('POST', '/services/b/routes', { name: 'bad', paths: ['nope'], strip_path: 'yes' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 2);
    assert.equal(bad.body.name, 'schema violation');
    assert.equal(bad.body.message, '2 schema violations (paths[0]: must start with "/" or "~"; strip_path: must be true or false (got a string))');
    assert.deepEqual(bad.body.fields, { paths: ['must start with "/" or "~"'], strip_path: 'must be true or false (got a string)' });
    const oidc = await admin('POST', '/plugins', { name: 'openid-connect', config: {} });
    assert.equal(oidc.status, 400);
    assert.equal(oidc.body.fields.config.issuer, 'is required');

    const dup = await admin('POST', '/services', { name: 'b', url: 'http://127.0.0.1:1' });
    assert.equal(dup.status, 409);
    assert.deepEqual(dup.body, { code: 5, name: 'unique constraint violation', message: `UNIQUE violation detected on '{name="b"}'`, fields: { name: 'b' } });
    assert.deepEqual(await admin('GET', '/services/nope'), { status: 404, body: { message: 'Not found' }, headers: (await admin('GET', '/services/nope')).headers });
    assert.equal((await admin('GET', '/nothing-here')).status, 404);
    const m = await admin('POST', '/services/b', { retries: 1 });
    assert.equal(m.status, 405);
    assert.deepEqual(m.body, { message: 'Method not allowed' });
    const t = await admin('POST', '/services', '<service/>', 'application/xml');
    assert.equal(t.status, 415);
    const j = await admin('POST', '/services', '{"name":', 'application/json');
    assert.equal(j.status, 400);
    assert.deepEqual(j.body, { message: 'Cannot parse JSON body' });
    const size = await admin('GET', '/services?size=0');
    assert.equal(size.status, 400);
    assert.equal(size.body.code, 9);
    assert.equal((await admin('GET', '/services?offset=!!')).body.code, 7);
    // Nothing of the refused writes was applied.
    assert.deepEqual((await admin('GET', '/services')).body.data.map((s: any) => s.name), ['a', 'b']);
  });

  it('schemas: GET /schemas/plugins/{name} and POST /schemas/plugins/validate', async () => {
    const s = await admin('GET', '/schemas/plugins/rate-limiting');
    assert.equal(s.status, 200);
    const config = s.body.fields.find((f: any) => f.config).config;
    assert.ok(config.fields.some((f: any) => f.minute));
    assert.equal((await admin('GET', '/schemas/plugins/nope')).status, 404);
    const ok = await admin('POST', '/schemas/plugins/validate', { name: 'cors', config: { origins: ['*'] } });
    assert.deepEqual([ok.status, ok.body], [200, { message: 'schema validation successful' }]);
    const bad = await admin('POST', '/schemas/plugins/validate', { name: 'rate-limiting', config: { minute: -1 } });
    assert.equal(bad.status, 400);
    assert.ok(bad.body.fields.config.minute);
  });

  it('POST /config is atomic and GET /config exports a file that loads back to the same state', async () => {
    const before = await admin('GET', '/config');
    const invalid = await admin('POST', '/config', `_format_version: "3.0"\nservices:\n  - name: x\n    routes:\n      - paths: [nope]\n  - name: x\n    url: http://127.0.0.1:1\n`, 'application/yaml');
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.code, 14);
    assert.equal(invalid.body.name, 'invalid declarative configuration');
    const paths = invalid.body.flattened_errors.map((e: any) => e.path);
    assert.ok(paths.includes('services[0].url'));
    assert.ok(paths.includes('services[0].routes[0].paths[0]'));
    assert.ok(paths.includes('services[1].name'));
    assert.deepEqual((await admin('GET', '/config')).body, before.body, 'nothing applied');

    const file = `_format_version: "3.0"\nservices:\n  - name: fresh\n    url: ${upstream.url}/fresh\n    routes:\n      - name: fr\n        paths: [/fresh]\n        plugins:\n          - name: cors\n            config: { origins: ["*"] }\n`;
    const posted = await admin('POST', '/config', { config: file });
    assert.equal(posted.status, 201, JSON.stringify(posted.body));
    const proxied = await request(`${gw.proxyUrl}/fresh`);
    assert.equal(proxied.statusCode, 200);
    await proxied.body.dump();
    const exported = await admin('GET', '/config');
    const ids = (await admin('GET', '/routes')).body.data.map((r: any) => r.id);
    // Round trip: the export loads back to the same entities, ids included.
    assert.equal((await admin('POST', '/config', exported.body.config, 'application/yaml')).status, 201);
    assert.deepEqual((await admin('GET', '/config')).body, exported.body);
    assert.deepEqual((await admin('GET', '/routes')).body.data.map((r: any) => r.id), ids);
    assert.deepEqual((await admin('GET', '/services')).body.data.map((s: any) => s.name), ['fresh']);
  });
});

describe('Admin API in DB-less mode (database off)', () => {
  let gw: GatewayProcess;
  let upstream: Upstream;
  const admin = client(() => gw.adminUrl!);

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({ config: { _format_version: '3.0', services: [{ name: 'file', url: upstream.url, routes: [{ name: 'fr', paths: ['/f'] }] }] } });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('reads work and writes answer Kong\'s DB-less error', async () => {
    assert.deepEqual((await admin('GET', '/routes/fr')).body.paths, ['/f']);
    const w = await admin('POST', '/services', { name: 'x', url: 'http://127.0.0.1:1' });
    assert.equal(w.status, 405);
    assert.deepEqual(w.body, { code: 12, name: 'operation unsupported', message: "cannot create 'services' entities when not using a database" });
    assert.equal((await admin('DELETE', '/routes/fr')).body.message, "cannot delete 'routes' entities when not using a database");
  });

  it('POST /config applies without persisting', async () => {
    const posted = await admin('POST', '/config', { _format_version: '3.0', services: [{ name: 'mem', url: upstream.url, routes: [{ paths: ['/m'] }] }] });
    assert.equal(posted.status, 201, JSON.stringify(posted.body));
    const res = await request(`${gw.proxyUrl}/m`);
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });
});
