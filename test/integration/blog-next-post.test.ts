import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { DEMO_PASSWORD, DEMO_USERS, startDemoIdp, type DemoIdp, type DemoUser } from '../../src/demo/idp/index.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const RESOURCE = 'https://blog-api.example';
const LIMIT = 5;

/** A second user the IdP grants the API scope: two callers whose cached responses must never cross. */
const SECOND_WRITER: DemoUser = { ...DEMO_USERS[0], username: 'Blog_with_scope_2', sub: '0d7c3e2a-5b1f-4c6e-9a8d-2f4b6e8a0c03', email: 'blog_with_scope_2@example.com', name: 'Second Writer' };
const THIRD_WRITER: DemoUser = { ...DEMO_USERS[0], username: 'Blog_with_scope_3', sub: '6a1b9c3d-7e2f-4a5b-8c9d-0e1f2a3b4c04', email: 'blog_with_scope_3@example.com', name: 'Third Writer' };

/**
 * The reference scenario's "next post": policy applied to authenticated
 * callers. The IdP decides who may call (scope kong_api_access); the gateway
 * then limits each caller separately (rate-limiting, per credential) and caches
 * per caller (proxy-cache). Kong's order: authentication and authorization
 * (1050) before counting (910) before the cache (100), so a refused caller
 * consumes nothing and a cached answer still counts.
 */
describe('the blog\'s next post: rate limiting and caching per authenticated caller', () => {
  let idp: DemoIdp;
  let upstream: Upstream;
  let gw: GatewayProcess;
  const client = gatehouseClient();

  before(async () => {
    idp = await startDemoIdp({ clients: [client.registration(['http://127.0.0.1/unused'])], resource: RESOURCE, users: [...DEMO_USERS, SECOND_WRITER, THIRD_WRITER] });
    upstream = await startUpstream();
    gw = await startGateway({
      config: oneService(`${upstream.url}/anything`, [
        {
          name: 'openidconnectRoute',
          paths: ['/oidc'],
          plugins: [
            // In the file after the others on purpose: priority, not position, orders the chain.
            { name: 'proxy-cache', config: { strategy: 'memory', content_type: ['application/json'], cache_ttl: 60 } },
            { name: 'rate-limiting', config: { minute: LIMIT, limit_by: 'credential', policy: 'local' } },
            { name: 'openid-connect', config: { ...client.pluginConfig(idp.issuer), auth_methods: ['bearer'], audience: [RESOURCE], consumer_optional: true, scopes_required: ['kong_api_access'] } },
          ],
        },
      ], 'openidconnect'),
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
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username, password: DEMO_PASSWORD, client_id: client.id, client_secret: client.secret, scope: 'openid kong_api_access' }).toString(),
    });
    const json = (await res.body.json()) as { access_token: string };
    assert.equal(res.statusCode, 200);
    return json.access_token;
  }

  const call = async (bearer: string, path = '/oidc/posts') => {
    const res = await request(`${gw.proxyUrl}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  };

  it('Blog_without_scope is still 403, and being refused consumes no limit', async () => {
    const t = await token('Blog_without_scope');
    for (let i = 0; i < LIMIT + 2; i++) {
      const r = await call(t);
      assert.equal(r.status, 403);
      assert.equal(r.headers['ratelimit-remaining'], undefined, 'refused before counting');
    }
  });

  it('Blog_with_scope passes until its own limit, then gets 429 with the rate-limit headers; another caller keeps its own budget', async () => {
    const alice = await token('Blog_with_scope');
    const bob = await token('Blog_with_scope_2');
    for (let i = 1; i <= LIMIT; i++) {
      const r = await call(alice, `/oidc/posts?page=${i}`);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers['ratelimit-limit'], String(LIMIT));
      assert.equal(r.headers['ratelimit-remaining'], String(LIMIT - i));
      assert.equal(r.headers['x-ratelimit-limit-minute'], String(LIMIT));
    }
    const limited = await call(alice, '/oidc/posts?page=99');
    assert.equal(limited.status, 429);
    assert.deepEqual(JSON.parse(limited.body), { message: 'API rate limit exceeded' });
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal(limited.headers['ratelimit-remaining'], '0');
    const other = await call(bob, '/oidc/posts?page=1');
    assert.equal(other.status, 200);
    assert.equal(other.headers['ratelimit-remaining'], String(LIMIT - 1));
  });

  it('caches per caller: one caller never gets another caller\'s cached answer', async () => {
    const carol = await token('Blog_with_scope_3');
    const bob = await token('Blog_with_scope_2');
    const before = upstream.requests.length;
    const first = await call(carol, '/oidc/feed');
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-cache-status'], 'Miss');
    const again = await call(carol, '/oidc/feed');
    assert.equal(again.headers['x-cache-status'], 'Hit');
    assert.equal(again.body, first.body);
    assert.equal(upstream.requests.length, before + 1, 'the hit did not reach the upstream');
    // The same URL for another caller is that caller's own miss; the echo upstream shows whose token it saw.
    const other = await call(bob, '/oidc/feed');
    assert.equal(other.status, 200);
    assert.equal(other.headers['x-cache-status'], 'Miss');
    assert.equal(JSON.parse(other.body).headers.authorization, `Bearer ${bob}`);
    assert.equal(JSON.parse(again.body).headers.authorization, `Bearer ${carol}`);
  });
});
