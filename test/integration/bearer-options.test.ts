import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Where tokens may be read, what is hidden from the upstream, and identity headers that cannot inject. */
describe('openid-connect: token locations, hide_credentials and upstream identity headers', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    const route = (name: string, config: Record<string, unknown>) => ({ name, paths: [`/${name}`], plugins: [bearerPlugin(issuer.issuer, config)] });
    gw = await startGateway({
      config: oneService(upstream.url, [
        route('query', { bearer_token_param_type: ['query'], hide_credentials: true }),
        route('cookie', { bearer_token_param_type: ['cookie'], bearer_token_cookie_name: 'at', hide_credentials: true, upstream_access_token_header: null }),
        route('hidden', { hide_credentials: true, upstream_access_token_header: null }),
        route('custom', { upstream_access_token_header: 'x-access-token', upstream_headers_claims: ['name', 'groups', 'address'], upstream_headers_names: ['x-user-name', 'x-user-groups', 'x-user-address'] }),
      ]),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await issuer?.stop();
  });

  const echo = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(gw.proxyUrl + path, { headers });
    const body = (await res.body.json()) as { url: string; headers: Record<string, string> };
    return { status: res.statusCode, body };
  };

  it('reads the token from the query only where allowed, and hides it from the upstream', async () => {
    const token = await issuer.token({ scope: 'x' });
    const ok = await echo(`/query/a?x=1&access_token=${token}&y=2`);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.url, '/a?x=1&y=2');
    const header = await request(`${gw.proxyUrl}/query/a`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(header.statusCode, 401, 'the header is not a place this route reads tokens from');
    await header.body.dump();
  });

  it('reads the token from a named cookie and removes that cookie upstream', async () => {
    const token = await issuer.token({ scope: 'x' });
    const ok = await echo('/cookie', { cookie: `theme=dark; at=${token}` });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.headers.cookie, 'theme=dark');
    assert.equal(ok.body.headers.authorization, undefined);
  });

  it('hide_credentials removes the Authorization header the caller sent', async () => {
    const token = await issuer.token({ scope: 'x' });
    const ok = await echo('/hidden', { authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.headers.authorization, undefined);
  });

  it('sets the configured identity headers only from the token, never from the client, and encodes unsafe values', async () => {
    const token = await issuer.token({ scope: 'x', name: 'Zoë\r\nX-Evil: 1', groups: ['a', 'b'], address: { city: 'Oslo' } });
    const ok = await echo('/custom', { authorization: `Bearer ${token}`, 'x-access-token': 'forged', 'X-User-Name': 'forged', x_user_groups: 'admins' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.headers['x-access-token'], token);
    assert.equal(ok.body.headers['x-user-name'], encodeURIComponent('Zoë\r\nX-Evil: 1'));
    assert.equal(ok.body.headers['x-evil'], undefined);
    assert.equal(ok.body.headers['x-user-groups'], 'a,b');
    assert.equal(ok.body.headers['x_user_groups'], undefined);
    assert.equal(ok.body.headers['x-user-address'], '{"city":"Oslo"}');
  });
});
