import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { duplicateKeys } from '../helpers/json-keys.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * The gateway's own log lines, read as it writes them: every line is one JSON
 * object without duplicate keys (log pipelines disagree on which duplicate
 * wins, and JSON.parse quietly keeps the last), and the process name and the
 * Kong service of a request are separate fields.
 */
describe('logs: one JSON object per line, no duplicate keys', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    const closed = `http://127.0.0.1:${await freePort()}`;
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'orders',
            url: upstream.url,
            routes: [
              { name: 'open', paths: ['/open'] },
              { name: 'scoped', paths: ['/scoped'], plugins: [bearerPlugin(issuer.issuer, { scopes_required: ['orders:read'] })] },
            ],
          },
          { name: 'gone', url: closed, retries: 0, routes: [{ name: 'down', paths: ['/down'] }] },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  test('the scanner finds duplicates that JSON.parse hides', () => {
    assert.deepEqual(duplicateKeys('{"service":"gatehouse","a":[{"b":1,"b":2}],"service":"orders"}'), ['a.0.b', 'service']);
    assert.deepEqual(duplicateKeys('{"a":{"x":1},"b":{"x":"}\\",\\"x\\":"}}'), []);
  });

  test('every line written from start to shutdown, through 200, 401, 403, 400, 404 and 502 answers', async () => {
    const token = await issuer.token({ sub: 'bob', scope: 'openid' });
    const answers = [
      [await httpRequest(gw.proxyUrl, '/open/a?x=1'), 200],
      [await httpRequest(gw.proxyUrl, '/scoped'), 401],
      [await httpRequest(gw.proxyUrl, '/scoped', { headers: { authorization: `Bearer ${token}` } }), 403],
      [await httpRequest(gw.proxyUrl, '/open/a%2Fb'), 400],
      [await httpRequest(gw.proxyUrl, '/nowhere'), 404],
      [await httpRequest(gw.proxyUrl, '/down'), 502],
    ] as const;
    for (const [res, status] of answers) assert.equal(res.status, status, res.text());
    const access = await gw.waitForLog((l) => l.msg === 'request' && l.route === 'open');
    await gw.waitForLog((l) => l.msg === 'request' && l.route === 'down');
    assert.equal(await gw.stop(), 0);
    await gw.waitForLog((l) => l.msg === 'shutdown complete', 5_000);

    const json = gw.lines.filter((l) => l.startsWith('{'));
    const messages = new Set(json.map((l) => JSON.parse(l).msg));
    for (const msg of ['gatehouse started', 'request', 'request failed', 'shutdown complete']) assert.ok(messages.has(msg), `no "${msg}" line`);
    assert.ok(json.length >= 10, `only ${json.length} JSON lines`);
    for (const line of json) assert.deepEqual(duplicateKeys(line), [], line);
    for (const line of json) assert.equal(JSON.parse(line).name, 'gatehouse', line);
    assert.equal(access.service, 'orders', 'the access log names the Kong service');
    assert.equal(access.route, 'open');
  });
});
