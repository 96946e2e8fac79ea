import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, rawExchange, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * The access log of the built gateway, read from its stdout: hostile paths,
 * request ids and claim values still give one valid JSON object per line;
 * the `access-log` plugin silences a route's successes but not its failures;
 * SIGTERM right after a burst loses no line.
 */
describe('access log', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    const closed = `http://127.0.0.1:${await freePort()}`;
    const quiet = { name: 'access-log', config: { sample_rate: 0 } };
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'orders',
            url: upstream.url,
            routes: [
              { name: 'open', paths: ['/open'] },
              { name: 'health', paths: ['/health'], plugins: [quiet] },
              { name: 'scoped', paths: ['/scoped'], plugins: [bearerPlugin(issuer.issuer, { scopes_required: ['orders:read'] })] },
              { name: 'by-email', paths: ['/by-email'], plugins: [bearerPlugin(issuer.issuer, { scopes_required: ['orders:read'], credential_claim: ['email'] })] },
            ],
          },
          { name: 'gone', url: closed, retries: 0, routes: [{ name: 'health-down', paths: ['/health-down'], plugins: [quiet] }] },
        ],
      },
      // The test client is a trusted proxy, so its X-Request-Id (any printable ASCII) reaches the log.
      env: { GATEHOUSE_TRUSTED_IPS: '127.0.0.1', GATEHOUSE_LOG_LEVEL: 'info' },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  it('hostile paths, request ids and claims: every line valid JSON, values intact, no query', async () => {
    const host = new URL(gw.proxyUrl).host;
    const paths = [
      '/open/a"b\\c',
      '/open/%22%5C%00%01%1F%7F',
      '/open/%E2%80%A8%E2%80%A9',
      '/open/%ED%A0%80%F0%9F%8E%89',
      '/open/{"level":"error"}',
      '/open/x?access_token=query-secret',
    ];
    for (const p of paths) {
      const { data } = await rawExchange(gw.proxyUrl, `GET ${p} HTTP/1.1\r\nHost: ${host}\r\nX-Request-Id: id-${p.length}-"\\\r\nConnection: close\r\n\r\n`);
      assert.match(data, /^HTTP\/1\.1 [24]\d\d /, data.slice(0, 80));
    }
    const sub = 'eve\u2028"\\\u0001\udc00\ud800x\u007f';
    const token = await issuer.token({ sub, scope: 'orders:read' });
    const res = await httpRequest(gw.proxyUrl, '/scoped', { headers: { authorization: `Bearer ${token}`, 'x-request-id': 'bearer-"\\-id' } });
    assert.equal(res.status, 200, res.text());

    const bearer = await gw.waitForLog((l) => l.msg === 'request' && l.request_id === 'bearer-"\\-id');
    assert.equal(bearer.caller, sub, 'the claim survives the round trip, lone surrogates included');
    for (const p of paths) await gw.waitForLog((l) => l.msg === 'request' && l.request_id === `id-${p.length}-"\\`);

    const access = gw.lines.filter((l) => l.includes('"msg":"request"'));
    assert.ok(access.length >= paths.length + 1);
    for (const line of access) {
      const parsed = JSON.parse(line);
      assert.equal(typeof parsed.path, 'string');
      assert.ok(!/[\u0000-\u001f\u007f\u2028\u2029]/.test(line), `raw control or separator in ${JSON.stringify(line)}`);
      assert.ok(!line.includes('query-secret') && !line.includes(token));
    }
    assert.ok(gw.logs().some((l) => l.path === '/open/a"b\\c'), 'quotes and backslashes kept');
  });

  it('the caller is each route’s credential_claim, for one token alternating between routes on one connection', async () => {
    const token = await issuer.token({ sub: 'carol', email: 'carol@example.com', scope: 'orders:read' });
    // One keep-alive connection: the token is verified once and remembered on it, then served from that memo.
    const client = new Client(gw.proxyUrl, { pipelining: 1 });
    try {
      const order = ['/scoped', '/by-email', '/scoped', '/by-email'];
      for (const [i, path] of order.entries()) {
        const res = await client.request({ path, method: 'GET', headers: { authorization: `Bearer ${token}`, 'x-request-id': `caller-${i}` } });
        await res.body.text();
        assert.equal(res.statusCode, 200);
      }
      const callers = [];
      for (let i = 0; i < order.length; i++) callers.push((await gw.waitForLog((l) => l.msg === 'request' && l.request_id === `caller-${i}`)).caller);
      assert.deepEqual(callers, ['carol', 'carol@example.com', 'carol', 'carol@example.com']);
    } finally {
      await client.close();
    }
  });

  it('access-log sample_rate 0: a health route logs nothing for successes, but its failures', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await httpRequest(gw.proxyUrl, '/health/ok')).status, 200);
    const failed = await httpRequest(gw.proxyUrl, '/health-down');
    assert.equal(failed.status, 502);
    const after502 = await gw.waitForLog((l) => l.msg === 'request' && l.route === 'health-down');
    assert.equal(after502.status, 502);
    // A later line on another route: the health lines, had they been written, would be in the log before it.
    const marker = (await httpRequest(gw.proxyUrl, '/open/marker')).headers['x-request-id'];
    await gw.waitForLog((l) => l.msg === 'request' && l.request_id === marker);
    assert.equal(gw.logs().filter((l) => l.msg === 'request' && l.route === 'health').length, 0);
  });

  it('SIGTERM right after a burst: every access line is written before exit', async () => {
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const res = await httpRequest(gw.proxyUrl, `/open/burst/${i}`);
        assert.equal(res.status, 200);
        ids.push(String(res.headers['x-request-id']));
      }),
    );
    assert.equal(await gw.stop(), 0);
    const logged = new Set(gw.logs().filter((l) => l.msg === 'request').map((l) => l.request_id));
    assert.deepEqual(ids.filter((id) => !logged.has(id)), []);
    const last = gw.logs().at(-1)!;
    assert.equal(last.msg, 'shutdown complete', 'the access lines come before the last line, in order');
    for (const line of gw.lines) if (line.startsWith('{')) JSON.parse(line);
  });
});
