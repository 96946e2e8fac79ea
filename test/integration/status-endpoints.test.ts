import assert from 'node:assert/strict';
import { Agent, request as httpRequestRaw } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startHoldingUpstream, startUpstream, type Upstream } from '../helpers/upstream.js';

/** Kong's Status API on the status listener: GET /status, GET /status/ready, POST /status/ready (drain). */

function get(url: string, path: string, agent: Agent) {
  const u = new URL(url);
  return new Promise<{ status?: number; body: string }>((resolve, reject) => {
    const req = httpRequestRaw({ host: u.hostname, port: u.port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const json = { 'content-type': 'application/json' };

describe('GET /status', () => {
  let held: Awaited<ReturnType<typeof startHoldingUpstream>>;
  let gw: GatewayProcess;
  let twin: GatewayProcess;
  let other: GatewayProcess;

  before(async () => {
    held = await startHoldingUpstream();
    const config = oneService(held.upstream.url, [{ name: 'r', paths: ['/'] }]);
    [gw, twin, other] = await Promise.all([
      startGateway({ config }),
      // The same document written with its keys in another order.
      startGateway({ config: { services: [{ routes: [{ paths: ['/'], name: 'r' }], url: held.upstream.url, name: 'api' }], _format_version: '3.0' } }),
      startGateway({ config: oneService(held.upstream.url, [{ name: 'r', paths: ['/other'] }]) }),
    ]);
  });
  after(async () => {
    held?.release();
    await Promise.all([gw?.stop(), twin?.stop(), other?.stop()]);
    await held?.upstream.close();
  });

  test("answers Kong's shape: database, memory, server counters, a 32-hex configuration_hash", async () => {
    const res = await httpRequest(gw.statusUrl, '/status');
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json();
    assert.deepEqual(Object.keys(body).sort(), ['configuration_hash', 'database', 'memory', 'server']);
    assert.deepEqual(body.database, { reachable: true });
    assert.deepEqual(Object.keys(body.server).sort(), [
      'connections_accepted',
      'connections_active',
      'connections_handled',
      'connections_reading',
      'connections_waiting',
      'connections_writing',
      'total_requests',
    ]);
    for (const v of Object.values(body.server)) assert.ok(Number.isInteger(v) && (v as number) >= 0);
    assert.match(body.configuration_hash, /^[0-9a-f]{32}$/);
    assert.equal(body.memory.workers_lua_vms.length, 1);
    assert.equal(body.memory.workers_lua_vms[0].pid, gw.child.pid);
    assert.match(body.memory.workers_lua_vms[0].http_allocated_gc, /^\d+\.\d{2} MiB$/);
    assert.match(body.memory.workers[0].rss, /^\d+\.\d{2} MiB$/);
  });

  test('configuration_hash is the same for the same document (whatever its key order) and differs for another', async () => {
    const [a, b, c] = await Promise.all([gw, twin, other].map(async (g) => (await httpRequest(g.statusUrl, '/status')).json().configuration_hash));
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  test('the counters move: requests, accepted connections, a request in flight is writing, an idle keep-alive connection is waiting', async () => {
    const before = (await httpRequest(gw.statusUrl, '/status')).json().server;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(gw.proxyUrl, '/quick', agent)).status, 200);
      const arrival = held.nextArrival();
      const slow = get(gw.proxyUrl, '/slow', new Agent());
      await arrival;

      const during = (await httpRequest(gw.statusUrl, '/status')).json().server;
      assert.equal(during.total_requests - before.total_requests, 4);
      assert.equal(during.connections_accepted - before.connections_accepted, 2, 'one keep-alive connection for three requests, one for the held one');
      assert.equal(during.connections_handled, during.connections_accepted);
      assert.ok(during.connections_writing >= 1, `writing: ${during.connections_writing}`);
      assert.ok(during.connections_waiting >= 1, `waiting: ${during.connections_waiting}`);
      assert.equal(during.connections_active, during.connections_reading + during.connections_writing + during.connections_waiting);

      held.release();
      assert.equal((await slow).status, 200);
    } finally {
      agent.destroy();
    }
  });

  test('requests to the status listener itself are not proxy requests', async () => {
    const a = (await httpRequest(gw.statusUrl, '/status')).json().server.total_requests;
    await httpRequest(gw.statusUrl, '/health/live');
    const b = (await httpRequest(gw.statusUrl, '/status')).json().server.total_requests;
    assert.equal(b, a);
  });
});

describe('GET /status/ready and draining', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  let jsonGw: GatewayProcess;
  let empty: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    const config = oneService(upstream.url, [{ name: 'r', paths: ['/'] }]);
    [gw, jsonGw, empty] = await Promise.all([startGateway({ config }), startGateway({ config }), startGateway({ config: { _format_version: '3.0' } })]);
  });
  after(async () => {
    await Promise.all([gw?.stop(), jsonGw?.stop(), empty?.stop()]);
    await upstream?.close();
  });

  test('200 {"message":"ready"} with a configuration loaded', async () => {
    const res = await httpRequest(gw.statusUrl, '/status/ready');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { message: 'ready' });
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test("an empty configuration is not ready, in Kong's words, and its hash is Kong's empty hash", async () => {
    const res = await httpRequest(empty.statusUrl, '/status/ready');
    assert.equal(res.status, 503);
    assert.deepEqual(res.json(), { message: 'no configuration available (empty configuration present)' });
    assert.equal((await httpRequest(empty.statusUrl, '/status')).json().configuration_hash, '0'.repeat(32));
    const health = await httpRequest(empty.statusUrl, '/health/ready');
    assert.equal(health.status, 503);
    assert.equal(health.json().error.config.status, 'down');
  });

  test('POST with anything but status=draining is refused and changes nothing', async () => {
    const bad = await httpRequest(gw.statusUrl, '/status/ready', { method: 'POST', headers: form, body: 'status=ready' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json(), { message: 'Bad request', reason: 'status must be "draining"' });
    const unsupported = await httpRequest(gw.statusUrl, '/status/ready', { method: 'POST', headers: { 'content-type': 'text/xml' }, body: '<status>draining</status>' });
    assert.equal(unsupported.status, 415);
    assert.equal(typeof unsupported.json().message, 'string');
    const malformed = await httpRequest(gw.statusUrl, '/status/ready', { method: 'POST', headers: json, body: '{"status":' });
    assert.equal(malformed.status, 400);
    assert.equal((await httpRequest(gw.statusUrl, '/status/ready')).status, 200);
  });

  test('POST status=draining (form, as the Admin API takes it) → 204; readiness 503 "draining" while requests are still served', async () => {
    const res = await httpRequest(gw.statusUrl, '/status/ready', { method: 'POST', headers: form, body: 'status=draining' });
    assert.equal(res.status, 204);
    assert.equal(res.body.length, 0);

    const ready = await httpRequest(gw.statusUrl, '/status/ready');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.json(), { message: 'draining' });
    const health = await httpRequest(gw.statusUrl, '/health/ready');
    assert.equal(health.status, 503);
    assert.equal(health.json().error.lifecycle.state, 'draining');
    assert.equal((await httpRequest(gw.statusUrl, '/health/live')).status, 200, 'draining is not dead');

    const proxied = await httpRequest(gw.proxyUrl, '/still-served');
    assert.equal(proxied.status, 200);
    assert.equal(proxied.headers.connection, 'close', 'keep-alive clients are told to reconnect elsewhere');
    await gw.waitForLog((l) => l.msg === 'draining: readiness answers 503, requests are still served' && l.origin === 'status-api');
  });

  test("POST {\"status\":\"draining\"} as JSON, the body `kong drain` sends", async () => {
    const res = await httpRequest(jsonGw.statusUrl, '/status/ready', { method: 'POST', headers: json, body: JSON.stringify({ status: 'draining' }) });
    assert.equal(res.status, 204);
    assert.deepEqual((await httpRequest(jsonGw.statusUrl, '/status/ready')).json(), { message: 'draining' });
  });
});

describe('readiness and the IdP discovery document (HttpHealthIndicator)', () => {
  let good: FakeIssuer;
  let mismatched: FakeIssuer;
  let okGw: GatewayProcess;
  let badGw: GatewayProcess;

  before(async () => {
    good = await FakeIssuer.start();
    mismatched = await FakeIssuer.start(undefined, 0, { claimedIssuer: 'http://127.0.0.1:1/someone-else' });
    [okGw, badGw] = await Promise.all([
      startGateway({ config: oneService('http://127.0.0.1:1', [{ name: 'r', paths: ['/'], plugins: [bearerPlugin(good.issuer)] }]) }),
      startGateway({ config: oneService('http://127.0.0.1:1', [{ name: 'r', paths: ['/'], plugins: [bearerPlugin(mismatched.issuer)] }]) }),
    ]);
  });
  after(async () => {
    await Promise.all([okGw?.stop(), badGw?.stop()]);
    await Promise.all([good?.stop(), mismatched?.stop()]);
  });

  test('a discovery document naming the configured issuer: ready on both endpoints, the discovery check up', async () => {
    const kong = await httpRequest(okGw.statusUrl, '/status/ready');
    assert.equal(kong.status, 200, kong.text());
    const health = await httpRequest(okGw.statusUrl, '/health/ready');
    assert.equal(health.status, 200, health.text());
    const body = health.json();
    assert.equal(body.info.discovery.status, 'up');
    assert.equal(body.info.discovery.url, `${good.issuer}/.well-known/openid-configuration`);
    assert.equal(body.info.issuer.status, 'up');
    assert.equal(body.info.lifecycle.state, 'serving');
  });

  test('a discovery document naming another issuer: not ready, and the discovery check says why', async () => {
    const health = await httpRequest(badGw.statusUrl, '/health/ready');
    assert.equal(health.status, 503);
    const body = health.json();
    assert.equal(body.error.discovery.status, 'down');
    assert.match(body.error.discovery.message, /discovered issuer "http:\/\/127\.0\.0\.1:1\/someone-else" does not match the configured issuer/);

    const kong = await httpRequest(badGw.statusUrl, '/status/ready');
    assert.equal(kong.status, 503);
    const { message } = kong.json();
    assert.ok(message.startsWith(`identity provider not ready: ${mismatched.issuer}: `), message);
    assert.match(message, /does not match the configured issuer/);
  });

  test('probes every few seconds reuse the cached verdict instead of each fetching discovery', async () => {
    await httpRequest(okGw.statusUrl, '/status/ready');
    const discovery = () => good.requests.filter((r) => r === '/.well-known/openid-configuration').length;
    const before = discovery();
    for (let i = 0; i < 6; i++) {
      await httpRequest(okGw.statusUrl, '/status/ready');
      await httpRequest(okGw.statusUrl, '/health/ready');
    }
    // Two checks read the document (HTTP indicator and key state), each at most once per 5 s cache period.
    assert.ok(discovery() - before <= 4, `12 probes caused ${discovery() - before} discovery fetches`);
  });
});

describe('with GATEHOUSE_WORKERS=2 the status endpoints speak for the whole gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({ env: { GATEHOUSE_WORKERS: '2' }, config: oneService(upstream.url, [{ name: 'r', paths: ['/'] }]) });
    const seen = new Set<number>();
    await gw.waitForLog((l) => l.msg === 'gatehouse worker started' && seen.add(l.pid).size === 2);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('GET /status sums both workers and lists each one', async () => {
    const before = (await httpRequest(gw.statusUrl, '/status')).json();
    assert.equal(before.memory.workers_lua_vms.length, 2);
    assert.equal(new Set(before.memory.workers_lua_vms.map((w: { pid: number }) => w.pid)).size, 2);
    for (let i = 0; i < 10; i++) assert.equal((await httpRequest(gw.proxyUrl, `/n${i}`)).status, 200);
    // Whichever worker answers, it reports all ten (no keep-alive: connections are spread over both workers).
    for (let i = 0; i < 4; i++) {
      const after = (await httpRequest(gw.statusUrl, '/status')).json();
      assert.equal(after.server.total_requests - before.server.total_requests, 10);
      assert.equal(after.memory.workers_lua_vms.length, 2);
    }
  });

  test('draining through one worker drains every worker', async () => {
    assert.equal((await httpRequest(gw.statusUrl, '/status/ready', { method: 'POST', headers: form, body: 'status=draining' })).status, 204);
    // Draining is relayed through the primary; then every probe (on new connections, spread over the workers) says so.
    await gw.waitForLog((l) => l.msg === 'draining: readiness answers 503, requests are still served' && l.origin === 'cluster');
    for (let i = 0; i < 8; i++) {
      const res = await httpRequest(gw.statusUrl, '/status/ready');
      assert.equal(res.status, 503);
      assert.deepEqual(res.json(), { message: 'draining' });
    }
    assert.equal((await httpRequest(gw.proxyUrl, '/served')).status, 200);
  });
});
