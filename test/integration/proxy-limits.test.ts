import assert from 'node:assert/strict';
import { request as httpRequestRaw } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { httpRequest, rawExchange, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function assertJsonError(res: { status: number; headers: Record<string, unknown>; json(): any }, status: number) {
  assert.equal(res.status, status);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json();
  assert.equal(typeof body.message, 'string');
  assert.ok(body.message.length > 0);
  return body;
}

describe('proxy: upstream failures', () => {
  let gw: GatewayProcess;
  let slow: Upstream;
  let resetting: Upstream;
  let flaky: Upstream;
  let held: Upstream;
  /** Resolves when the held upstream's pending request is closed by the gateway. */
  let heldArrived: Promise<void>;
  let heldClosed: Promise<void>;
  /** Requests the flaky upstream received, and how many it cut off before answering. */
  const flakySeen: { method: string; url: string }[] = [];
  let flakyDropsLeft = 0;

  before(async () => {
    const refusedPort = await closedPort();
    slow = await startUpstream((req, res) => {
      req.resume();
      // Answers long after the gateway's read_timeout; closed by the test's cleanup.
      const t = setTimeout(() => res.end('too late'), 10_000);
      res.on('close', () => clearTimeout(t));
    });
    resetting = await startUpstream((req, res) => {
      req.resume();
      // Chunked (no length), so only a reset — not a clean end — can tell the client the body is cut.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part of the body;');
      setTimeout(() => req.socket.destroy(), 100);
    });
    flaky = await startUpstream((req, res) => {
      flakySeen.push({ method: req.method!, url: req.url! });
      if (flakyDropsLeft > 0) {
        flakyDropsLeft--;
        // The connection dies before any response byte.
        req.socket.destroy();
        return;
      }
      req.resume();
      req.on('end', () => res.end(`ok ${req.method}`));
    });
    let arrivedResolve!: () => void;
    let closedResolve!: () => void;
    heldArrived = new Promise((r) => (arrivedResolve = r));
    heldClosed = new Promise((r) => (closedResolve = r));
    held = await startUpstream((req, res) => {
      req.resume();
      // Never answers on its own; the gateway must give up on it when its client leaves.
      res.on('close', () => closedResolve());
      arrivedResolve();
    });
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          { name: 'held', url: held.url, routes: [{ paths: ['/held'] }] },
          { name: 'refused', url: `http://127.0.0.1:${refusedPort}`, retries: 2, connect_timeout: 2_000, routes: [{ paths: ['/refused'] }] },
          { name: 'slow', url: slow.url, read_timeout: 300, retries: 0, routes: [{ paths: ['/slow'] }] },
          { name: 'resetting', url: resetting.url, routes: [{ paths: ['/reset'] }] },
          { name: 'flaky', url: flaky.url, retries: 2, routes: [{ paths: ['/flaky'] }] },
          { name: 'flaky-no-retry', url: flaky.url, retries: 0, routes: [{ paths: ['/fragile'] }] },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([slow?.close(), resetting?.close(), flaky?.close(), held?.close()]);
  });

  test('connection refused → 502 with a JSON body', async () => {
    const res = await httpRequest(gw.proxyUrl, '/refused/x');
    const body = assertJsonError(res, 502);
    assert.equal(body.message, 'An invalid response was received from the upstream server');
    assert.ok(res.headers['x-request-id']);
  });

  test('a POST to a refusing upstream → 502 as well', async () => {
    const res = await httpRequest(gw.proxyUrl, '/refused/x', { method: 'POST', body: 'data' });
    assertJsonError(res, 502);
  });

  test('upstream slower than read_timeout → 504 with a JSON body', async () => {
    const res = await httpRequest(gw.proxyUrl, '/slow/x');
    const body = assertJsonError(res, 504);
    assert.equal(body.message, 'The upstream server is timing out');
  });

  test('an upstream reset mid-response aborts the client response instead of ending it cleanly', async () => {
    const u = new URL(gw.proxyUrl);
    const outcome = await new Promise<{ status: number; body: string; ended: boolean; aborted: boolean }>((resolve, reject) => {
      const req = httpRequestRaw({ host: u.hostname, port: u.port, path: '/reset/x', agent: false }, (res) => {
        let body = '';
        let ended = false;
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (ended = true));
        res.on('close', () => resolve({ status: res.statusCode!, body, ended, aborted: res.aborted || !res.complete }));
        res.on('error', () => {});
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(outcome.status, 200);
    assert.equal(outcome.body, 'first part of the body;');
    assert.equal(outcome.aborted, true, 'the response must not look complete');
    assert.equal(outcome.ended, false, 'the response must not end cleanly');
  });

  test('a client that leaves before the upstream answers makes the gateway abandon the upstream request', async () => {
    const u = new URL(gw.proxyUrl);
    const req = httpRequestRaw({ host: u.hostname, port: u.port, path: '/held/x', agent: false });
    req.on('error', () => {});
    req.end();
    await heldArrived;
    req.destroy();
    // read_timeout is the default 60 s: only the client's departure can end the upstream request now.
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      heldClosed.then(() => 'closed'),
      new Promise((r) => (timer = setTimeout(() => r('still open after 10 s'), 10_000))),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 'closed');
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.path === '/held/x');
    assert.equal(line.aborted, true);
  });

  test('an idempotent GET is retried when the upstream connection dies before an answer', async () => {
    flakySeen.length = 0;
    flakyDropsLeft = 1;
    const res = await httpRequest(gw.proxyUrl, '/flaky/item?id=1');
    assert.equal(res.status, 200);
    assert.equal(res.text(), 'ok GET');
    assert.deepEqual(flakySeen, [
      { method: 'GET', url: '/item?id=1' },
      { method: 'GET', url: '/item?id=1' },
    ]);
  });

  test('retries stop at the service\'s `retries`', async () => {
    flakySeen.length = 0;
    flakyDropsLeft = 5;
    const res = await httpRequest(gw.proxyUrl, '/flaky/item');
    assertJsonError(res, 502);
    assert.equal(flakySeen.length, 3, 'one attempt plus two retries');
    flakyDropsLeft = 0;
  });

  test('a GET to a service with retries: 0 is not retried', async () => {
    flakySeen.length = 0;
    flakyDropsLeft = 1;
    const res = await httpRequest(gw.proxyUrl, '/fragile/item');
    assertJsonError(res, 502);
    assert.equal(flakySeen.length, 1);
    flakyDropsLeft = 0;
  });

  test('a POST is never retried (it may have had an effect)', async () => {
    flakySeen.length = 0;
    flakyDropsLeft = 1;
    const res = await httpRequest(gw.proxyUrl, '/flaky/orders', { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    assertJsonError(res, 502);
    assert.deepEqual(flakySeen, [{ method: 'POST', url: '/orders' }]);
    flakyDropsLeft = 0;
  });
});

describe('proxy: server limits', () => {
  let gw: GatewayProcess;
  let upstream: Upstream;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 'echo', url: upstream.url, routes: [{ paths: ['/'] }] }] },
      env: { GATEHOUSE_CLIENT_HEADER_TIMEOUT: '1000', GATEHOUSE_CLIENT_BODY_TIMEOUT: '2000' },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('headers within GATEHOUSE_MAX_HEADER_SIZE pass', async () => {
    const res = await httpRequest(gw.proxyUrl, '/ok', { headers: { 'x-big': 'a'.repeat(12_000) } });
    assert.equal(res.status, 200);
    assert.equal(res.json().headers['x-big'].length, 12_000);
  });

  test('oversized headers → 431 with a JSON body, nothing forwarded', async () => {
    const before = upstream.requests.length;
    const { data } = await rawExchange(
      gw.proxyUrl,
      `GET /big HTTP/1.1\r\nHost: gw.test\r\nCookie: ${'c'.repeat(20_000)}\r\n\r\n`,
    );
    assert.match(data, /^HTTP\/1\.1 431 /);
    assert.match(data, /content-type: application\/json/i);
    const body = JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4));
    assert.equal(body.message, 'Request header or cookie too large');
    assert.equal(upstream.requests.length, before);
  });

  const smuggling: [string, string][] = [
    [
      'Content-Length with Transfer-Encoding',
      'POST /smuggle HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: gw.test\r\n\r\n',
    ],
    [
      'two different Content-Length headers',
      'POST /smuggle HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcdGET /hidden HTTP/1.1\r\nHost: gw.test\r\n\r\n',
    ],
    [
      'two identical Content-Length headers',
      'POST /smuggle HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd',
    ],
    [
      'a Content-Length list in one header',
      'POST /smuggle HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4, 4\r\n\r\nabcd',
    ],
    [
      'Transfer-Encoding other than chunked last',
      'POST /smuggle HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
    ],
  ];
  for (const [label, bytes] of smuggling) {
    test(`request smuggling shape: ${label} → 400, never forwarded`, async () => {
      const before = upstream.requests.length;
      const { data, closed } = await rawExchange(gw.proxyUrl, bytes);
      assert.match(data, /^HTTP\/1\.1 400 /);
      assert.equal(data.match(/HTTP\/1\.1 /g)?.length, 1, 'exactly one response, for nothing smuggled behind it');
      assert.ok(closed, 'the connection is closed after the refusal');
      // Give a wrongly forwarded request time to arrive before checking it did not.
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(upstream.requests.slice(before), []);
    });
  }

  test('a well-formed request on a raw socket is forwarded (control for the cases above)', async () => {
    const before = upstream.requests.length;
    const { data } = await rawExchange(gw.proxyUrl, 'POST /control HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd');
    assert.match(data, /^HTTP\/1\.1 200 /);
    assert.deepEqual(upstream.requests.slice(before).map((r) => [r.method, r.url, r.bytes]), [['POST', '/control', 4]]);
  });

  test('a client that stalls half-way through its headers is disconnected', { timeout: 20_000 }, async () => {
    const before = upstream.requests.length;
    // GATEHOUSE_CLIENT_HEADER_TIMEOUT is 1 s; allow generously for Node's periodic check.
    const { data, closed } = await rawExchange(gw.proxyUrl, 'GET /slowloris HTTP/1.1\r\nHost: gw.test\r\nX-Partial: ', 15_000);
    assert.ok(closed, 'the gateway must close the connection');
    assert.match(data, /^HTTP\/1\.1 408 /);
    assert.deepEqual(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)), { message: 'Request timeout' });
    assert.equal(upstream.requests.length, before);
  });

  test('a client that stalls half-way through its body is disconnected and the partial request never completes upstream', { timeout: 20_000 }, async () => {
    const before = upstream.requests.length;
    // GATEHOUSE_CLIENT_BODY_TIMEOUT is 2 s for the whole request.
    const { closed } = await rawExchange(
      gw.proxyUrl,
      'POST /slow-body HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\nonly ten b',
      15_000,
    );
    assert.ok(closed, 'the gateway must close the connection');
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.path === '/slow-body');
    assert.equal(line.aborted, true);
    // The echo upstream records a request only once its body ended: this one never did.
    assert.deepEqual(upstream.requests.slice(before), []);
  });
});
