import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, afterEach, before, describe, it } from 'node:test';
import type { StoreChangeMeta } from '../../src/config/config-store.js';
import { MIGRATIONS, migrateUp } from '../../src/config/stores/migrations/postgres.migrator.js';
import {
  ConfigConflictError,
  MigrationsPendingError,
  PostgresConfigStore,
  StoreUnavailableError,
  type PostgresStoreOptions,
} from '../../src/config/stores/postgres-config.store.js';
import type { PostgresSettings } from '../../src/config/gateway-settings.js';
import { MAIN, PROJECT_ROOT } from '../helpers/gateway.js';
import { createTestDatabase, startCuttableProxy, type TestDatabase } from '../helpers/postgres.js';
import { freePort } from '../helpers/ports.js';

/** The `postgres` ConfigStore against the machine's real PostgreSQL, one fresh database per test. */

const doc = (n: number) => ({ _format_version: '3.0', services: [{ name: `s${n}`, url: `http://127.0.0.1:${1000 + n}` }] });

/** Collects a watcher's callbacks; `next()` resolves with the next change (or one already received and not yet taken). */
function watcher(store: PostgresConfigStore) {
  const changes: { document: any; meta: StoreChangeMeta }[] = [];
  const errors: Error[] = [];
  let recoveries = 0;
  const wake = new Set<() => void>();
  const notify = () => {
    for (const w of wake) w();
  };
  store.watch(
    (document, meta) => {
      changes.push({ document, meta });
      notify();
    },
    (err) => {
      errors.push(err);
      notify();
    },
    () => {
      recoveries++;
      notify();
    },
  );
  const until = async (pred: () => boolean, what: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(done, Math.min(left, 50));
        function done() {
          clearTimeout(t);
          wake.delete(done);
          r();
        }
        wake.add(done);
      });
    }
  };
  let taken = 0;
  return {
    changes,
    errors,
    get recoveries() {
      return recoveries;
    },
    until,
    async next(timeoutMs = 1000) {
      await until(() => changes.length > taken, 'a change', timeoutMs);
      return changes[taken++];
    },
  };
}

describe('postgres config store', () => {
  let db: TestDatabase;
  const stores: PostgresConfigStore[] = [];
  const open = async (settings: PostgresSettings = db.settings, options: PostgresStoreOptions = {}) => {
    const store = await PostgresConfigStore.open(settings, options);
    stores.push(store);
    return store;
  };

  before(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  after(async () => {
    await db?.drop();
  });

  it('a fresh database: the schema is created at open, and load finds no document (version 0)', async () => {
    const store = await open();
    assert.equal(store.kind, 'postgres');
    assert.equal(store.writable, true);
    assert.equal(store.source, `postgres://postgres@127.0.0.1:5432/${db.name}`);
    assert.equal(await store.load(), undefined);
    assert.equal((await store.read()).version, 0);
    const c = await db.connect();
    try {
      const rows = (await c.query('SELECT id, name FROM gatehouse_migrations ORDER BY id')).rows;
      assert.deepEqual(
        rows,
        MIGRATIONS.map((m) => ({ id: m.id, name: m.name })),
      );
    } finally {
      await c.end();
    }
  });

  it('save then load returns the document, the version grows by one per save, the actor is kept', async () => {
    const store = await open();
    const before = (await store.read()).version;
    await store.save(doc(1), { actor: 'alice' });
    assert.deepEqual(await store.load(), doc(1));
    const v2 = await store.saveVersion(doc(2), { actor: 'bob' });
    assert.equal(v2, before + 2);
    const read = await store.read();
    assert.deepEqual(read.document, doc(2));
    assert.equal(read.version, v2);
    assert.equal(read.updatedBy, 'bob');
    assert.ok(read.updatedAt instanceof Date);
    // Another store (another instance) reads the same.
    const other = await open();
    assert.deepEqual(await other.load(), doc(2));
  });

  it('an array document or a string survives as JSON, not as a PostgreSQL array literal', async () => {
    const store = await open();
    const odd = { services: [], routes: [{ paths: ['/a', '/b'], tags: ['x'] }], note: "it's \"quoted\" \u00e9" };
    await store.save(odd, { actor: 't' });
    assert.deepEqual(await store.load(), odd);
    await assert.rejects(store.save(undefined, { actor: 't' }), TypeError);
  });

  it('two instances: a save by one reaches the other through watch within 1 s, with its actor; its own saves are not echoed', async () => {
    const a = await open();
    const b = await open();
    // Each instance applies what it loaded; watch reports what changes after that.
    await Promise.all([a.load(), b.load()]);
    const seenByA = watcher(a);
    const seenByB = watcher(b);
    await seenByA.until(() => a.status().connected && b.status().connected, 'both to listen', 2000);

    await a.save(doc(10), { actor: 'admin-a' });
    const atB = await seenByB.next(1000);
    assert.deepEqual(atB.document, doc(10));
    assert.equal(atB.meta.actor, 'admin-a');

    await b.save(doc(11), { actor: 'admin-b' });
    const atA = await seenByA.next(1000);
    assert.deepEqual(atA.document, doc(11), 'A got B\'s save, and not its own before it');
    assert.equal(atA.meta.actor, 'admin-b');
    assert.equal(seenByB.changes.length, 1, 'B was not told about its own save');
    assert.deepEqual(seenByA.errors, []);
    assert.equal(a.status().connected, true);
    assert.equal(a.status().version, (await b.read()).version);
  });

  it('compare-and-set: a save with a stale expected version is refused with ConfigConflictError, and exactly one of concurrent saves wins', async () => {
    const a = await open();
    const b = await open();
    const { version } = await a.read();
    await b.save(doc(20), { actor: 'b', expectedVersion: version });
    const err = await a.save(doc(21), { actor: 'a', expectedVersion: version }).then(
      () => assert.fail('the stale save was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigConflictError, String(err));
    assert.equal(err.code, 'GATEHOUSE_CONFIG_CONFLICT');
    assert.equal(err.expectedVersion, version);
    assert.equal(err.actualVersion, version + 1);
    assert.deepEqual(await a.load(), doc(20), 'the refused save changed nothing');

    const current = (await a.read()).version;
    const results = await Promise.allSettled([a, b, a, b, a].map((s, i) => s.save(doc(30 + i), { actor: `c${i}`, expectedVersion: current })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one winner');
    for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ConfigConflictError, String(r.reason));
    assert.equal((await a.read()).version, current + 1);
  });

  it('the poll reads a change that came without a notification', async () => {
    const a = await open(db.settings, { pollIntervalMs: 200 });
    await a.load();
    const seen = watcher(a);
    const c = await db.connect();
    try {
      // Written behind the stores' backs: no pg_notify.
      await c.query("UPDATE gatehouse_config SET document = $1::jsonb, version = version + 1, updated_by = 'psql', instance = 'elsewhere'", [
        JSON.stringify(doc(40)),
      ]);
    } finally {
      await c.end();
    }
    const change = await seen.next(2000);
    assert.deepEqual(change.document, doc(40));
    assert.equal(change.meta.actor, 'psql');
  });

  it('a change saved while one instance was cut off is applied when it reconnects (a NOTIFY missed is not lost)', async () => {
    const proxy = await startCuttableProxy(db.settings.port);
    try {
      // A reaches PostgreSQL through the proxy; the poll is far off, so only the reconnect can find the change.
      const a = await open({ ...db.settings, port: proxy.port }, { pollIntervalMs: 60_000, reconnectMinMs: 100, reconnectMaxMs: 400 });
      const b = await open();
      await a.load();
      const seen = watcher(a);
      await seen.until(() => a.status().connected, 'A to listen', 2000);

      proxy.setMode('refuse');
      await seen.until(() => seen.errors.length > 0, 'A to report the outage', 2000);
      assert.ok(seen.errors[0] instanceof StoreUnavailableError, String(seen.errors[0]));
      assert.equal(a.status().connected, false);
      assert.ok(a.status().error);

      await b.save(doc(50), { actor: 'while-away' });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(seen.changes.length, 0, 'nothing reached A while cut off');

      proxy.setMode('pass');
      const change = await seen.next(3000);
      assert.deepEqual(change.document, doc(50));
      assert.equal(seen.recoveries, 1);
      assert.equal(seen.errors.length, 1, 'the outage was reported once, not once per retry');
      assert.equal(a.status().connected, true);
      assert.equal(a.status().error, undefined);
    } finally {
      await proxy.close();
    }
  });

  it('a connection that hangs (no answer, not closed) is found by the poll timing out, and replaced', async () => {
    const proxy = await startCuttableProxy(db.settings.port);
    try {
      const a = await open({ ...db.settings, port: proxy.port, timeoutMs: 500 }, { pollIntervalMs: 200, reconnectMinMs: 100, reconnectMaxMs: 400 });
      const b = await open();
      await a.load();
      const seen = watcher(a);
      await seen.until(() => a.status().connected, 'A to listen', 2000);
      proxy.setMode('blackhole');
      await seen.until(() => seen.errors.length > 0, 'A to report the hung connection', 5000);
      assert.match(seen.errors[0].message, /timeout/i);
      await b.save(doc(60), { actor: 'b' });
      proxy.setMode('pass');
      assert.deepEqual((await seen.next(5000)).document, doc(60));
    } finally {
      await proxy.close();
    }
  });

  it('a save while the database is unreachable fails with StoreUnavailableError within the timeout; open fails the same way', async () => {
    const proxy = await startCuttableProxy(db.settings.port);
    try {
      const a = await open({ ...db.settings, port: proxy.port, timeoutMs: 500 });
      proxy.setMode('blackhole');
      await assert.rejects(a.save(doc(70), { actor: 'a' }), StoreUnavailableError);
      proxy.setMode('refuse');
      await assert.rejects(a.load(), StoreUnavailableError);
    } finally {
      await proxy.close();
    }
    const closedPort = await freePort();
    await assert.rejects(PostgresConfigStore.open({ ...db.settings, port: closedPort }), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError, String(err));
      assert.match(err.message, new RegExp(`postgres://postgres@127\\.0\\.0\\.1:${closedPort}/${db.name}`));
      return true;
    });
  });
});

describe('postgres schema migrations', () => {
  const dbs: TestDatabase[] = [];
  const fresh = async () => {
    const d = await createTestDatabase();
    dbs.push(d);
    return d;
  };
  after(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
  });

  it('are idempotent: a second run applies nothing and keeps the data', async () => {
    const d = await fresh();
    const c = await d.connect();
    try {
      assert.deepEqual(
        (await migrateUp(c)).map((m) => m.id),
        MIGRATIONS.map((m) => m.id),
      );
      await c.query(`UPDATE gatehouse_config SET document = '{"kept":true}', version = 7`);
      assert.deepEqual(await migrateUp(c), []);
      const store = await PostgresConfigStore.open(d.settings);
      try {
        assert.deepEqual(await store.read().then((r) => [r.document, r.version]), [{ kept: true }, 7]);
      } finally {
        await store.close();
      }
    } finally {
      await c.end();
    }
  });

  it('are safe when several instances start at once: every one opens, each migration is applied once', async () => {
    const d = await fresh();
    const opened = await Promise.all(Array.from({ length: 6 }, () => PostgresConfigStore.open(d.settings)));
    try {
      for (const s of opened) assert.equal(await s.load(), undefined);
    } finally {
      await Promise.all(opened.map((s) => s.close()));
    }
    const c = await d.connect();
    try {
      assert.equal(Number((await c.query('SELECT count(*) AS n FROM gatehouse_migrations')).rows[0].n), MIGRATIONS.length);
      assert.equal(Number((await c.query('SELECT count(*) AS n FROM gatehouse_config')).rows[0].n), 1);
      // The raw migrator too: of concurrent runs, exactly one applies anything.
      const d2 = await fresh();
      const clients = await Promise.all(Array.from({ length: 4 }, () => d2.connect()));
      try {
        const applied = await Promise.all(clients.map((cl) => migrateUp(cl)));
        assert.deepEqual(
          applied.map((a) => a.length).sort(),
          [0, 0, 0, MIGRATIONS.length],
        );
      } finally {
        await Promise.all(clients.map((cl) => cl.end()));
      }
    } finally {
      await c.end();
    }
  });

  it('GATEHOUSE_PG_MIGRATIONS=manual: open refuses a schema that is behind and names the command; after it runs, open succeeds', async () => {
    const d = await fresh();
    const manual = { ...d.settings, migrations: 'manual' as const };
    await assert.rejects(PostgresConfigStore.open(manual), (err: unknown) => {
      assert.ok(err instanceof MigrationsPendingError, String(err));
      assert.equal(err.code, 'GATEHOUSE_PG_MIGRATIONS_PENDING');
      assert.match(err.message, /1_config_document/);
      assert.match(err.message, /gatehouse migrations up/);
      return true;
    });
    const c = await d.connect();
    try {
      assert.equal((await c.query("SELECT to_regclass('gatehouse_config') AS t")).rows[0].t, null, 'manual mode created nothing');
      await migrateUp(c);
    } finally {
      await c.end();
    }
    const store = await PostgresConfigStore.open(manual);
    await store.close();
  });

  it('the CLI: `migrations list` exits 3 with pending, `up` applies them, a second `up` says up to date, then `list` exits 0', async () => {
    const d = await fresh();
    const run = (...args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [MAIN, 'migrations', ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...d.env } });
        let out = '';
        let err = '';
        child.stdout.on('data', (b) => (out += b));
        child.stderr.on('data', (b) => (err += b));
        child.on('exit', (code) => resolve({ code, out, err }));
      });
    let r = await run('list');
    assert.equal(r.code, 3, r.err);
    assert.match(r.out, /pending {2}1_config_document/);
    r = await run('up');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /migrated 1_config_document/);
    assert.match(r.out, new RegExp(`postgres://postgres@127\\.0\\.0\\.1:5432/${d.name}: 1 migration applied`));
    r = await run('up');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /schema is up to date/);
    r = await run('list');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /applied {2}1_config_document/);
    r = await run('sideways');
    assert.equal(r.code, 2);
    assert.match(r.err, /usage: gatehouse migrations/);
    const bad = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn(process.execPath, [MAIN, 'migrations', 'up'], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, ...d.env, GATEHOUSE_PG_PORT: 'x', GATEHOUSE_PG_SSL: 'maybe' },
      });
      let err = '';
      child.stderr.on('data', (b) => (err += b));
      child.on('exit', (code) => resolve({ code, err }));
    });
    assert.equal(bad.code, 1);
    assert.match(bad.err, /GATEHOUSE_PG_PORT: must be a positive integer/);
    assert.match(bad.err, /GATEHOUSE_PG_SSL: must be "on" or "off"/);
  });
});
