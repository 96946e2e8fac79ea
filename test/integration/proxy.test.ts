import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { NODE_FLAGS } from '../../src/runtime/node-flags.js';
import { request as httpRequestRaw } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { httpRequest, rssBytes, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What the echo upstream saw, as it reports it. */
interface Echo {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
}

describe('proxy: routing and forwarding', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'echo',
            url: `${upstream.url}/base`,
            routes: [
              { name: 'stripped', paths: ['/echo'] },
              { name: 'kept', paths: ['/keep'], strip_path: false },
              { name: 'host-preserved', paths: ['/preserve'], preserve_host: true },
            ],
          },
          {
            name: 'root',
            url: `${upstream.url}/`,
            routes: [{ name: 'root-route', paths: ['/root'] }],
          },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    test(`${method} is forwarded with its query string`, async () => {
      const body = method === 'GET' ? undefined : `payload for ${method}`;
      const res = await httpRequest(gw.proxyUrl, '/echo/items?x=1&y=a%20b&x=2', { method, body });
      assert.equal(res.status, 200);
      const echo: Echo = res.json();
      assert.equal(echo.method, method);
      assert.equal(echo.url, '/base/items?x=1&y=a%20b&x=2');
      assert.equal(echo.bytes, body ? Buffer.byteLength(body) : 0);
    });
  }

  test('HEAD is forwarded and answered without a body', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(gw.proxyUrl, '/echo/head?q=1', { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    assert.ok(Number(res.headers['content-length']) > 0, 'the upstream content-length is passed on');
    const seen = upstream.requests.slice(before);
    assert.deepEqual(seen.map((r) => [r.method, r.url]), [['HEAD', '/base/head?q=1']]);
  });

  test('service path joining with strip_path true (Kong v0)', async () => {
    for (const [sent, expected] of [
      ['/echo', '/base'],
      ['/echo/', '/base/'],
      ['/echo/a/b', '/base/a/b'],
      ['/echoes', '/base/es'], // Kong docs, path_handling v0: /s + req = /s/req
      ['/root/x', '/x'],
      ['/root', '/'],
    ] as const) {
      const res = await httpRequest(gw.proxyUrl, sent);
      assert.equal(res.status, 200, sent);
      assert.equal((res.json() as Echo).url, expected, `${sent} → ${expected}`);
    }
  });

  test('strip_path false keeps the matched prefix after the service path', async () => {
    const res = await httpRequest(gw.proxyUrl, '/keep/a?z=9');
    assert.equal(res.status, 200);
    assert.equal((res.json() as Echo).url, '/base/keep/a?z=9');
  });

  test('the forwarded path is the normalised one', async () => {
    const res = await httpRequest(gw.proxyUrl, '/echo/a/./b/../c/%7Euser');
    assert.equal(res.status, 200);
    assert.equal((res.json() as Echo).url, '/base/a/c/~user');
  });

  test('preserve_host false sends the service host upstream; true sends the client Host', async () => {
    const plain = await httpRequest(gw.proxyUrl, '/echo/h', { headers: { host: 'api.example.test' } });
    assert.equal(plain.status, 200);
    assert.equal((plain.json() as Echo).headers.host, `127.0.0.1:${upstream.port}`);
    assert.equal((plain.json() as Echo).headers['x-forwarded-host'], 'api.example.test');

    const preserved = await httpRequest(gw.proxyUrl, '/preserve/h', { headers: { host: 'api.example.test' } });
    assert.equal(preserved.status, 200);
    assert.equal((preserved.json() as Echo).headers.host, 'api.example.test');
  });

  test('no matching route → 404 with Kong\'s JSON body, nothing forwarded', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(gw.proxyUrl, '/nowhere?x=1');
    assert.equal(res.status, 404);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), { message: 'no Route matched with those values' });
    assert.match(String(res.headers['x-request-id']), UUID);
    assert.equal(upstream.requests.length, before);
  });

  for (const [label, path] of [
    ['an encoded slash', '/echo/a%2Fb'],
    ['an encoded backslash', '/echo/a%5cb'],
    ['".." above the root', '/echo/../../etc/passwd'],
    ['an encoded ".." above the root', '/%2e%2e/echo'],
    ['an encoded NUL', '/echo/a%00b'],
  ] as const) {
    test(`a path with ${label} → 400 JSON, nothing forwarded`, async () => {
      const before = upstream.requests.length;
      const res = await httpRequest(gw.proxyUrl, path);
      assert.equal(res.status, 400);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(typeof res.json().message, 'string');
      assert.equal(upstream.requests.length, before);
    });
  }

  test('spoofed X-Forwarded-*, X-Real-IP, Forwarded and X-Request-Id from an untrusted client are replaced', async () => {
    const res = await httpRequest(gw.proxyUrl, '/echo/spoof?a=1', {
      headers: {
        host: 'public.example.test',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-port': '1',
        'x-forwarded-path': '/admin',
        'x-real-ip': '6.6.6.6',
        forwarded: 'for=6.6.6.6;proto=https',
        'x-request-id': 'spoofed-request-id',
      },
    });
    assert.equal(res.status, 200);
    const h = (res.json() as Echo).headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'public.example.test');
    assert.equal(h['x-forwarded-port'], new URL(gw.proxyUrl).port);
    assert.equal(h['x-forwarded-path'], '/echo/spoof');
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.equal(h.forwarded, undefined);
    assert.match(String(h['x-request-id']), UUID);
    assert.equal(res.headers['x-request-id'], h['x-request-id'], 'the client gets the id the upstream saw');
  });

  test('each request gets its own request id, returned to the client and equal to the upstream\'s', async () => {
    const a = await httpRequest(gw.proxyUrl, '/echo/id');
    const b = await httpRequest(gw.proxyUrl, '/echo/id');
    for (const r of [a, b]) {
      assert.match(String(r.headers['x-request-id']), UUID);
      assert.equal((r.json() as Echo).headers['x-request-id'], r.headers['x-request-id']);
    }
    assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
  });

  test('hop-by-hop and Connection-nominated request headers are removed; the gateway\'s own still arrive', async () => {
    const res = await httpRequest(gw.proxyUrl, '/echo/hop', {
      headers: [
        'Connection', 'keep-alive, X-Secret, X-Forwarded-For, x-request-id, Host',
        'Connection', 'x-forwarded-proto',
        'X-Secret', 'must-not-arrive',
        'X-Forwarded-For', '6.6.6.6',
        'Keep-Alive', 'timeout=5',
        'TE', 'trailers',
        'Proxy-Authorization', 'Basic c2VjcmV0',
        'X-Kept', 'yes',
        'Host', 'client.example.test',
      ],
    });
    assert.equal(res.status, 200);
    const h = (res.json() as Echo).headers;
    assert.equal(h['x-secret'], undefined);
    assert.equal(h['keep-alive'], undefined);
    assert.equal(h.te, undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.notEqual(h.connection?.toString().toLowerCase().includes('x-secret'), true);
    assert.equal(h['x-kept'], 'yes');
    // Nominating the gateway's own headers cannot make it drop them.
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h.host, `127.0.0.1:${upstream.port}`);
    assert.match(String(h['x-request-id']), UUID);
    assert.equal(h['x-request-id'], res.headers['x-request-id']);
  });
});

describe('proxy: response headers', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(201, [
          ['Content-Type', 'text/plain'],
          ['Connection', 'keep-alive, X-Upstream-Secret'],
          ['X-Upstream-Secret', 'internal'],
          ['Keep-Alive', 'timeout=5'],
          ['Proxy-Authenticate', 'Basic realm="upstream"'],
          ['Trailer', 'X-Checksum'],
          ['X-Request-Id', 'upstream-chosen-id'],
          ['X-Visible', 'yes'],
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
        ].flat());
        res.end('created');
      });
    });
    gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 'hdr', url: upstream.url, routes: [{ paths: ['/'] }] }] },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('hop-by-hop and Connection-nominated response headers are removed; status, body and others pass', async () => {
    const res = await httpRequest(gw.proxyUrl, '/anything');
    assert.equal(res.status, 201);
    assert.equal(res.text(), 'created');
    assert.equal(res.headers['x-visible'], 'yes');
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(res.headers['x-upstream-secret'], undefined);
    assert.equal(res.headers['proxy-authenticate'], undefined);
    assert.equal(res.headers.trailer, undefined);
    // The client asked for Connection: close, so no keep-alive of the gateway's own either.
    assert.equal(res.headers['keep-alive'], undefined);
    assert.doesNotMatch(String(res.headers.connection ?? ''), /x-upstream-secret/i);
    // The gateway's request id replaces the upstream's.
    assert.match(String(res.headers['x-request-id']), UUID);
  });
});

describe('proxy: trusted proxy in front (GATEHOUSE_TRUSTED_IPS=127.0.0.1)', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 'echo', url: upstream.url, routes: [{ paths: ['/'] }] }] },
      env: { GATEHOUSE_TRUSTED_IPS: '127.0.0.1' },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('X-Forwarded-For is extended, the other X-Forwarded-*, X-Real-IP and X-Request-Id are kept', async () => {
    const res = await httpRequest(gw.proxyUrl, '/t', {
      headers: {
        host: 'internal.example.test',
        'x-forwarded-for': '203.0.113.7, 10.0.0.1',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'public.example.test',
        'x-forwarded-port': '443',
        'x-forwarded-path': '/outer/t',
        'x-real-ip': '203.0.113.7',
        'x-request-id': 'edge-abc-123',
      },
    });
    assert.equal(res.status, 200);
    const h = (res.json() as Echo).headers;
    assert.equal(h['x-forwarded-for'], '203.0.113.7, 10.0.0.1, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-host'], 'public.example.test');
    assert.equal(h['x-forwarded-port'], '443');
    assert.equal(h['x-forwarded-path'], '/outer/t');
    assert.equal(h['x-real-ip'], '203.0.113.7');
    assert.equal(h['x-request-id'], 'edge-abc-123');
    assert.equal(res.headers['x-request-id'], 'edge-abc-123');
  });

  test('without forwarded headers the trusted peer is treated like a direct client', async () => {
    const res = await httpRequest(gw.proxyUrl, '/t', { headers: { host: 'internal.example.test' } });
    const h = (res.json() as Echo).headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'internal.example.test');
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.match(String(h['x-request-id']), UUID);
    assert.equal(res.headers['x-request-id'], h['x-request-id']);
  });
});

/**
 * Large bodies must stream: the gateway process's resident memory is sampled
 * from /proc while 256 MiB go through it in each direction.
 */
describe('proxy: large bodies stream with bounded memory', () => {
  const SIZE = 256 * 1024 * 1024;
  const CHUNK = 64 * 1024;
  const RSS_GROWTH_LIMIT = 100 * 1024 * 1024;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let downloadHash = '';

  /** Deterministic but varying content: chunk i is a block stamped with i. */
  const block = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) block[i] = (i * 31 + 7) & 0xff;
  const chunkAt = (i: number) => {
    const c = Buffer.from(block);
    c.writeUInt32BE(i, 0);
    return c;
  };

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.method === 'POST') {
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        req.on('end', () => {
          const body = JSON.stringify({ bytes, sha256: hash.digest('hex') });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
        return;
      }
      // GET: SIZE bytes generated on the fly, respecting backpressure.
      req.resume();
      const hash = createHash('sha256');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIZE });
      let i = 0;
      const pump = () => {
        while (i * CHUNK < SIZE) {
          const c = chunkAt(i++);
          hash.update(c);
          if (!res.write(c)) return void res.once('drain', pump);
        }
        downloadHash = hash.digest('hex');
        res.end();
      };
      pump();
    });
    gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 'bulk', url: upstream.url, routes: [{ paths: ['/bulk'] }] }] },
      env: { GATEHOUSE_LOG_LEVEL: 'info' },
      // Started as npm start and the Dockerfile start it: the V8 flags decide when body memory is collected.
      nodeArgs: NODE_FLAGS,
    });
    // Warm up so the baseline includes the code paths a request loads.
    for (let i = 0; i < 3; i++) await httpRequest(gw.proxyUrl, '/bulk/warm', { method: 'POST', body: 'x' });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  /** Samples the gateway's RSS every 20 ms while `run` is in progress; returns the peak growth. */
  async function peakRssGrowth(run: () => Promise<void>): Promise<number> {
    const pid = gw.child.pid!;
    const baseline = rssBytes(pid);
    let peak = baseline;
    const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 20);
    try {
      await run();
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, rssBytes(pid));
    return peak - baseline;
  }

  test('a 256 MiB upload reaches the upstream intact', { timeout: 30_000 }, async (t) => {
    let result: { bytes: number; sha256: string } | undefined;
    const sent = createHash('sha256');
    const growth = await peakRssGrowth(
      () =>
        new Promise<void>((resolve, reject) => {
          const u = new URL(gw.proxyUrl);
          const req = httpRequestRaw(
            { host: u.hostname, port: u.port, path: '/bulk/upload', method: 'POST', agent: false, headers: { 'content-length': SIZE, 'content-type': 'application/octet-stream' } },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => {
                try {
                  assert.equal(res.statusCode, 200);
                  result = JSON.parse(Buffer.concat(chunks).toString());
                  resolve();
                } catch (e) {
                  reject(e);
                }
              });
              res.on('error', reject);
            },
          );
          req.on('error', reject);
          let i = 0;
          const pump = () => {
            while (i * CHUNK < SIZE) {
              const c = chunkAt(i++);
              sent.update(c);
              if (!req.write(c)) return void req.once('drain', pump);
            }
            req.end();
          };
          pump();
        }),
    );
    t.diagnostic(`gateway RSS growth: ${(growth / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(result?.bytes, SIZE);
    assert.equal(result?.sha256, sent.digest('hex'));
    assert.ok(growth < RSS_GROWTH_LIMIT, `gateway RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB during a ${SIZE / 2 ** 20} MiB upload`);
  });

  test('a 256 MiB download reaches the client intact', { timeout: 30_000 }, async (t) => {
    const received = createHash('sha256');
    let bytes = 0;
    let status = 0;
    const growth = await peakRssGrowth(
      () =>
        new Promise<void>((resolve, reject) => {
          const u = new URL(gw.proxyUrl);
          const req = httpRequestRaw({ host: u.hostname, port: u.port, path: '/bulk/download', agent: false }, (res) => {
            status = res.statusCode!;
            res.on('data', (c: Buffer) => {
              bytes += c.length;
              received.update(c);
            });
            res.on('end', resolve);
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        }),
    );
    t.diagnostic(`gateway RSS growth: ${(growth / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(status, 200);
    assert.equal(bytes, SIZE);
    assert.equal(received.digest('hex'), downloadHash);
    assert.ok(growth < RSS_GROWTH_LIMIT, `gateway RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB during a ${SIZE / 2 ** 20} MiB download`);
  });
});
