import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * An IdP that answers too much or not at all must not take the gateway down
 * with it: bodies are cut off at 1 MiB (503, the process stays small and up),
 * and a failing JWKS is retried with backoff, not once per request.
 */

const HUGE = 96 * 1024 * 1024;
/** Loopback socket buffers take a few MiB before a cut-off shows; reading a body whole would take all 96. */
const CUT_OFF_WELL_BEFORE = 16 * 1024 * 1024;

/** Peak resident memory of a process over its life (Linux VmHWM). */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

async function call(gw: GatewayProcess, path: string, token?: string) {
  const res = await request(gw.proxyUrl + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
}

describe('identity provider answers are bounded', () => {
  let hugeJwks: FakeIssuer;
  let hugeDiscovery: FakeIssuer;
  let hugeIntrospection: FakeIssuer;
  let normal: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let control: GatewayProcess;

  const routes = (issuers: { jwks: string; discovery: string; introspection: string; normal: string }) => [
    { name: 'jwks', paths: ['/jwks'], plugins: [bearerPlugin(issuers.jwks)] },
    { name: 'discovery', paths: ['/discovery'], plugins: [bearerPlugin(issuers.discovery)] },
    {
      name: 'introspection',
      paths: ['/introspection'],
      plugins: [bearerPlugin(issuers.introspection, { auth_methods: ['introspection'], client_id: ['gatehouse'], client_secret: ['s3cret'] })],
    },
    { name: 'normal', paths: ['/normal'], plugins: [bearerPlugin(issuers.normal)] },
  ];

  before(async () => {
    hugeJwks = await FakeIssuer.start(undefined, 0, { huge: { endpoint: 'jwks', bytes: HUGE } });
    hugeDiscovery = await FakeIssuer.start(undefined, 0, { huge: { endpoint: 'discovery', bytes: HUGE } });
    hugeIntrospection = await FakeIssuer.start(undefined, 0, { huge: { endpoint: 'introspect', bytes: HUGE } });
    normal = await FakeIssuer.start();
    upstream = await startUpstream();
    gw = await startGateway({
      config: oneService(upstream.url, routes({ jwks: hugeJwks.issuer, discovery: hugeDiscovery.issuer, introspection: hugeIntrospection.issuer, normal: normal.issuer })),
      env: { GATEHOUSE_LOG_LEVEL: 'info' },
    });
    // The same gateway with well-behaved IdPs, for what "normal memory" is.
    control = await startGateway({
      config: oneService(upstream.url, routes({ jwks: normal.issuer, discovery: normal.issuer, introspection: normal.issuer, normal: normal.issuer })),
      env: { GATEHOUSE_LOG_LEVEL: 'info' },
    });
  });

  after(async () => {
    await gw?.stop();
    await control?.stop();
    await upstream?.close();
    for (const idp of [hugeJwks, hugeDiscovery, hugeIntrospection, normal]) await idp?.stop();
  });

  it('answers 503 when the JWKS, the discovery document or an introspection answer is too large, and stays up and small', { timeout: 60_000 }, async () => {
    const cases: [string, FakeIssuer, string][] = [
      ['/jwks', hugeJwks, await hugeJwks.token({ scope: 'x' })],
      ['/discovery', hugeDiscovery, await hugeDiscovery.token({ scope: 'x' })],
      ['/introspection', hugeIntrospection, 'an-opaque-token'],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [path, , token] of cases) {
        const r = await call(gw, path, token);
        assert.equal(r.status, 503, `${path}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(r.body, { message: 'The identity provider is unavailable' });
      }
      await new Promise((r) => setTimeout(r, 1100)); // past the first retry backoff: the IdPs are asked again
    }
    assert.ok(hugeIntrospection.introspections >= 3, `introspection was asked ${hugeIntrospection.introspections} times`);
    for (const [path, idp] of cases) {
      assert.ok(idp.hugeResponses > 0, `${path}: the large body was served`);
      const perResponse = idp.hugeBytesSent / idp.hugeResponses;
      assert.ok(perResponse < CUT_OFF_WELL_BEFORE, `${path}: the IdP got to send ${perResponse} bytes per response before the gateway hung up`);
    }

    // Still up, still serving the well-behaved IdP's tokens.
    assert.equal((await call(gw, '/normal', await normal.token({ scope: 'x' }))).status, 200);
    const live = await request(`${gw.statusUrl}/health/live`);
    assert.equal(live.statusCode, 200);
    await live.body.dump();
    assert.equal(gw.child.exitCode, null);

    const peak = peakRss(gw.child.pid!);
    const normalPeak = peakRss(control.child.pid!);
    assert.ok(peak < normalPeak + 48 * 1024 * 1024, `peak RSS ${peak >> 20} MiB against ${normalPeak >> 20} MiB with well-behaved IdPs`);
  });
});

describe('a failing JWKS endpoint is not hammered', () => {
  let idp: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    idp = await FakeIssuer.start(undefined, 0, { jwksStatus: 503 });
    upstream = await startUpstream();
    gw = await startGateway({ config: oneService(upstream.url, [{ name: 'r', paths: ['/r'], plugins: [bearerPlugin(idp.issuer)] }]) });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await idp?.stop();
  });

  it('answers 503 to a burst of requests with only a few JWKS fetches, and recovers', { timeout: 30_000 }, async () => {
    await gw.waitForLog((l) => l.msg === 'fetching issuer keys failed');
    const token = await idp.token({ scope: 'x' });
    const before = idp.jwksFetches;
    const started = Date.now();
    for (let i = 0; i < 40; i++) assert.equal((await call(gw, '/r', token)).status, 503);
    const parallel = await Promise.all(Array.from({ length: 40 }, () => call(gw, '/r', token)));
    for (const r of parallel) assert.equal(r.status, 503);
    const elapsed = Date.now() - started;
    // Backoff 1 s, 2 s, 4 s...: however long the burst took, a handful of fetches at most.
    const allowed = 1 + Math.ceil(Math.log2(1 + elapsed / 1000));
    assert.ok(idp.jwksFetches - before <= allowed, `${idp.jwksFetches - before} JWKS fetches for 80 requests in ${elapsed} ms`);

    idp.options.jwksStatus = undefined;
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await call(gw, '/r', token)).status;
    }
    assert.equal(status, 200, 'keys are fetched again once the backoff has passed');
  });
});
