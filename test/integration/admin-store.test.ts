import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { freePort } from '../helpers/ports.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';
import { createTestDatabase, startPrivatePostgres, type PrivatePostgres, type TestDatabase } from '../helpers/postgres.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

type Res = { status: number; body: any };

async function call(base: string, method: string, path: string, body?: unknown): Promise<Res> {
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The Admin API over a PostgreSQL store that other writers share and that can
 * go away: compare-and-set writes (409 on a lost race, never a lost update),
 * 503 while the database is down, readiness that says so without going
 * unready, and `GET /status` with the database and every upstream origin. A
 * private PostgreSQL server of this test's own, so it can be stopped.
 */
describe('admin writes against a shared PostgreSQL store', () => {
  let server: PrivatePostgres;
  let db: TestDatabase;
  let upstream: Upstream;
  let gw: GatewayProcess;
  let deadOrigin: string;

  before(async () => {
    server = await startPrivatePostgres();
    db = await createTestDatabase(server);
    upstream = await startUpstream();
    deadOrigin = `http://127.0.0.1:${await freePort()}`;
    gw = await startGateway({ env: { GATEHOUSE_DATABASE: 'postgres', ...db.env } });
    assert.equal((await call(gw.adminUrl!, 'POST', '/services', { name: 'live', url: `${upstream.url}/anything` })).status, 201);
    assert.equal((await call(gw.adminUrl!, 'POST', '/services/live/routes', { name: 'r', paths: ['/live'] })).status, 201);
    assert.equal((await call(gw.adminUrl!, 'POST', '/services', { name: 'dead', url: `${deadOrigin}/x` })).status, 201);
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await server?.close();
  });

  async function stored(): Promise<{ version: number; names: string[] }> {
    const c = await db.connect();
    try {
      const { rows } = await c.query<{ version: string; document: { services?: { name?: string }[] } }>('SELECT version, document FROM gatehouse_config WHERE id = 1');
      return { version: Number(rows[0].version), names: (rows[0].document.services ?? []).map((s) => s.name ?? '?') };
    } finally {
      await c.end();
    }
  }

  it('GET /status reports the database and each upstream origin (any answer is reachable; a closed port is not)', async () => {
    const { status, body } = await call(gw.adminUrl!, 'GET', '/status');
    assert.equal(status, 200);
    assert.equal(body.database.reachable, true);
    assert.equal(body.database.kind, 'postgres');
    assert.equal(typeof body.configuration_hash, 'string');
    const byOrigin = Object.fromEntries(body.upstreams.origins.map((o: any) => [o.origin, o]));
    const live = byOrigin[`http://127.0.0.1:${upstream.port}`];
    assert.deepEqual([live.reachable, live.status_code, live.services], [true, 200, ['live']]);
    assert.equal(upstream.requests.at(-1)?.method, 'HEAD');
    const dead = byOrigin[deadOrigin];
    assert.equal(dead.reachable, false);
    assert.match(dead.message, /ECONNREFUSED/);
    assert.deepEqual(dead.services, ['dead']);
    assert.equal(body.upstreams.reachable, false);
  });

  it('a write builds on a change another instance stored that this one has not applied yet', async () => {
    const c = await db.connect();
    try {
      // Behind the gateway's back and without a notification: as if its LISTEN had not delivered it yet.
      await c.query(`UPDATE gatehouse_config SET document = jsonb_set(document, '{services}', (document->'services') || '[{"name":"behind","url":"http://127.0.0.1:1"}]'::jsonb), version = version + 1 WHERE id = 1`);
    } finally {
      await c.end();
    }
    assert.equal((await call(gw.adminUrl!, 'POST', '/services', { name: 'after', url: 'http://127.0.0.1:2' })).status, 201);
    const { names } = await stored();
    assert.ok(names.includes('behind') && names.includes('after'), names.join(','));
  });

  it('two writers racing: the one whose version is no longer stored gets 409 and changes nothing', async () => {
    const before = await stored();
    const rival = await db.connect();
    try {
      await rival.query('BEGIN');
      await rival.query('SELECT version FROM gatehouse_config WHERE id = 1 FOR UPDATE');
      // The gateway reads version N, then its compare-and-set UPDATE waits for the row lock…
      const pending = call(gw.adminUrl!, 'POST', '/services', { name: 'loser', url: 'http://127.0.0.1:3' });
      await until('the admin write to wait for the row lock', 10_000, async () => {
        const { rows } = await rival.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
        return rows[0].n > 0 ? true : undefined;
      });
      // …while the rival stores version N+1 first.
      await rival.query(`UPDATE gatehouse_config SET document = jsonb_set(document, '{services}', (document->'services') || '[{"name":"winner","url":"http://127.0.0.1:4"}]'::jsonb), version = version + 1 WHERE id = 1`);
      await rival.query('COMMIT');
      const res = await pending;
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(res.body.code, 8);
      assert.equal(res.body.name, 'database error');
      assert.equal(res.body.error, 'GATEHOUSE_CONFIG_CONFLICT');
      assert.match(res.body.message, /changed since it was read/);
    } finally {
      await rival.end();
    }
    const afterRace = await stored();
    assert.equal(afterRace.version, before.version + 1);
    assert.ok(afterRace.names.includes('winner') && !afterRace.names.includes('loser'), afterRace.names.join(','));
    // Retried, it succeeds on top of the winner's change.
    assert.equal((await call(gw.adminUrl!, 'POST', '/services', { name: 'loser', url: 'http://127.0.0.1:3' })).status, 201);
    const retried = await stored();
    assert.ok(retried.names.includes('winner') && retried.names.includes('loser'), retried.names.join(','));
  });

  it('PostgreSQL down: readiness stays 200 and says so, writes answer 503, the proxy keeps serving; it clears when PostgreSQL returns', async () => {
    await server.stop();
    const ready = await until('readiness to show the outage', 15_000, async () => {
      const r = await call(gw.statusUrl, 'GET', '/health/ready');
      return r.body?.details?.config?.database?.reachable === false ? r : undefined;
    });
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.details.config.status, 'up');
    assert.match(ready.body.details.config.database.message, /serving the last good config/);
    assert.equal(ready.body.details.config.database.kind, 'postgres');

    const write = await call(gw.adminUrl!, 'POST', '/services', { name: 'during', url: 'http://127.0.0.1:5' });
    assert.equal(write.status, 503, JSON.stringify(write.body));
    assert.deepEqual([write.body.code, write.body.name, write.body.error], [8, 'database error', 'GATEHOUSE_STORE_UNAVAILABLE']);
    assert.equal((await call(gw.adminUrl!, 'GET', '/services/during')).status, 404, 'nothing applied');
    assert.equal((await call(gw.adminUrl!, 'GET', '/status')).body.database.reachable, false);
    assert.equal((await request(`${gw.proxyUrl}/live`)).statusCode, 200);

    await server.start();
    await until('readiness to show the database back', 20_000, async () => {
      const r = await call(gw.statusUrl, 'GET', '/health/ready');
      return r.body?.details?.config?.database?.reachable === true ? r : undefined;
    });
    assert.equal((await call(gw.adminUrl!, 'POST', '/services', { name: 'during', url: 'http://127.0.0.1:5' })).status, 201);
  });
});
