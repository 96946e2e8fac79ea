import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * An upstream whose answers say how often it was asked (`n`), so a cached
 * answer is recognisable, and whose path picks the response's headers.
 */
function cacheableUpstream(counter: { n: number }) {
  return (req: IncomingMessage, res: ServerResponse) => {
    counter.n++;
    const url = req.url!;
    const body = JSON.stringify({ n: counter.n, url, lang: req.headers['x-lang'] ?? null, auth: req.headers.authorization ?? null });
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json; charset=utf-8' };
    if (url.includes('cookie')) headers['set-cookie'] = 'sid=abc; HttpOnly';
    if (url.includes('private')) headers['cache-control'] = 'private, max-age=60';
    if (url.includes('no-store')) headers['cache-control'] = 'no-store';
    if (url.includes('max-age-1')) headers['cache-control'] = 'max-age=1';
    if (url.includes('html')) headers['content-type'] = 'text/html';
    if (url.includes('big')) {
      // 3000 bytes in chunks, without a Content-Length: the bound is only found while streaming.
      res.writeHead(200, headers);
      for (let i = 0; i < 3; i++) res.write('x'.repeat(1000));
      return res.end();
    }
    res.writeHead(url.includes('missing') ? 404 : url.includes('error') ? 500 : 200, headers);
    res.end(body);
  };
}

describe('proxy-cache: memory strategy against the built gateway', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;
  const counter = { n: 0 };

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream(cacheableUpstream(counter));
    const cache = (config: Record<string, unknown> = {}) => ({ name: 'proxy-cache', config: { strategy: 'memory', max_body_bytes: 2000, ...config } });
    gw = await startGateway({
      config: oneService(upstream.url, [
        { name: 'open', paths: ['/open'], plugins: [cache({ cache_ttl: 2, storage_ttl: 60, vary_headers: ['X-Lang'], vary_query_params: ['page'] })] },
        { name: 'cc', paths: ['/cc'], plugins: [cache({ cache_control: true })] },
        { name: 'nocc', paths: ['/nocc'], plugins: [cache()] },
        { name: 'auth', paths: ['/auth'], plugins: [bearerPlugin(issuer.issuer), cache()] },
      ]),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  async function call(path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' | 'POST' = 'GET') {
    const before = counter.n;
    const res = await request(`${gw.proxyUrl}${path}`, { method, headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, upstreamCalled: counter.n > before };
  }

  it('a miss, then a hit served without the upstream, with the same body, Age and the request id', async () => {
    const miss = await call('/open/a');
    assert.equal(miss.status, 200);
    assert.equal(miss.headers['x-cache-status'], 'Miss');
    assert.match(String(miss.headers['x-cache-key']), /^[0-9a-f]{64}$/);
    assert.ok(miss.upstreamCalled);
    const hit = await call('/open/a');
    assert.equal(hit.headers['x-cache-status'], 'Hit');
    assert.equal(hit.upstreamCalled, false);
    assert.equal(hit.text, miss.text);
    assert.equal(hit.headers['x-cache-key'], miss.headers['x-cache-key']);
    assert.equal(hit.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(hit.headers['content-length'], String(Buffer.byteLength(miss.text)));
    assert.equal(hit.headers.age, '0');
    assert.ok(hit.headers['x-request-id'] && hit.headers['x-request-id'] !== miss.headers['x-request-id'], 'each answer has its own request id');
  });

  it('Age grows, and the entry goes stale after cache_ttl (kept for storage_ttl: Refresh)', async () => {
    await call('/open/ttl');
    await new Promise((r) => setTimeout(r, 1_100));
    const aged = await call('/open/ttl');
    assert.equal(aged.headers['x-cache-status'], 'Hit');
    assert.equal(aged.headers.age, '1');
    await new Promise((r) => setTimeout(r, 1_000));
    const expired = await call('/open/ttl');
    assert.equal(expired.headers['x-cache-status'], 'Refresh');
    assert.ok(expired.upstreamCalled);
    const again = await call('/open/ttl');
    assert.equal(again.headers['x-cache-status'], 'Hit');
    assert.equal(again.text, expired.text, 'the refreshed answer was stored');
  });

  it('vary_query_params: only the named parameters, in any order, make a different entry', async () => {
    const a = await call('/open/q?page=1&utm=a');
    assert.equal(a.headers['x-cache-status'], 'Miss');
    assert.equal((await call('/open/q?utm=b&page=1')).headers['x-cache-status'], 'Hit');
    assert.equal((await call('/open/q?page=2')).headers['x-cache-status'], 'Miss');
  });

  it('vary_headers: a different value is a different entry', async () => {
    const de = await call('/open/v', { 'x-lang': 'de' });
    assert.equal(de.headers['x-cache-status'], 'Miss');
    const fr = await call('/open/v', { 'x-lang': 'fr' });
    assert.equal(fr.headers['x-cache-status'], 'Miss');
    const deAgain = await call('/open/v', { 'x-lang': 'de' });
    assert.equal(deAgain.headers['x-cache-status'], 'Hit');
    assert.equal(JSON.parse(deAgain.text).lang, 'de');
  });

  it('Set-Cookie is never stored', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await call('/nocc/cookie');
      assert.equal(r.headers['x-cache-status'], 'Bypass');
      assert.ok(r.upstreamCalled);
      assert.equal(r.headers['set-cookie'], 'sid=abc; HttpOnly');
    }
  });

  it('credentials on a route without authentication bypass (RFC 9111 §3.5)', async () => {
    await call('/open/creds');
    for (const h of [{ authorization: 'Bearer x' }, { cookie: 'a=b' }] as Record<string, string>[]) {
      const r = await call('/open/creds', h);
      assert.equal(r.headers['x-cache-status'], 'Bypass');
      assert.ok(r.upstreamCalled);
      assert.equal(r.headers['x-cache-key'], undefined);
    }
  });

  it('statuses, methods and content types outside the lists are not stored', async () => {
    assert.equal((await call('/nocc/error')).headers['x-cache-status'], 'Bypass');
    assert.equal((await call('/nocc/error')).headers['x-cache-status'], 'Bypass');
    assert.equal((await call('/nocc/html')).headers['x-cache-status'], 'Bypass');
    assert.equal((await call('/nocc/p', {}, 'POST')).headers['x-cache-status'], 'Bypass');
    await call('/nocc/missing');
    const missing = await call('/nocc/missing');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['x-cache-status'], 'Hit', '404 is in the default response_code');
  });

  it('HEAD has its own entry', async () => {
    const head = await call('/nocc/h', {}, 'HEAD');
    assert.equal(head.headers['x-cache-status'], 'Miss');
    const headHit = await call('/nocc/h', {}, 'HEAD');
    assert.equal(headHit.headers['x-cache-status'], 'Hit');
    assert.equal(headHit.text, '');
    assert.equal((await call('/nocc/h')).headers['x-cache-status'], 'Miss');
  });

  it('a body beyond max_body_bytes is streamed whole but never stored', async () => {
    const first = await call('/nocc/big');
    assert.equal(first.text.length, 3000);
    const second = await call('/nocc/big');
    assert.equal(second.text.length, 3000);
    assert.ok(second.upstreamCalled);
    assert.notEqual(second.headers['x-cache-status'], 'Hit');
  });

  it('cache_control: private and no-store responses are never stored; max-age sets the lifetime', async () => {
    for (const path of ['/cc/private', '/cc/no-store']) {
      assert.equal((await call(path)).headers['x-cache-status'], 'Bypass');
      assert.equal((await call(path)).headers['x-cache-status'], 'Bypass');
    }
    await call('/cc/max-age-1');
    assert.equal((await call('/cc/max-age-1')).headers['x-cache-status'], 'Hit');
    await new Promise((r) => setTimeout(r, 1_050));
    assert.equal((await call('/cc/max-age-1')).headers['x-cache-status'], 'Miss', 'gone from storage with its lifetime');
  });

  it("cache_control: the request's no-store bypasses and no-cache refreshes", async () => {
    await call('/cc/req');
    assert.equal((await call('/cc/req')).headers['x-cache-status'], 'Hit');
    const noStore = await call('/cc/req', { 'cache-control': 'no-store' });
    assert.equal(noStore.headers['x-cache-status'], 'Bypass');
    assert.ok(noStore.upstreamCalled);
    const noCache = await call('/cc/req', { 'cache-control': 'no-cache' });
    assert.equal(noCache.headers['x-cache-status'], 'Refresh');
    assert.ok(noCache.upstreamCalled);
    const after = await call('/cc/req');
    assert.equal(after.headers['x-cache-status'], 'Hit');
    assert.equal(after.text, noCache.text, 'the refreshed answer replaced the entry');
  });

  it('without cache_control, the response Cache-Control is not consulted (Kong)', async () => {
    await call('/nocc/no-store');
    assert.equal((await call('/nocc/no-store')).headers['x-cache-status'], 'Hit');
  });

  it('two callers on an authenticated route never share an entry', async () => {
    const alice = await issuer.token({ sub: 'alice' });
    const bob = await issuer.token({ sub: 'bob' });
    const a1 = await call('/auth/me', { authorization: `Bearer ${alice}` });
    assert.equal(a1.headers['x-cache-status'], 'Miss');
    const b1 = await call('/auth/me', { authorization: `Bearer ${bob}` });
    assert.equal(b1.headers['x-cache-status'], 'Miss', "bob is not served alice's entry");
    assert.ok(b1.upstreamCalled);
    assert.notEqual(b1.headers['x-cache-key'], a1.headers['x-cache-key']);
    assert.equal(JSON.parse(b1.text).auth, `Bearer ${bob}`);
    const b2 = await call('/auth/me', { authorization: `Bearer ${bob}` });
    assert.equal(b2.headers['x-cache-status'], 'Hit');
    assert.equal(JSON.parse(b2.text).auth, `Bearer ${bob}`);
    // Another token for the same subject is the same caller.
    const alice2 = await issuer.token({ sub: 'alice' });
    const a2 = await call('/auth/me', { authorization: `Bearer ${alice2}` });
    assert.equal(a2.headers['x-cache-status'], 'Hit');
    assert.equal(JSON.parse(a2.text).auth, `Bearer ${alice}`);
    // No token: refused before the cache is consulted.
    assert.equal((await call('/auth/me')).status, 401);
  });
});
