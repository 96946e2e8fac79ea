import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Two gateway processes sharing one real Redis as the cache store. */
describe('proxy-cache: redis strategy shared by two gateways', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let redis: RedisServer;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let served = 0;

  before(async () => {
    issuer = await FakeIssuer.start();
    redis = await startRedis();
    upstream = await startUpstream((req, res) => {
      served++;
      const body = JSON.stringify({ n: served, url: req.url, auth: req.headers.authorization ?? null });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    const config = oneService(upstream.url, [
      {
        name: 'auth',
        paths: ['/auth'],
        plugins: [bearerPlugin(issuer.issuer), { name: 'proxy-cache', config: { strategy: 'redis', redis: { host: redis.host, port: redis.port } } }],
      },
    ]);
    [a, b] = await Promise.all([startGateway({ config }), startGateway({ config })]);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await upstream?.close();
    await redis?.close();
    await issuer?.stop();
  });

  async function call(gw: GatewayProcess, path: string, token: string) {
    const before = served;
    const res = await request(`${gw.proxyUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.body.text();
    return { status: res.statusCode, cache: res.headers['x-cache-status'], age: res.headers.age, text, upstreamCalled: served > before };
  }

  it("A's miss is B's hit for the same caller, and never another caller's", async () => {
    const alice = await issuer.token({ sub: 'alice' });
    const bob = await issuer.token({ sub: 'bob' });
    const missA = await call(a, '/auth/shared', alice);
    assert.equal(missA.cache, 'Miss');
    assert.ok(missA.upstreamCalled);
    // The SET is sent after the body; give it a moment to land.
    let hitB = await call(b, '/auth/shared', alice);
    for (let i = 0; i < 20 && hitB.cache !== 'Hit'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      hitB = await call(b, '/auth/shared', alice);
    }
    assert.equal(hitB.cache, 'Hit');
    assert.equal(hitB.upstreamCalled, false);
    assert.equal(hitB.text, missA.text);
    assert.equal(hitB.age, '0');
    const bobB = await call(b, '/auth/shared', bob);
    assert.equal(bobB.cache, 'Miss');
    assert.equal(JSON.parse(bobB.text).auth, `Bearer ${bob}`);
  });

  it('Redis paused: requests bypass the cache and are still served; it is used again once back', async () => {
    const alice = await issuer.token({ sub: 'alice' });
    redis.pause();
    try {
      const started = performance.now();
      const r1 = await call(a, '/auth/paused', alice);
      assert.equal(r1.status, 200);
      assert.equal(r1.cache, 'Bypass');
      assert.ok(r1.upstreamCalled);
      // Within the back-off, later requests do not wait on Redis again.
      const t = performance.now();
      const r2 = await call(a, '/auth/paused', alice);
      assert.equal(r2.status, 200);
      assert.equal(r2.cache, 'Bypass');
      assert.ok(performance.now() - t < 500, 'the second request did not wait for Redis');
      assert.ok(performance.now() - started < 5_000);
    } finally {
      redis.resume();
    }
    await a.waitForLog((l) => /Redis unavailable/.test(l.msg ?? ''));
    let back = await call(a, '/auth/back', alice);
    for (let i = 0; i < 40 && back.cache !== 'Hit'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      back = await call(a, '/auth/back', alice);
    }
    assert.equal(back.cache, 'Hit');
  });
});
