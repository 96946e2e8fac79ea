import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer, signingKey } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Several routes naming one issuer with different `extra_jwks_uris`: each
 * route trusts the issuer's keys plus its own extras, never another route's.
 */
describe('openid-connect: extra JWKS keys belong to the route that named them', () => {
  let issuer: FakeIssuer;
  let extra: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    // Another key set, published elsewhere, for tokens that carry the issuer's `iss`.
    extra = await FakeIssuer.start([await signingKey('ES256')]);
    upstream = await startUpstream();
    const extraJwks = `${extra.issuer}/jwks`;
    gw = await startGateway({
      config: oneService(upstream.url, [
        // First in the file on purpose: the first plugin naming an issuer must not set the keys for all.
        { name: 'with-extra', paths: ['/with-extra'], plugins: [bearerPlugin(issuer.issuer, { extra_jwks_uris: [extraJwks] })] },
        { name: 'without', paths: ['/without'], plugins: [bearerPlugin(issuer.issuer)] },
        { name: 'patient', paths: ['/patient'], plugins: [bearerPlugin(issuer.issuer, { extra_jwks_uris: [extraJwks], timeout: 20_000, rediscovery_lifetime: 5 })] },
        { name: 'quick', paths: ['/quick'], plugins: [bearerPlugin(issuer.issuer, { timeout: 2_000 })] },
      ]),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
    await extra?.stop();
  });

  const status = async (path: string, token: string) => {
    const res = await request(gw.proxyUrl + path, { headers: { authorization: `Bearer ${token}` } });
    await res.body.dump();
    return res.statusCode;
  };

  it('accepts a token signed with an extra key only on routes that list that JWKS', async () => {
    const byExtraKey = await issuer.token({ scope: 'x' }, { key: extra.keys[0] });
    assert.equal(await status('/with-extra', byExtraKey), 200);
    assert.equal(await status('/without', byExtraKey), 401);
    assert.equal(await status('/quick', byExtraKey), 401);
    assert.equal(await status('/patient', byExtraKey), 200);
    assert.equal(await status('/without', byExtraKey), 401, 'still refused after other routes accepted it');

    const byIssuerKey = await issuer.token({ scope: 'x' });
    for (const path of ['/with-extra', '/without', '/patient', '/quick']) assert.equal(await status(path, byIssuerKey), 200, path);
    assert.equal(issuer.discoveryFetches, 1, 'the discovery document is the issuer\'s: fetched once for every route');
  });

  it('reports readiness per issuer, with every route\'s key set', { timeout: 30_000 }, async () => {
    const ready = await httpRequest(gw.statusUrl, '/health/ready');
    assert.equal(ready.status, 200, ready.text());
    assert.equal(ready.json().info.issuer.status, 'up');
    assert.ok(extra.jwksFetches >= 1);

    await extra.stop();
    let down = ready;
    for (let i = 0; i < 40 && down.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      down = await httpRequest(gw.statusUrl, '/health/ready');
    }
    assert.equal(down.status, 503, 'an extra JWKS that routes rely on is down');
    assert.equal(down.json().error.issuer.status, 'down');
  });
});
