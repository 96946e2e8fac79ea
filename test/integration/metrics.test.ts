import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { parseExposition, series, total, type Sample } from '../helpers/exposition.js';
import { FakeIssuer, json, signingKey } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** One request on a connection of its own, so the primary hands each to the next worker in turn. */
function call(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

async function scrape(statusUrl: string): Promise<{ samples: Sample[]; contentType: string }> {
  const res = await request(`${statusUrl}/metrics`);
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  return { samples: parseExposition(text), contentType: String(res.headers['content-type']) };
}

/** Fixed windows start on the clock: keep the day's window from rolling over in the middle of the test. */
async function awayFromDayEnd(needMs: number) {
  const left = 86_400_000 - (Date.now() % 86_400_000);
  if (left < needMs) await sleep(left + 50);
}

const requestsTotal = 'kong_http_requests_total';

describe('GET /metrics across two workers (GATEHOUSE_WORKERS=2)', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let redis: RedisServer;
  let gw: GatewayProcess;
  let samples: Sample[];
  let contentType: string;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    redis = await startRedis();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const bearer = bearerPlugin(issuer.issuer, { scopes_required: ['blog_api'] });
    gw = await startGateway({
      env: { GATEHOUSE_WORKERS: '2', GATEHOUSE_LOG_LEVEL: 'info' },
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'blog',
            url: upstream.url,
            routes: [
              { name: 'open', paths: ['/open'] },
              { name: 'posts', paths: ['/posts'], plugins: [bearer] },
              {
                name: 'limited',
                paths: ['/limited'],
                // Redis: one budget for both workers, so exactly the third request is refused.
                plugins: [{ name: 'rate-limiting', config: { day: 2, limit_by: 'ip', policy: 'redis', redis: { host: redis.host, port: redis.port } } }],
              },
              { name: 'mine', paths: ['/mine'], plugins: [bearer, { name: 'prometheus', config: { status_code_metrics: true, per_consumer: true } }] },
              // A route on the proxy listener named /metrics does not shadow the status listener's.
              { name: 'shadow', paths: ['/metrics'] },
            ],
          },
          { name: 'gone', url: dead, retries: 0, routes: [{ name: 'broken', paths: ['/broken'] }] },
        ],
        plugins: [{ name: 'prometheus', config: { status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true } }],
      },
    });
    await awayFromDayEnd(30_000);

    const good = await issuer.token({ sub: 'alice', scope: 'openid blog_api' });
    const noScope = await issuer.token({ sub: 'bob', scope: 'openid' });
    const bearerOf = (t: string) => ({ authorization: `Bearer ${t}` });
    const p = gw.proxyUrl;
    const sent: [string, Record<string, string>, number][] = [
      ['/open', {}, 200],
      ['/open', {}, 200],
      ['/open', {}, 200],
      ['/posts', bearerOf(good), 200],
      ['/posts', bearerOf(good), 200],
      ['/posts', bearerOf(noScope), 403],
      ['/posts', bearerOf(noScope), 403],
      ['/posts', {}, 401],
      ['/posts', bearerOf(`${good.slice(0, -4)}AAAA`), 401],
      ['/limited', {}, 200],
      ['/limited', {}, 200],
      ['/limited', {}, 429],
      ['/broken', {}, 502],
      ['/broken', {}, 502],
      ['/mine', bearerOf(good), 200],
      ['/metrics', {}, 200],
    ];
    for (const [path, headers, expected] of sent) assert.equal(await call(p + path, headers), expected, path);
    ({ samples, contentType } = await scrape(gw.statusUrl));
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
    await issuer?.stop();
    await redis?.stop();
  });

  it('answers for both workers, in Prometheus text format', async () => {
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    const pids = series(samples, 'kong_memory_workers_lua_vms_bytes').map((s) => s.labels.pid);
    assert.equal(new Set(pids).size, 2, 'one heap series per worker');
    // Connections alternate between the workers; each counted its own.
    assert.ok(total(samples, 'kong_nginx_connections_total', { state: 'accepted' }) >= 16);
    assert.equal(total(samples, 'kong_nginx_requests_total'), 16);
    // Every scrape, whichever worker takes it, shows the same totals.
    for (let i = 0; i < 4; i++) {
      const again = (await scrape(gw.statusUrl)).samples;
      assert.equal(total(again, requestsTotal), total(samples, requestsTotal));
    }
  });

  it('counts requests per route and code with Kong labels and source', () => {
    const count = (route: string, code: string, source?: string) => total(samples, requestsTotal, { service: route === 'broken' ? 'gone' : 'blog', route, code, ...(source ? { source } : {}) });
    assert.equal(count('open', '200', 'service'), 3);
    assert.equal(count('posts', '200', 'service'), 2);
    assert.equal(count('posts', '403', 'kong'), 2);
    assert.equal(count('posts', '401', 'kong'), 2);
    assert.equal(count('limited', '200', 'service'), 2);
    assert.equal(count('limited', '429', 'kong'), 1);
    assert.equal(count('broken', '502', 'kong'), 2);
    assert.equal(count('shadow', '200', 'service'), 1);
    const one = series(samples, requestsTotal).find((s) => s.labels.route === 'open')!;
    assert.deepEqual(Object.keys(one.labels).sort(), ['code', 'consumer', 'route', 'service', 'source', 'workspace']);
    assert.equal(one.labels.workspace, 'default');
    assert.equal(one.labels.consumer, '', 'no caller label unless per_consumer');
  });

  it('fills the consumer label with the caller on a per_consumer route only', () => {
    assert.equal(total(samples, requestsTotal, { route: 'mine', code: '200', consumer: 'alice' }), 1);
    assert.equal(total(samples, requestsTotal, { route: 'posts', consumer: 'alice' }), 0);
  });

  it('exports Kong latency histograms with Kong buckets, and bandwidth both ways', () => {
    const buckets = (name: string) => series(samples, name).filter((s) => s.labels.route === 'open').map((s) => s.labels.le);
    assert.deepEqual(buckets('kong_kong_latency_ms_bucket'), ['1', '2', '5', '7', '10', '15', '20', '30', '50', '75', '100', '200', '500', '750', '1000', '+Inf']);
    assert.deepEqual(buckets('kong_upstream_latency_ms_bucket'), ['25', '50', '80', '100', '250', '400', '700', '1000', '2000', '5000', '10000', '30000', '60000', '+Inf']);
    assert.equal(total(samples, 'kong_request_latency_ms_count', { route: 'open' }), 3);
    assert.equal(total(samples, 'kong_upstream_latency_ms_count', { route: 'open' }), 3);
    assert.equal(total(samples, 'kong_upstream_latency_ms_count', { route: 'broken' }), 0, 'no upstream answered');
    assert.equal(total(samples, 'kong_kong_latency_ms_count', { route: 'broken' }), 2);
    assert.equal(total(samples, 'kong_request_latency_ms_bucket', { route: 'open', le: '+Inf' }), 3);
    // Requests carry at least their request line and Host; responses their status line and body.
    assert.ok(total(samples, 'kong_bandwidth_bytes', { route: 'open', direction: 'ingress' }) > 3 * 30);
    assert.ok(total(samples, 'kong_bandwidth_bytes', { route: 'open', direction: 'egress' }) > 3 * 100);
  });

  it('exports the node-level Kong metrics', () => {
    assert.equal(total(samples, 'kong_datastore_reachable'), 1, 'min across workers, not a sum');
    const info = series(samples, 'kong_node_info');
    assert.equal(info.length, 1, 'one node: the workers share the node_id');
    assert.equal(info[0].value, 1);
    const nodes = new Set(series(samples, 'kong_nginx_connections_total').map((s) => s.labels.node_id));
    assert.deepEqual(nodes, new Set([info[0].labels.node_id]));
    assert.equal(total(samples, 'kong_nginx_metric_errors_total'), 0);
  });

  it('counts authentication outcomes per route, method and result', () => {
    const auth = (labels: Record<string, string>) => total(samples, 'gatehouse_auth_total', { route: 'posts', ...labels });
    assert.equal(auth({ method: 'bearer', result: 'allowed' }), 2);
    assert.equal(auth({ method: 'bearer', result: 'forbidden' }), 2);
    assert.equal(auth({ method: 'bearer', result: 'unauthorized' }), 1, 'the tampered token');
    assert.equal(auth({ method: 'none', result: 'unauthorized' }), 1, 'no credentials');
    assert.equal(auth({}), 6);
    assert.equal(total(samples, 'gatehouse_auth_total', { route: 'mine', result: 'allowed' }), 1);
  });

  it('counts rate-limit decisions, IdP calls and verified-token cache lookups', () => {
    assert.equal(total(samples, 'gatehouse_rate_limit_decisions_total', { route: 'limited', decision: 'allowed' }), 2);
    assert.equal(total(samples, 'gatehouse_rate_limit_decisions_total', { route: 'limited', decision: 'limited' }), 1);
    // Each worker discovers the issuer and loads its keys at start.
    assert.equal(total(samples, 'gatehouse_idp_requests_total', { issuer: issuer.issuer, endpoint: 'discovery', outcome: 'ok' }), 2);
    assert.ok(total(samples, 'gatehouse_idp_requests_total', { endpoint: 'jwks', outcome: 'ok' }) >= 2);
    assert.equal(total(samples, 'gatehouse_idp_request_duration_ms_count', { endpoint: 'discovery' }), 2);
    assert.ok(total(samples, 'gatehouse_token_cache_lookups_total') >= 1);
    assert.equal(series(samples, 'gatehouse_token_cache_entries').length, 1);
  });
});

describe('gatehouse_* from the IdP side: introspection outage, key rotation', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let outage = false;

  before(async () => {
    issuer = await FakeIssuer.start(undefined, 0, {
      handlers: {
        '/introspect': (_req, res) =>
          outage ? json(res, { error: 'temporarily_unavailable' }, 503) : json(res, { active: true, iss: issuer.issuer, sub: 'job', scope: 'reports', exp: Math.floor(Date.now() / 1000) + 300 }),
      },
    });
    upstream = await startUpstream();
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'svc',
            url: upstream.url,
            routes: [
              { name: 'jwt', paths: ['/jwt'], plugins: [bearerPlugin(issuer.issuer, { rediscovery_lifetime: 0 })] },
              {
                name: 'opaque',
                paths: ['/opaque'],
                plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['introspection'], client_id: ['gw'], client_secret: ['s3cret'], cache_ttl: 1 } }],
              },
            ],
          },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
    await issuer?.stop();
  });

  it('counts introspection calls and fails closed as idp_unavailable while the IdP is down', async () => {
    assert.equal(await call(`${gw.proxyUrl}/opaque`, { authorization: 'Bearer opaque-1' }), 200);
    outage = true;
    assert.equal(await call(`${gw.proxyUrl}/opaque`, { authorization: 'Bearer opaque-2' }), 503);
    outage = false;
    const { samples } = await scrape(gw.statusUrl);
    const idp = (outcome: string) => total(samples, 'gatehouse_idp_requests_total', { issuer: issuer.issuer, endpoint: 'introspection', outcome });
    assert.equal(idp('ok'), 1);
    assert.equal(idp('error'), 1);
    assert.equal(total(samples, 'gatehouse_auth_total', { route: 'opaque', method: 'introspection', result: 'allowed' }), 1);
    assert.equal(total(samples, 'gatehouse_auth_total', { route: 'opaque', method: 'introspection', result: 'idp_unavailable' }), 1);
  });

  it('counts a rotated key: a kid miss, one refetch caused by it, and the verified-token cache', async () => {
    const first = await issuer.token({ sub: 'ann' });
    // The same token three times on one connection: the first resolves the key, the second is verified and
    // remembered (a token is cached on its second verification), the third is a hit.
    const agent = new Agent({ connections: 1 });
    for (let i = 0; i < 3; i++) assert.equal((await request(`${gw.proxyUrl}/jwt`, { headers: { authorization: `Bearer ${first}` }, dispatcher: agent }).then((r) => (r.body.resume(), r.statusCode))), 200);
    await agent.close();
    const before = (await scrape(gw.statusUrl)).samples;
    const key = await signingKey('RS256');
    issuer.keys.push(key);
    assert.equal(await call(`${gw.proxyUrl}/jwt`, { authorization: `Bearer ${await issuer.token({ sub: 'ann' }, { key })}` }), 200);
    const after = (await scrape(gw.statusUrl)).samples;
    const delta = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
    assert.equal(delta('gatehouse_jwks_kid_misses_total', { issuer: issuer.issuer }), 1);
    assert.equal(delta('gatehouse_jwks_refetches_total', { issuer: issuer.issuer, cause: 'kid_miss' }), 1);
    assert.equal(delta('gatehouse_idp_requests_total', { endpoint: 'jwks', outcome: 'ok' }), 1);
    assert.ok(total(before, 'gatehouse_token_cache_lookups_total', { result: 'hit' }) >= 1);
    assert.ok(total(before, 'gatehouse_token_cache_lookups_total', { result: 'miss' }) >= 1);
    assert.equal(total(after, 'gatehouse_auth_total', { route: 'jwt', method: 'bearer', result: 'allowed' }), 4);
  });
});

describe('gatehouse_config_* follow live reconfiguration', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  let file: string;

  before(async () => {
    upstream = await startUpstream();
    file = join(mkdtempSync(join(tmpdir(), 'gatehouse-metrics-')), 'kong.yaml');
    writeFileSync(file, stringify(oneService(upstream.url, [{ name: 'a', paths: ['/a'] }])));
    gw = await startGateway({ args: ['--config', file] });
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
  });

  it('counts an applied and a rejected document; series of the routes kept survive the reload', async () => {
    const startedAt = total((await scrape(gw.statusUrl)).samples, 'gatehouse_config_last_applied_timestamp_seconds');
    assert.ok(startedAt > 0 && startedAt <= Date.now() / 1000);
    writeFileSync(file, 'services: [unclosed');
    await gw.waitForLog((l) => l.msg === 'config rejected, the running config stays');
    writeFileSync(file, stringify({ ...oneService(upstream.url, [{ name: 'a', paths: ['/a'] }, { name: 'b', paths: ['/b'] }]), plugins: [{ name: 'prometheus', config: { status_code_metrics: true } }] }));
    gw.child.kill('SIGHUP');
    await gw.waitForLog((l) => l.msg === 'config applied');
    assert.equal(await call(`${gw.proxyUrl}/b`), 200);
    const { samples } = await scrape(gw.statusUrl);
    assert.ok(total(samples, 'gatehouse_config_reloads_total', { result: 'applied' }) >= 1);
    assert.equal(total(samples, 'gatehouse_config_reloads_total', { result: 'rejected' }), 1);
    assert.ok(total(samples, 'gatehouse_config_last_applied_timestamp_seconds') >= startedAt);
    assert.equal(total(samples, requestsTotal, { route: 'b', code: '200' }), 1, 'a route added by the reload is counted');
  });
});
