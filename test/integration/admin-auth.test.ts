import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';

const AUDIENCE = 'https://gatehouse-admin.example';

describe('Admin API authentication by the IdP (Passport bearer strategy + ScopesGuard)', () => {
  let op: FakeIssuer;
  let gw: GatewayProcess;

  before(async () => {
    op = await FakeIssuer.start();
    gw = await startGateway({ env: { GATEHOUSE_DATABASE: 'embedded', GATEHOUSE_ADMIN_ISSUER: op.issuer, GATEHOUSE_ADMIN_AUDIENCE: AUDIENCE } });
  });
  after(async () => {
    await gw?.stop();
    await op?.stop();
  });

  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const res = await request(`${gw.adminUrl}${path}`, {
      method: method as 'GET',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.statusCode, body: (await res.body.json()) as any, challenge: res.headers['www-authenticate'] };
  };

  it('refuses a call without a token, with a bad token, or with a token for another audience', async () => {
    const none = await call('GET', '/services');
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, { message: 'Unauthorized' });
    assert.match(String(none.challenge), /^Bearer realm="gatehouse"$/);
    const forged = await call('GET', '/services', 'a.b.c');
    assert.equal(forged.status, 401);
    assert.match(String(forged.challenge), /error="invalid_token"/);
    const otherApi = await call('GET', '/services', await op.token({ aud: 'https://other.example', scope: 'gatehouse:admin' }));
    assert.equal(otherApi.status, 401);
  });

  it('gatehouse:read reads but cannot write; gatehouse:admin writes, and the change is logged with its sub', async () => {
    const reader = await op.token({ aud: AUDIENCE, scope: 'gatehouse:read', sub: 'reader-1' });
    assert.equal((await call('GET', '/services', reader)).status, 200);
    assert.equal((await call('GET', '/', reader)).status, 200);
    const denied = await call('POST', '/services', reader, { name: 's', url: 'http://127.0.0.1:1' });
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, { message: 'Forbidden' });
    assert.match(String(denied.challenge), /error="insufficient_scope", scope="gatehouse:admin"/);

    const nobody = await op.token({ aud: AUDIENCE, scope: 'openid profile' });
    assert.equal((await call('GET', '/services', nobody)).status, 403);

    const writer = await op.token({ aud: AUDIENCE, scope: 'gatehouse:admin', sub: 'admin-7' });
    const created = await call('POST', '/services', writer, { name: 's', url: 'http://127.0.0.1:1' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const line = await gw.waitForLog((l) => l.msg === 'admin change');
    assert.deepEqual([line.actor, line.action, line.entity, line.name], ['admin-7', 'create', 'services', 's']);
  });
});

describe('an exposed Admin API without authentication', () => {
  it('refuses to start', async () => {
    const gw = await startGateway({ env: { GATEHOUSE_DATABASE: 'embedded', GATEHOUSE_ADMIN_LISTEN: '0.0.0.0:0' }, expectStart: false });
    assert.equal(await gw.exited, 1);
    assert.ok(gw.lines.some((l) => l.includes('GATEHOUSE_ADMIN_LISTEN: listens beyond loopback (0.0.0.0) without authentication')), gw.lines.join('\n'));
  });
});
