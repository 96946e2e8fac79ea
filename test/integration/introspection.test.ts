import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { DEMO_PASSWORD, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** RFC 7662 introspection against the real OpenID Provider. */
describe('openid-connect: introspection', () => {
  let idp: DemoIdp;
  let upstream: Upstream;
  let gw: GatewayProcess;
  const client = gatehouseClient();
  const basic = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
  const registration = client.registration(['http://127.0.0.1:1/cb']);

  before(async () => {
    idp = await startDemoIdp({ clients: [registration] });
    upstream = await startUpstream();
    gw = await startGateway({
      config: oneService(upstream.url, [
        {
          name: 'introspected',
          paths: ['/api'],
          plugins: [
            {
              name: 'openid-connect',
              config: {
                ...client.pluginConfig(idp.issuer),
                auth_methods: ['introspection'],
                introspect_jwt_tokens: true,
                cache_ttl: 1,
                scopes_required: ['kong_api_access'],
                upstream_introspection_header: 'x-introspection',
              },
            },
          ],
        },
      ], 'svc'),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await idp?.stop();
  });

  async function token(username: string): Promise<string> {
    const res = await request(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
      body: new URLSearchParams({ grant_type: 'password', username, password: DEMO_PASSWORD, scope: 'openid kong_api_access' }).toString(),
    });
    const body = (await res.body.json()) as { access_token: string };
    assert.equal(res.statusCode, 200, JSON.stringify(body));
    return body.access_token;
  }

  const call = (t: string) => request(`${gw.proxyUrl}/api`, { headers: { authorization: `Bearer ${t}` } });

  it('accepts an active token, enforces its scopes and forwards the introspection result', async () => {
    const ok = await call(await token('Blog_with_scope'));
    assert.equal(ok.statusCode, 200);
    const echo = (await ok.body.json()) as { headers: Record<string, string> };
    const introspection = JSON.parse(Buffer.from(echo.headers['x-introspection'], 'base64').toString('utf8'));
    assert.equal(introspection.active, true);
    const denied = await call(await token('Blog_without_scope'));
    assert.equal(denied.statusCode, 403);
    await denied.body.dump();
  });

  it('rejects an unknown or revoked token with 401', async () => {
    const unknown = await call(randomBytes(32).toString('base64url'));
    assert.equal(unknown.statusCode, 401);
    await unknown.body.dump();

    const t = await token('Blog_with_scope');
    const first = await call(t);
    assert.equal(first.statusCode, 200);
    await first.body.dump();
    const revoke = await request(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
      body: new URLSearchParams({ token: t }).toString(),
    });
    await revoke.body.dump();
    assert.equal(revoke.statusCode, 200);
    await new Promise((r) => setTimeout(r, 1_100)); // past cache_ttl
    const after = await call(t);
    assert.equal(after.statusCode, 401);
    await after.body.dump();
  });

  it('fails closed with 503 when introspection is unreachable', async () => {
    const t = await token('Blog_with_scope');
    await idp.stop();
    const res = await call(t);
    assert.equal(res.statusCode, 503);
    await res.body.dump();
    idp = await startDemoIdp({ clients: [registration], port: idp.port, jwks: idp.jwks });
  });
});
