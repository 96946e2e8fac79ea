import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { DEMO_USERS, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, rssBytes, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { loginAtIdp } from '../helpers/idp-login.js';
import { freePort } from '../helpers/ports.js';
import { TestPki } from '../helpers/tls.js';

/**
 * A real WebSocket upstream (the `ws` package): echoes messages, records each
 * handshake's headers and every close it sees, and on `/flood` sends as much
 * as it is told to.
 */
class WsUpstream {
  server!: Server;
  wss = new WebSocketServer({ noServer: true });
  url = '';
  handshakes: IncomingMessage['headers'][] = [];
  closes: { code: number; reason: string }[] = [];
  sockets = new Set<WebSocket>();
  received = 0;
  /** Answer the handshake with this status instead of 101. */
  refuse?: number;
  /** Hold handshakes without answering (counted in `stalled`). */
  stall = false;
  stalled = 0;
  private held = new Set<import('node:stream').Duplex>();

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, headers: req.headers }));
    });
    this.server.on('upgrade', (req, socket, head) => {
      this.handshakes.push(req.headers);
      if (this.stall) {
        this.stalled++;
        socket.on('error', () => undefined);
        this.held.add(socket);
        socket.once('close', () => this.held.delete(socket));
        return;
      }
      if (this.refuse) {
        socket.end(`HTTP/1.1 ${this.refuse} Forbidden\r\ncontent-type: application/json\r\ncontent-length: 18\r\nconnection: close\r\n\r\n{"upstream":"no!"}`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(ws);
        ws.on('close', (code, reason) => {
          this.sockets.delete(ws);
          this.closes.push({ code, reason: reason.toString() });
        });
        if (req.url?.startsWith('/sink')) {
          // Reads nothing until told to: the client's flood must back up, not pile up in the gateway.
          ws.pause();
          ws.on('message', (m: Buffer) => (this.received += m.length));
          return;
        }
        if (req.url?.startsWith('/flood')) {
          const total = Number(new URL(req.url, 'http://x').searchParams.get('bytes'));
          const chunk = randomBytes(1 << 20);
          for (let sent = 0; sent < total; sent += chunk.length) ws.send(chunk);
          return;
        }
        ws.on('message', (m, binary) => ws.send(m, { binary }));
        ws.send(JSON.stringify({ hello: req.url }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop() {
    for (const ws of this.sockets) ws.terminate();
    for (const s of this.held) s.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** Opens a WebSocket; resolves on open with the first message, or with the refusal's status and JSON body. */
function open(url: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; first?: string; firstBytes?: number; status?: number; body?: any; headers?: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body: body ? JSON.parse(body) : undefined, headers: res.headers }));
    });
    ws.once('upgrade', (res) => ws.once('message', (m: Buffer) => resolve({ ws, first: m.toString(), firstBytes: m.length, status: res.statusCode, headers: res.headers })));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WebSockets: authenticated upgrades, tunnelling, closing', () => {
  let issuer: FakeIssuer;
  let upstream: WsUpstream;
  let gw: GatewayProcess;
  let ws: string;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await new WsUpstream().start();
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'chat',
            url: upstream.url,
            routes: [
              {
                name: 'chat',
                paths: ['/chat'],
                strip_path: false,
                protocols: ['http', 'https', 'ws', 'wss'],
                plugins: [bearerPlugin(issuer.issuer, { upstream_headers_claims: ['sub'], upstream_headers_names: ['x-user-sub'] })],
              },
              { name: 'open', paths: ['/open', '/flood', '/sink'], strip_path: false, protocols: ['ws'] },
              { name: 'plain', paths: ['/plain'], strip_path: false },
            ],
          },
          { name: 'idle', url: upstream.url, read_timeout: 400, routes: [{ name: 'idle', paths: ['/idle'], strip_path: false, protocols: ['ws'] }] },
          { name: 'down', url: `http://127.0.0.1:${await freePort()}`, retries: 0, routes: [{ name: 'down', paths: ['/down'], protocols: ['ws'] }] },
        ],
      },
    });
    ws = gw.proxyUrl.replace('http:', 'ws:');
  });

  after(async () => {
    await gw?.stop();
    await upstream?.stop();
    await issuer?.stop();
  });

  it('authenticates the upgrade like any request, sets identity headers and strips spoofed ones, then tunnels', async () => {
    const token = await issuer.token({ sub: 'alice' });
    const before = upstream.handshakes.length;
    const r = await open(`${ws}/chat/room?x=1`, { authorization: `Bearer ${token}`, 'x-user-sub': 'mallory', 'x-userinfo': 'forged' });
    assert.equal(r.status, 101);
    assert.deepEqual(JSON.parse(r.first!), { hello: '/chat/room?x=1' });
    assert.match(String(r.headers!['x-request-id']), /^[0-9a-f-]{36}$/);
    const seen = upstream.handshakes[before];
    assert.equal(seen['x-user-sub'], 'alice');
    assert.equal(seen['x-userinfo'], undefined);
    assert.equal(seen.upgrade, 'websocket');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.ok(seen['sec-websocket-key'], 'the handshake fields go through');
    const echo = new Promise<string>((resolve) => r.ws!.once('message', (m) => resolve(m.toString())));
    r.ws!.send('hello through the gateway');
    assert.equal(await echo, 'hello through the gateway');
    r.ws!.close(1000, 'bye');
    await until(() => upstream.closes.some((c) => c.code === 1000 && c.reason === 'bye'), 'the upstream to see the client\'s close');
  });

  it('refuses an upgrade without credentials with the normal 401 JSON, never a 101, and never asks the upstream', async () => {
    const before = upstream.handshakes.length;
    const r = await open(`${ws}/chat`);
    assert.equal(r.status, 401);
    assert.match(String(r.headers!['www-authenticate']), /^Bearer/);
    assert.equal(typeof r.body.message, 'string');
    const bad = await open(`${ws}/chat`, { authorization: 'Bearer not.a.token' });
    assert.equal(bad.status, 401);
    assert.equal(upstream.handshakes.length, before);
    const logged = await gw.waitForLog((l) => l.msg === 'request' && l.path === '/chat' && l.status === 401);
    assert.equal(logged.route, 'chat');
  });

  it('refuses a WebSocket upgrade on a route without ws/wss, and a plain request on a ws-only route', async () => {
    const r = await open(`${ws}/plain`);
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { message: 'Bad request', reason: 'this route does not accept WebSocket connections' });
    const res = await fetch(`${gw.proxyUrl}/open`);
    assert.equal(res.status, 426);
    assert.equal(res.headers.get('upgrade'), 'websocket');
    assert.deepEqual(await res.json(), { message: 'Please use WebSocket protocol' });
  });

  it('relays an upstream that declines the upgrade, and answers 502 when the upstream is down', async () => {
    upstream.refuse = 403;
    try {
      const r = await open(`${ws}/open`);
      assert.equal(r.status, 403);
      assert.deepEqual(r.body, { upstream: 'no!' });
    } finally {
      upstream.refuse = undefined;
    }
    const down = await open(`${ws}/down`);
    assert.equal(down.status, 502);
    assert.deepEqual(down.body, { message: 'An invalid response was received from the upstream server' });
  });

  it('survives a client that resets the connection while its handshake is in progress', async () => {
    upstream.stall = true;
    try {
      const socket = connect(Number(new URL(gw.proxyUrl).port), '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(
        'GET /open HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await until(() => upstream.stalled > 0, 'the upstream to hold the handshake');
      socket.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      upstream.stall = false;
    }
    assert.equal(gw.child.exitCode, null, 'the gateway is still running');
    const r = await open(`${ws}/open`);
    assert.equal(r.status, 101);
    r.ws!.close();
  });

  it('closes cleanly from the upstream side: the client sees the upstream\'s code', async () => {
    const r = await open(`${ws}/open`);
    const client = closed(r.ws!);
    const server = [...upstream.sockets].at(-1)!;
    server.close(4001, 'done here');
    assert.deepEqual(await client, { code: 4001, reason: 'done here' });
  });

  it('closes an idle connection after the service read_timeout with 1001 on both sides', async () => {
    const r = await open(`${ws}/idle`);
    const seen = upstream.closes.length;
    const client = await closed(r.ws!);
    assert.equal(client.code, 1001);
    await until(() => upstream.closes.length > seen, 'the upstream close');
    assert.equal(upstream.closes.at(-1)!.code, 1001);
  });

  it('a flood from the upstream to a client that does not read stays in the sockets, not in the gateway (backpressure)', async () => {
    const total = 96 << 20;
    const r = await open(`${ws}/flood?bytes=${total}`).catch(() => undefined);
    // The first message is the flood's first chunk.
    assert.ok(r?.ws);
    r.ws.pause();
    const baseline = rssBytes(gw.child.pid!);
    await new Promise((res) => setTimeout(res, 1_500));
    const grown = rssBytes(gw.child.pid!) - baseline;
    assert.ok(grown < 32 << 20, `gateway RSS grew ${(grown / 1048576).toFixed(1)} MiB while the client did not read`);
    let got = r.firstBytes!;
    const done = new Promise<void>((resolve) =>
      r.ws!.on('message', (m: Buffer) => {
        got += m.length;
        if (got >= total) resolve();
      }),
    );
    r.ws.resume();
    await done;
    assert.equal(got, total, 'every byte arrived once the client read again');
    r.ws.close();
  });

  it('a flood from the client to an upstream that does not read is held back the same way', async () => {
    // The sink sends no greeting (open() waits for a first message), so a plain client here.
    const client = new WebSocket(`${ws}/sink`);
    await new Promise((resolve, reject) => (client.once('open', resolve), client.once('error', reject)));
    await until(() => upstream.sockets.size > 0, 'the sink connection');
    const sink = [...upstream.sockets].at(-1)!;
    const baseline = rssBytes(gw.child.pid!);
    const chunk = randomBytes(1 << 20);
    const total = 96;
    for (let i = 0; i < total; i++) client.send(chunk);
    await new Promise((res) => setTimeout(res, 1_500));
    const grown = rssBytes(gw.child.pid!) - baseline;
    assert.ok(grown < 32 << 20, `gateway RSS grew ${(grown / 1048576).toFixed(1)} MiB while the upstream did not read`);
    assert.ok(client.bufferedAmount > 32 << 20, 'the client holds what could not be sent');
    const before = upstream.received;
    sink.resume();
    await until(() => upstream.received - before >= total * chunk.length, 'the sink to receive everything', 30_000);
    client.close();
  });
});

describe('WebSockets over TLS (wss) on an ssl http2 listener', () => {
  it('upgrades HTTP/1.1 connections of the HTTP/2 listener; a wss-only route refuses clear text with 426', async () => {
    const pki = new TestPki();
    const pair = pki.issue('srv', ['localhost']);
    const upstream = await new WsUpstream().start();
    const gw = await startGateway({
      env: { GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0, 127.0.0.1:0 ssl http2', GATEHOUSE_SSL_CERT: pair.certFile, GATEHOUSE_SSL_CERT_KEY: pair.keyFile },
      config: { _format_version: '3.0', services: [{ name: 's', url: upstream.url, routes: [{ paths: ['/secure'], strip_path: false, protocols: ['wss'] }] }] },
    });
    try {
      const [plain, tls] = gw.logs().find((l) => l.msg === 'gatehouse started')!.listeners as string[];
      const secure = await new Promise<{ first: string; proto: string }>((resolve, reject) => {
        const ws = new WebSocket(`${tls.replace('https:', 'wss:').replace('127.0.0.1', 'localhost')}/secure`, { ca: pki.ca.cert });
        ws.once('message', (m) => {
          resolve({ first: m.toString(), proto: String(upstream.handshakes.at(-1)!['x-forwarded-proto']) });
          ws.close();
        });
        ws.once('error', reject);
      });
      assert.deepEqual(JSON.parse(secure.first), { hello: '/secure' });
      assert.equal(secure.proto, 'https');
      const clear = await open(`${plain.replace('http:', 'ws:')}/secure`);
      assert.equal(clear.status, 426);
      assert.deepEqual(clear.body, { message: 'Please use HTTPS protocol' });
    } finally {
      await gw.stop();
      await upstream.stop();
    }
  });
});

describe('WebSockets: shutdown', () => {
  it('SIGTERM closes open WebSockets with 1001 on both sides, and the gateway exits', async () => {
    const upstream = await new WsUpstream().start();
    const gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 's', url: upstream.url, routes: [{ paths: ['/'], protocols: ['http', 'ws'] }] }] },
    });
    try {
      const r = await open(`${gw.proxyUrl.replace('http:', 'ws:')}/live`);
      const client = closed(r.ws!);
      const code = gw.stop('SIGTERM');
      assert.equal((await client).code, 1001);
      assert.equal(await code, 0);
      await until(() => upstream.closes.length > 0, 'the upstream close');
      assert.equal(upstream.closes[0].code, 1001);
    } finally {
      await gw.stop();
      await upstream.stop();
    }
  });
});

describe('WebSockets in Chromium: the session cookie authenticates the upgrade', () => {
  let idp: DemoIdp;
  let upstream: WsUpstream;
  let gw: GatewayProcess;
  let chromium: TestBrowser;
  let base: string;
  const client = gatehouseClient();

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = await startDemoIdp({ clients: [client.registration([`${base}/chat/callback`])], resource: base });
    upstream = await new WsUpstream().start();
    gw = await startGateway({
      env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}` },
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'chat',
            url: upstream.url,
            routes: [
              {
                name: 'chat',
                paths: ['/chat'],
                strip_path: false,
                protocols: ['http', 'ws'],
                plugins: [
                  {
                    name: 'openid-connect',
                    config: {
                      ...client.pluginConfig(idp.issuer),
                      scopes: ['openid', 'profile', 'kong_api_access'],
                      redirect_uri: [`${base}/chat/callback`],
                      session_secret: randomBytes(32).toString('base64url'),
                      auth_methods: ['authorization_code', 'session'],
                      upstream_headers_claims: ['sub'],
                      upstream_headers_names: ['x-user-sub'],
                    },
                  },
                ],
              },
            ],
          },
        ],
      },
    });
    chromium = await launchBrowser();
  });

  after(async () => {
    await chromium?.close();
    await gw?.stop();
    await upstream?.stop();
    await idp?.stop();
  });

  const talk = (url: string) => `new Promise((resolve) => {
    const ws = new WebSocket(${JSON.stringify(url)});
    const got = [];
    ws.onmessage = (e) => { got.push(e.data); if (got.length === 1) ws.send('from the browser'); else { ws.close(1000); resolve({ opened: true, got }); } };
    ws.onclose = (e) => resolve({ opened: got.length > 0, code: e.code, got });
  })`;

  it('a logged-in page opens a WebSocket through the gateway; the upstream sees who it is', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/chat/page`);
      await loginAtIdp(page, DEMO_USERS[0].username, base);
      const before = upstream.handshakes.length;
      const result = await page.evaluate<{ opened: boolean; got: string[] }>(talk(`${base.replace('http', 'ws')}/chat/live`));
      assert.equal(result.opened, true);
      assert.deepEqual(result.got, [JSON.stringify({ hello: '/chat/live' }), 'from the browser']);
      const seen = upstream.handshakes[before];
      assert.ok(seen['x-user-sub'], 'identity header set from the session');
      assert.doesNotMatch(String(seen.cookie ?? ''), /(^|;\s*)session=/, 'the gateway\'s session cookie is not forwarded');
    } finally {
      await context.close();
    }
  });

  it('a page without a session gets no WebSocket: the upgrade is refused, not tunnelled', async () => {
    const context = await chromium.browser.newContext();
    try {
      const page = await context.newPage();
      // A page of the gateway's origin that needs no login (its 404), with no session cookie in this context.
      await page.goto(`${base}/not-routed`);
      const before = upstream.handshakes.length;
      const result = await page.evaluate<{ opened: boolean; code?: number }>(talk(`${base.replace('http', 'ws')}/chat/nosession`));
      assert.equal(result.opened, false);
      assert.equal(result.code, 1006);
      assert.equal(upstream.handshakes.length, before, 'the upstream never saw the handshake');
      const line = await gw.waitForLog((l) => l.msg === 'request' && l.path === '/chat/nosession');
      assert.ok(line.status >= 300 && line.status < 500, `refused with ${line.status}`);
    } finally {
      await context.close();
    }
  });
});
