import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { PostgresConfigStore } from '../../src/config/stores/postgres-config.store.js';
import { oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { createTestDatabase, startPrivatePostgres, type PrivatePostgres, type TestDatabase } from '../helpers/postgres.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Two gateway processes on one PostgreSQL (GATEHOUSE_DATABASE=postgres): a
 * change stored by a third writer reaches both within a second; PostgreSQL
 * stopping leaves both serving their last config; its return resumes updates.
 * A private server, because this test stops it.
 */
describe('two gateways on one PostgreSQL', () => {
  let server: PrivatePostgres;
  let db: TestDatabase;
  let upstream: Upstream;
  let gw1: GatewayProcess;
  let gw2: GatewayProcess;
  let writer: PostgresConfigStore;

  const status = async (gw: GatewayProcess, path: string) => {
    const res = await request(`${gw.proxyUrl}${path}`);
    await res.body.text();
    return res.statusCode;
  };
  /** Polls until `path` answers `code` on both gateways; fails after `withinMs`. */
  const bothRoute = async (path: string, code: number, withinMs: number) => {
    const deadline = Date.now() + withinMs;
    const pending = new Set([gw1, gw2]);
    while (pending.size) {
      for (const gw of [...pending]) if ((await status(gw, path)) === code) pending.delete(gw);
      if (!pending.size) break;
      if (Date.now() > deadline) {
        throw new Error(`${path} did not answer ${code} on ${[...pending].map((g) => (g === gw1 ? 'gw1' : 'gw2')).join(' and ')} within ${withinMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const withRoutes = (...paths: string[]) =>
    oneService(
      upstream.url,
      paths.map((p) => ({ name: p.slice(1), paths: [p] })),
    );

  before(async () => {
    server = await startPrivatePostgres();
    db = await createTestDatabase(server);
    upstream = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.url }));
    });
    const env = { ...db.env, GATEHOUSE_DATABASE: 'postgres' };
    // The first seeds the empty database from its file; the second has no file and runs what is stored.
    gw1 = await startGateway({ config: withRoutes('/a'), env });
    gw2 = await startGateway({ env });
    writer = await PostgresConfigStore.open(db.settings);
  });

  after(async () => {
    await Promise.all([gw1?.stop('SIGKILL'), gw2?.stop('SIGKILL')]);
    await writer?.close();
    await upstream?.close();
    await server?.close();
  });

  it('the first instance seeds the empty database from its file, and the second runs what is stored', async () => {
    assert.ok(gw1.logs().some((l) => l.msg === 'postgres: the empty database was seeded from the declarative file'));
    assert.ok(gw1.logs().some((l) => l.msg === 'postgres: schema migrated'));
    assert.equal(await status(gw1, '/a'), 200);
    assert.equal(await status(gw2, '/a'), 200);
    assert.equal(await status(gw2, '/b'), 404);
    const stored = await writer.read();
    assert.equal(stored.version, 1);
    assert.equal(stored.updatedBy, 'file');
  });

  it('a stored change is routed by both gateways within 1 s, without a restart', async () => {
    await writer.save(withRoutes('/a', '/b'), { actor: 'admin' });
    await bothRoute('/b', 200, 1000);
    // Each gateway logs the change and who made it (log lines are buffered: wait for them).
    for (const gw of [gw1, gw2]) await gw.waitForLog((l) => l.msg === 'config applied' && l.actor === 'admin', 5000);
  });

  it('PostgreSQL stopping: both keep serving their last config and report the outage; its return resumes updates', async () => {
    await server.stop();
    await gw1.waitForLog((l) => l.msg === 'postgres: connection lost, serving the last applied config', 5000);
    await gw2.waitForLog((l) => l.msg === 'postgres: connection lost, serving the last applied config', 5000);
    for (const gw of [gw1, gw2]) {
      assert.equal(await status(gw, '/a'), 200, 'still routing while the database is down');
      assert.equal(await status(gw, '/b'), 200);
    }

    await server.start();
    // Reconnect backoff is capped at 5 s (with jitter); both must be listening again before the next write.
    await gw1.waitForLog((l) => l.msg === 'postgres: connection restored, following changes again', 10_000);
    await gw2.waitForLog((l) => l.msg === 'postgres: connection restored, following changes again', 10_000);
    await writer.save(withRoutes('/b', '/c'), { actor: 'admin-after' });
    await bothRoute('/c', 200, 1000);
    await bothRoute('/a', 404, 1000);
  });
});

describe('a gateway on PostgreSQL that cannot start', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db?.drop();
  });

  it('exits 1 naming the database when it cannot be reached, and the pending migrations with GATEHOUSE_PG_MIGRATIONS=manual', async () => {
    const down = await startGateway({ env: { ...db.env, GATEHOUSE_DATABASE: 'postgres', GATEHOUSE_PG_PORT: String(await freePort()) }, expectStart: false });
    assert.equal(await down.exited, 1);
    assert.ok(down.lines.some((l) => /^gatehouse: postgres:\/\/postgres@127\.0\.0\.1:\d+\/gatehouse_test_\w+: .*ECONNREFUSED/.test(l)), down.lines.join('\n'));

    const manual = await startGateway({ env: { ...db.env, GATEHOUSE_DATABASE: 'postgres', GATEHOUSE_PG_MIGRATIONS: 'manual' }, expectStart: false });
    assert.equal(await manual.exited, 1);
    assert.ok(manual.lines.some((l) => /1 schema migration pending \(1_config_document\); run "gatehouse migrations up"/.test(l)), manual.lines.join('\n'));
  });

  it('refuses to seed the database from a file that does not validate, and stores nothing', async () => {
    const gw = await startGateway({
      config: { _format_version: '3.0', services: [{ name: 'x', url: 'not a url' }] },
      env: { ...db.env, GATEHOUSE_DATABASE: 'postgres' },
      expectStart: false,
    });
    assert.equal(await gw.exited, 1);
    assert.ok(gw.lines.some((l) => /services\[0\]\.url/.test(l)), gw.lines.join('\n'));
    const store = await PostgresConfigStore.open(db.settings);
    try {
      assert.deepEqual(await store.read().then((r) => [r.document, r.version]), [undefined, 0]);
    } finally {
      await store.close();
    }
  });
});
