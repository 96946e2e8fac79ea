import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, pageJson, type TestBrowser } from '../helpers/browser.js';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { TestPki, tlsRequest } from '../helpers/tls.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json(): any;
}

function h2(session: ClientHttp2Session, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; endStream?: boolean } = {}): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': opts.method ?? 'GET', ':path': path, ...opts.headers }, { endStream: opts.body === undefined });
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      resolve({ status: Number(headers[':status']), headers, body, json: () => JSON.parse(body) });
    });
    stream.on('error', reject);
    if (opts.body !== undefined) stream.end(opts.body);
  });
}

describe('HTTP/2 to clients: ALPN h2 on TLS listeners, same routing, headers and errors', () => {
  const pki = new TestPki();
  const pair = pki.issue('srv', ['localhost', '127.0.0.1']);
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let h2Url: string;
  let session: ClientHttp2Session;
  let slowRequests = 0;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        slowRequests++;
        // Answers only when the client has gone: tells whether the upstream request was aborted.
        req.socket.once('close', () => slowRequests--);
        return;
      }
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, bytes, httpVersion: req.httpVersion });
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
        res.end(body);
      });
    });
    gw = await startGateway({
      env: {
        GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0 ssl http2',
        GATEHOUSE_SSL_CERT: pair.certFile,
        GATEHOUSE_SSL_CERT_KEY: pair.keyFile,
      },
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'api',
            url: upstream.url,
            routes: [
              { name: 'any', paths: ['/any'] },
              { name: 'slow', paths: ['/slow'], strip_path: false },
              { name: 'hosted', paths: ['/hosted'], hosts: ['api.example.com'], preserve_host: true },
              { name: 'ws-only', paths: ['/ws-only'], protocols: ['ws', 'wss'] },
              { name: 'bearer', paths: ['/bearer'], plugins: [bearerPlugin(issuer.issuer, { upstream_headers_claims: ['sub'], upstream_headers_names: ['x-user-sub'] })] },
            ],
          },
        ],
      },
    });
    h2Url = gw.proxyUrl;
    session = connect(h2Url, { ca: pki.ca.cert, servername: 'localhost' });
  });

  after(async () => {
    session?.close();
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  it('negotiates h2 by ALPN and forwards over HTTP/1.1 without any pseudo-header', async () => {
    const res = await h2(session, '/any/x?y=1');
    assert.equal(res.status, 200);
    const seen = res.json();
    assert.equal(seen.httpVersion, '1.1', 'upstreams are reached over HTTP/1.1');
    assert.equal(seen.url, '/x?y=1');
    assert.ok(!seen.rawHeaders.some((h: string) => h.startsWith(':')), `no pseudo-header upstream: ${seen.rawHeaders}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-host'], `localhost:${new URL(h2Url).port}`, ':authority is the host');
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2'], 'repeated response fields survive');
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  it('routes on :authority as the host (hosts, preserve_host)', async () => {
    const res = await h2(session, '/hosted', { headers: { ':authority': 'api.example.com' } });
    assert.equal(res.status, 200);
    assert.equal(res.json().headers.host, 'api.example.com');
    const other = await h2(session, '/hosted', { headers: { ':authority': 'other.example.com' } });
    assert.equal(other.status, 404);
    assert.deepEqual(other.json(), { message: 'no Route matched with those values' });
  });

  it('streams a request body sent without content-length (HTTP/2 has no chunked encoding)', async () => {
    const body = Buffer.alloc(300_000, 7);
    const res = await h2(session, '/any/upload', { method: 'POST', body });
    assert.equal(res.status, 200);
    assert.equal(res.json().bytes, body.length);
  });

  it('gives the same errors: 401 with a challenge for a missing token, 426 on a WebSocket-only route', async () => {
    const denied = await h2(session, '/bearer', { headers: { accept: 'application/json' } });
    assert.equal(denied.status, 401);
    assert.match(String(denied.headers['www-authenticate']), /^Bearer/);
    const token = await issuer.token({ sub: 'alice' });
    const allowed = await h2(session, '/bearer', { headers: { authorization: `Bearer ${token}`, 'x-user-sub': 'mallory' } });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.json().headers['x-user-sub'], 'alice', 'the spoofed identity header was replaced');
    const wsOnly = await h2(session, '/ws-only');
    assert.equal(wsOnly.status, 426);
    assert.deepEqual(wsOnly.json(), { message: 'Please use WebSocket protocol' });
  });

  it('multiplexes: one stream reset does not abort the other streams of the session', async () => {
    const stream = session.request({ ':method': 'GET', ':path': '/slow' });
    stream.on('error', () => undefined);
    while (slowRequests === 0) await new Promise((r) => setTimeout(r, 20));
    const many = Array.from({ length: 20 }, (_, i) => h2(session, `/any/${i}`));
    stream.close(constants.NGHTTP2_CANCEL);
    const results = await Promise.all(many);
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
    // The reset stream's upstream request was aborted (not left to read_timeout).
    const deadline = Date.now() + 5_000;
    while (slowRequests > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(slowRequests, 0);
  });

  it('keeps HTTP/1.1 on the same listener for clients that do not offer h2', async () => {
    const res = await tlsRequest(`${h2Url}/any`, { ca: pki.ca.cert, servername: 'localhost' });
    assert.equal(res.status, 200);
    assert.equal(res.alpn, false);
  });

  it('serves Chromium over h2', async () => {
    let browser: TestBrowser | undefined;
    try {
      browser = await launchBrowser();
      const context = await browser.browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      const response = await page.goto(`${h2Url.replace('127.0.0.1', 'localhost')}/any/page`);
      assert.equal(response?.status(), 200);
      const protocol = await page.evaluate<string>('performance.getEntriesByType("navigation")[0].nextHopProtocol');
      assert.equal(protocol, 'h2');
      const seen = await pageJson(page);
      assert.equal(seen.url, '/page');
      assert.ok(!seen.rawHeaders.some((h: string) => h.startsWith(':')));
    } finally {
      await browser?.close();
    }
  });
});
