import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PostgresConfigStore, StoreUnavailableError } from '../../src/config/stores/postgres-config.store.js';
import { createTestDatabase, startPrivatePostgres, type PrivatePostgres, type TestDatabase } from '../helpers/postgres.js';

/**
 * PostgreSQL itself stopping and coming back, on a private server of this
 * test's own (the machine's shared server is never stopped).
 */
describe('postgres config store: the server stops and returns', () => {
  let server: PrivatePostgres;
  let db: TestDatabase;
  let a: PostgresConfigStore;
  let b: PostgresConfigStore;

  before(async () => {
    server = await startPrivatePostgres();
    db = await createTestDatabase(server);
    const options = { reconnectMinMs: 100, reconnectMaxMs: 500 };
    [a, b] = await Promise.all([PostgresConfigStore.open(db.settings, options), PostgresConfigStore.open(db.settings, options)]);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await server?.close();
  });

  it('both instances report the outage once, keep their last version, reconnect when it returns and see each other again', async () => {
    await a.save({ services: [{ name: 'before', url: 'http://127.0.0.1:1' }] }, { actor: 'setup' });
    await b.load();
    const events: string[] = [];
    const changesAtA: unknown[] = [];
    const errorsAt = { a: [] as Error[], b: [] as Error[] };
    a.watch(
      (d) => changesAtA.push(d),
      (e) => errorsAt.a.push(e),
      () => events.push('a up'),
    );
    b.watch(
      () => events.push('b change'),
      (e) => errorsAt.b.push(e),
      () => events.push('b up'),
    );
    const until = async (pred: () => boolean, what: string, ms: number) => {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events: ${events.join(', ')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await until(() => a.status().connected && b.status().connected, 'both to listen', 3000);
    const versionBefore = a.status().version;

    await server.stop();
    await until(() => errorsAt.a.length > 0 && errorsAt.b.length > 0, 'both to report the outage', 5000);
    assert.ok(errorsAt.a[0] instanceof StoreUnavailableError, String(errorsAt.a[0]));
    assert.equal(a.status().connected, false);
    assert.equal(a.status().version, versionBefore, 'the last applied version stays');
    await assert.rejects(b.save({ services: [] }, { actor: 'during' }), StoreUnavailableError);
    // Retries go on during the outage, without reporting it again.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(errorsAt.a.length, 1);
    assert.equal(errorsAt.b.length, 1);

    await server.start();
    await until(() => events.includes('a up') && events.includes('b up'), 'both to reconnect', 5000);
    assert.equal(a.status().connected, true);

    const after = { services: [{ name: 'after', url: 'http://127.0.0.1:2' }] };
    await b.save(after, { actor: 'admin' });
    await until(() => changesAtA.length > 0, 'A to see B\'s save', 1000);
    assert.deepEqual(changesAtA, [after]);
    assert.ok(!events.includes('b change'), 'B is not told of its own save');
    assert.deepEqual(await a.load(), after, 'persisted across the restart');
  });
});
