import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { httpRequest, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Issuers live under a path here, as in Keycloak: discovery is looked up below it. */
const PATH = '/realms/test';

/** Polls readiness until `pred` holds (the indicator caches results for 5 s, so changes show up late). */
async function readyUntil(gw: GatewayProcess, pred: (status: number) => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await httpRequest(gw.statusUrl, '/health/ready');
    if (pred(res.status)) return res;
    if (Date.now() > deadline) throw new Error(`readiness stayed ${res.status} for ${timeoutMs} ms: ${res.text()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function oidcPlugin(issuer: string) {
  return { name: 'openid-connect', config: { issuer, auth_methods: ['bearer'], client_id: ['gatehouse'] } };
}

describe('health without openid-connect', () => {
  let gw: GatewayProcess;
  let upstream: Upstream;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 'api', url: upstream.url, routes: [{ paths: ['/api'] }] }] },
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('/health/live answers 200 on the status listener', async () => {
    const res = await httpRequest(gw.statusUrl, '/health/live');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test('/health/ready answers 200 when the config loaded and no issuer is configured', async () => {
    const res = await httpRequest(gw.statusUrl, '/health/ready');
    assert.equal(res.status, 200);
    const body = res.json();
    assert.equal(body.status, 'ok');
    assert.equal(body.info.config.status, 'up');
    assert.deepEqual(Object.keys(body.error ?? {}), []);
  });

  test('health paths on the proxy listener are routed like any path (here: no route → 404)', async () => {
    for (const path of ['/health/live', '/health/ready']) {
      const res = await httpRequest(gw.proxyUrl, path);
      assert.equal(res.status, 404, path);
      assert.deepEqual(res.json(), { message: 'no Route matched with those values' });
    }
  });

  test('the status listener serves nothing but health (no proxying there)', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(gw.statusUrl, '/api/x');
    assert.equal(res.status, 404);
    assert.equal(upstream.requests.length, before);
  });
});

describe('readiness follows the IdP discovery document', () => {
  let idp: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    idp = await FakeIssuer.start(undefined, 0, { path: PATH });
    upstream = await startUpstream();
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        // A proxied route under /health: it must not shadow the status listener's endpoints.
        services: [
          {
            name: 'api',
            url: upstream.url,
            routes: [
              { name: 'health-lookalike', paths: ['/health'] },
              { name: 'secured', paths: ['/secured'], plugins: [oidcPlugin(idp.issuer)] },
            ],
          },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await idp?.stop();
    await upstream?.close();
  });

  test('ready while the issuer answers; 503 naming the issuer when it stops; ready again when it returns', { timeout: 60_000 }, async () => {
    const up = await readyUntil(gw, (s) => s === 200);
    const upBody = up.json();
    assert.equal(upBody.status, 'ok');
    assert.equal(upBody.info.issuer.status, 'up');
    assert.ok(idp.requests.includes(`${PATH}/.well-known/openid-configuration`), 'discovery was fetched');
    assert.ok(idp.requests.includes(`${PATH}/jwks`), 'the JWKS was fetched');

    const port = idp.port;
    await idp.stop();
    const down = await readyUntil(gw, (s) => s !== 200);
    assert.equal(down.status, 503);
    const downBody = down.json();
    assert.equal(downBody.status, 'error');
    assert.equal(downBody.error.issuer.status, 'down');
    assert.equal(downBody.details.config.status, 'up');
    // Liveness does no I/O: unaffected by the IdP.
    assert.equal((await httpRequest(gw.statusUrl, '/health/live')).status, 200);

    await idp.listen(port);
    const back = await readyUntil(gw, (s) => s === 200);
    assert.equal(back.json().info.issuer.status, 'up');
  });

  test('readiness results are cached briefly: repeated probes do not each hit the IdP', async () => {
    await readyUntil(gw, (s) => s === 200);
    const before = idp.requests.length;
    for (let i = 0; i < 5; i++) assert.equal((await httpRequest(gw.statusUrl, '/health/ready')).status, 200);
    assert.ok(idp.requests.length - before <= 2, `5 probes caused ${idp.requests.length - before} IdP requests`);
  });

  test('/health/* on the proxy listener goes to the proxied route, not to health', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(gw.proxyUrl, '/health/ready');
    assert.equal(res.status, 200);
    // The echo upstream answered (its body is the request it saw), not terminus.
    assert.equal(res.json().method, 'GET');
    assert.deepEqual(upstream.requests.slice(before).map((r) => r.url), ['/ready']);
  });
});

describe('readiness refuses broken discovery', () => {
  let mismatched: FakeIssuer;
  let keyless: FakeIssuer;
  let gw: GatewayProcess;

  before(async () => {
    mismatched = await FakeIssuer.start(undefined, 0, { path: PATH, claimedIssuer: 'http://127.0.0.1:1/realms/someone-else' });
    keyless = await FakeIssuer.start(undefined, 0, { path: PATH, emptyJwks: true });
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'api',
            url: 'http://127.0.0.1:1',
            routes: [
              { name: 'a', paths: ['/a'], plugins: [oidcPlugin(mismatched.issuer)] },
              { name: 'b', paths: ['/b'], plugins: [oidcPlugin(keyless.issuer)] },
            ],
          },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await mismatched?.stop();
    await keyless?.stop();
  });

  test('a mismatching `issuer` or a JWKS without keys → 503 naming each failed issuer check', async () => {
    const res = await httpRequest(gw.statusUrl, '/health/ready');
    assert.equal(res.status, 503);
    const body = res.json();
    assert.equal(body.status, 'error');
    assert.equal(body.error.issuer_0.status, 'down');
    assert.match(body.error.issuer_0.message, /does not match/);
    assert.equal(body.error.issuer_1.status, 'down');
    assert.match(body.error.issuer_1.message, /no keys/);
    assert.ok(mismatched.requests.includes(`${PATH}/.well-known/openid-configuration`));
    assert.ok(keyless.requests.includes(`${PATH}/jwks`));
  });
});
