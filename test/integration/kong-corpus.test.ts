import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configWarnings } from '../../src/config/config-warnings.js';
import { ConfigError, parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { RouteTable } from '../../src/proxy/route-table.js';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Files shaped as Kong 3.4–3.15 and decK write them (test/fixtures/kong/) load
 * unchanged and behave as their hand-written equivalent: the same compiled
 * routes with the same effective plugin configs, and the same answers through
 * a running gateway.
 */

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/kong');
const ENV = { CORPUS_ISSUER: 'http://127.0.0.1:1/realms/blog' };
const KONG_FILES = ['kong-3.4-deck-dump.yaml', 'kong-3.6-db-export.yaml', 'kong-3.10-deck-with-id.yaml', 'kong-3.14-deck-skip-defaults.yaml'];

const text = (file: string) => readFileSync(resolve(FIXTURES, file), 'utf8');
const load = (file: string) => parseDeclarativeConfig(text(file), file, ENV);

/** What routing and the plugins see: compiled routes (JSON: no functions, no hidden markers). */
function compiled(file: string) {
  const table = RouteTable.compile(load(file));
  const routes = table.routes.map((r) => {
    const route = JSON.parse(JSON.stringify({ ...r, phases: undefined }));
    // The older claims/names pairs are folded into upstream_headers/downstream_headers at load: those are what apply.
    for (const key of ['upstream_headers_claims', 'upstream_headers_names', 'downstream_headers_claims', 'downstream_headers_names']) delete route.plugins['openid-connect']?.[key];
    return route;
  });
  const matched = ['/api/posts', '/public/x', '/apix', '/other'].map((p) => table.match('GET', 'gw.example', p)?.route.name ?? null);
  return { routes, matched, post: table.match('POST', undefined, '/api')?.route.name, del: table.match('DELETE', undefined, '/api')?.route.name ?? null };
}

describe('Kong corpus: files Kong and decK write load and compile like the hand-written file', () => {
  const expected = compiled('hand-written.yaml');

  it('the hand-written file routes as intended', () => {
    assert.deepEqual(expected.matched, ['blog-api', 'blog-public', 'blog-api', null]);
    assert.equal(expected.del, null);
    const api = expected.routes.find((r: { name: string }) => r.name === 'blog-api');
    assert.deepEqual(Object.keys(api.plugins).sort(), ['cors', 'openid-connect', 'rate-limiting']);
  });

  for (const file of KONG_FILES) {
    it(`${file}: same routes, services and effective plugin configs`, () => {
      assert.deepStrictEqual(compiled(file), expected);
    });
  }

  it('kong-3.10-deck-with-id.yaml keeps ids in the validated config', () => {
    const c = load('kong-3.10-deck-with-id.yaml');
    assert.equal(c.services[0].id, '5a1b2c3d-0000-4000-8000-000000000001');
    assert.equal(c.services[0].routes[0].id, '5a1b2c3d-0000-4000-8000-000000000011');
    assert.equal(c.plugins[0].id, '5a1b2c3d-0000-4000-8000-000000000103');
    // The reference by id is read as the route's name.
    assert.equal(c.plugins[0].route, 'blog-api');
  });

  it('kong-3.4-deck-dump.yaml: one warning names the fields accepted at their default; shorthands are deprecated', () => {
    const warnings = configWarnings(load('kong-3.4-deck-dump.yaml'));
    const defaulted = warnings.filter((w) => w.message.startsWith('Kong fields Gatehouse does not implement'));
    assert.equal(defaulted.length, 1);
    assert.match(defaulted[0].message, /route: destinations, headers, path_handling, request_buffering, response_buffering, snis, sources/);
    assert.match(defaulted[0].message, /openid-connect: anonymous, authenticated_groups_claim, /);
    assert.match(defaulted[0].message, /service: client_certificate, tls_verify_depth/);
    assert.ok(warnings.some((w) => w.path.endsWith('config.session_redis_host') && /deprecated since Kong 3\.8/.test(w.message) && /redis\.\{host, port, ssl, ssl_verify\}/.test(w.message)), JSON.stringify(warnings, null, 1));
    assert.ok(warnings.some((w) => /config\.redis_(port|database)/.test(w.path) && /deprecated since Kong 3\.8/.test(w.message)));
  });

  it('kong-3.14-deck-skip-defaults.yaml: grpc beside http loads with a warning', () => {
    const warnings = configWarnings(load('kong-3.14-deck-skip-defaults.yaml'));
    const w = warnings.find((x) => x.path === 'services[0].routes[0].protocols');
    assert.ok(w);
    assert.match(w.message, /grpc and grpcs listed: Gatehouse does not proxy gRPC; the route serves its other protocols \(http, https\)/);
  });
});

describe('Kong corpus: what is refused, with its path', () => {
  const refused = (doc: object): string[] => {
    try {
      parseDeclarativeConfig(JSON.stringify({ _format_version: '3.0', ...doc }), 'kong.json', ENV);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
    assert.fail('loaded, but it must be refused');
  };
  const oidc = (config: object) => ({ name: 'openid-connect', config: { issuer: ENV.CORPUS_ISSUER, auth_methods: ['bearer'], ...config } });

  it('a gRPC-only route', () => {
    assert.deepEqual(refused({ services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: 'r', paths: ['/g'], protocols: ['grpc', 'grpcs'] }] }] }), [
      'services[0].routes[0].protocols: a route for gRPC only is not supported: Gatehouse does not proxy gRPC yet (list http or https)',
    ]);
  });

  it('unimplemented fields set to something that would change behaviour, every one reported', () => {
    assert.deepEqual(
      refused({
        services: [
          {
            name: 's',
            url: 'http://127.0.0.1:1',
            tls_verify_depth: 3,
            routes: [{ name: 'r', paths: ['/r'], snis: ['a.example'], request_buffering: false, plugins: [oidc({ anonymous: 'guest', ssl_verify: false, introspection_hint: 'refresh_token' })] }],
          },
        ],
      }),
      [
        "services[0].routes[0].plugins[0].config.anonymous: is not supported by Gatehouse (Gatehouse has no consumers: the IdP decides who may call; a request that fails authentication is refused); only null is accepted",
        "services[0].routes[0].plugins[0].config.introspection_hint: is not supported by Gatehouse (the hint is always access_token); only null or Kong's default (\"access_token\") is accepted",
        "services[0].routes[0].request_buffering: is not supported by Gatehouse (request bodies are always streamed to the upstream); only null or Kong's default (true) is accepted",
        'services[0].routes[0].snis: is not supported by Gatehouse (routes cannot match on SNI; certificates are chosen by the names in GATEHOUSE_SSL_CERT); only null is accepted',
        "services[0].tls_verify_depth: is not supported by Gatehouse (the verification depth is OpenSSL's default); only null is accepted",
      ],
    );
  });

  it('a session_redis_* shorthand that contradicts redis.*', () => {
    assert.deepEqual(refused({ services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: 'r', paths: ['/r'] }], plugins: [oidc({ session_redis_port: 6380, redis: { port: 6379 } })] }] }), [
      'services[0].plugins[0].config.session_redis_port: is the deprecated spelling of redis.port, which is set to a different value: keep only redis.port',
    ]);
  });

  it('duplicate ids, and a reference by id to an entity without a name', () => {
    const id = '0c3ae0a5-6f5e-4f0c-9d1a-3b9f4e1d2a01';
    assert.deepEqual(
      refused({
        services: [
          { id, url: 'http://127.0.0.1:1' },
          { id, name: 'b', url: 'http://127.0.0.1:2' },
        ],
        routes: [{ name: 'r', paths: ['/r'], service: { id } }],
      }),
      [`services[1].id: duplicate service id "${id}" (also services[0])`, `routes[0].service: the service with id "${id}" has no name: Gatehouse identifies services and routes by name, add one`],
    );
  });

  it('Kong entities Gatehouse does not have, when the file holds some', () => {
    assert.deepEqual(refused({ consumers: [{ username: 'alice' }] }), ['consumers: is not supported by Gatehouse (Gatehouse has no consumers: the IdP decides who may call); only null is accepted']);
  });
});

describe('Kong corpus: through a running gateway', () => {
  let upstream: Upstream;
  const gateways: GatewayProcess[] = [];
  before(async () => {
    upstream = await startUpstream();
  });
  after(async () => {
    for (const g of gateways) await g.stop();
    await upstream.close();
  });

  for (const file of ['hand-written.yaml', 'kong-3.4-deck-dump.yaml']) {
    it(`${file}: public route proxied, protected route 401 without a token, CORS headers from the service plugin`, async () => {
      const port = new URL(upstream.url).port;
      const config = text(file).replace('http://127.0.0.1:1', `http://127.0.0.1:${port}`).replace(/^(\s*)port: 1$/m, `$1port: ${port}`);
      const gw = await startGateway({ config, env: ENV });
      gateways.push(gw);
      const pub = await fetch(`${gw.proxyUrl}/public/x`, { headers: { origin: 'https://blog.example' } });
      assert.equal(pub.status, 200);
      assert.equal(pub.headers.get('access-control-allow-origin'), 'https://blog.example');
      await pub.arrayBuffer();
      const api = await fetch(`${gw.proxyUrl}/api/posts`, { headers: { accept: 'application/json' } });
      assert.equal(api.status, 401);
      assert.deepEqual(await api.json(), { message: 'Unauthorized' });
      if (file !== 'hand-written.yaml') {
        await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Kong fields Gatehouse does not implement'));
      }
    });
  }
});
