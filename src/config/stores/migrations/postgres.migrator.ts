import type { ClientBase } from 'pg';
import { configDocument } from './001-config-document.migration.js';

/** One numbered schema change. Ids only grow; an applied migration is never edited, a new one follows it. */
export interface Migration {
  readonly id: number;
  readonly name: string;
  /** SQL run inside the migrations transaction (PostgreSQL DDL is transactional). */
  readonly up: string;
}

/** Every migration this build knows, in order. */
export const MIGRATIONS: readonly Migration[] = [configDocument];

export const MIGRATIONS_TABLE = 'gatehouse_migrations';

/**
 * The advisory lock key every instance takes before migrating (an arbitrary
 * 63-bit constant: the ASCII of "gatehse" read as a number). Instances started
 * together queue on it; the second finds the work done.
 */
export const MIGRATIONS_LOCK_KEY = '29099075146642277';

export interface AppliedMigration {
  id: number;
  name: string;
  appliedAt: Date;
}

export interface MigrationState {
  applied: AppliedMigration[];
  /** Known to this build, not yet in the database. */
  pending: Migration[];
  /** In the database but unknown to this build: a newer version migrated it. */
  unknown: AppliedMigration[];
}

export async function migrationState(client: ClientBase): Promise<MigrationState> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [MIGRATIONS_TABLE]);
  const applied: AppliedMigration[] = exists.rows[0].t
    ? (await client.query<{ id: number; name: string; applied_at: Date }>(`SELECT id, name, applied_at FROM ${MIGRATIONS_TABLE} ORDER BY id`)).rows.map(
        (r) => ({ id: r.id, name: r.name, appliedAt: r.applied_at }),
      )
    : [];
  const done = new Set(applied.map((m) => m.id));
  const known = new Set(MIGRATIONS.map((m) => m.id));
  return { applied, pending: MIGRATIONS.filter((m) => !done.has(m.id)), unknown: applied.filter((m) => !known.has(m.id)) };
}

/**
 * Applies every pending migration in one transaction, under a transaction-level
 * advisory lock: concurrent starts of several instances serialise here, and a
 * failure leaves the schema as it was (nothing half-applied). Returns what this
 * call applied (empty when another instance, or an earlier run, did it).
 */
export async function migrateUp(client: ClientBase, migrations: readonly Migration[] = MIGRATIONS): Promise<Migration[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATIONS_LOCK_KEY]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set((await client.query<{ id: number }>(`SELECT id FROM ${MIGRATIONS_TABLE}`)).rows.map((r) => r.id));
    const applied: Migration[] = [];
    for (const m of [...migrations].sort((a, b) => a.id - b.id)) {
      if (done.has(m.id)) continue;
      await client.query(m.up);
      await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (id, name) VALUES ($1, $2)`, [m.id, m.name]);
      applied.push(m);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
