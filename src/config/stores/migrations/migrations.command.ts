import pg from 'pg';
import { readGatewaySettings, SettingsError } from '../../gateway-settings.js';
import { postgresClientConfig, postgresSource } from '../postgres-config.store.js';
import { migrateUp, migrationState } from './postgres.migrator.js';

const USAGE = `usage: gatehouse migrations <command>

  up         apply every pending schema migration (safe to run from several instances at once)
  bootstrap  the same as up (Kong's name for a fresh database)
  list       show applied and pending migrations; exits 3 when some are pending

The database is read from GATEHOUSE_PG_HOST, _PORT, _USER, _PASSWORD, _DATABASE, _SSL, _SSL_VERIFY, _TIMEOUT.
`;

/**
 * `gatehouse migrations up|list` (Kong's `kong migrations …`): the schema of
 * the `postgres` store, run by hand or by a deploy job before the gateways
 * start with GATEHOUSE_PG_MIGRATIONS=manual. Writes to the given streams and
 * resolves with the exit code.
 */
export async function runMigrationsCommand(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const command = args[0];
  if (command !== 'up' && command !== 'bootstrap' && command !== 'list') {
    (command === undefined || command === '--help' || command === '-h' ? out : err).write(USAGE);
    return command === undefined || command === '--help' || command === '-h' ? 0 : 2;
  }
  let settings;
  try {
    settings = readGatewaySettings(env).postgres;
  } catch (e) {
    if (e instanceof SettingsError) {
      err.write(`gatehouse: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const source = postgresSource(settings);
  const client = new pg.Client({ ...postgresClientConfig(settings), query_timeout: undefined });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    err.write(`gatehouse: cannot connect to ${source}: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    if (command === 'list') {
      const state = await migrationState(client);
      for (const m of state.applied) out.write(`applied  ${m.id}_${m.name}  ${m.appliedAt.toISOString()}\n`);
      for (const m of state.pending) out.write(`pending  ${m.id}_${m.name}\n`);
      for (const m of state.unknown) out.write(`newer    ${m.id}_${m.name} (applied by a newer gatehouse)\n`);
      out.write(`${source}: ${state.applied.length} applied, ${state.pending.length} pending\n`);
      return state.pending.length ? 3 : 0;
    }
    const applied = await migrateUp(client);
    for (const m of applied) out.write(`migrated ${m.id}_${m.name}\n`);
    out.write(applied.length ? `${source}: ${applied.length} migration${applied.length === 1 ? '' : 's'} applied\n` : `${source}: schema is up to date\n`);
    return 0;
  } catch (e) {
    err.write(`gatehouse: migrations failed on ${source}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await client.end().catch(() => undefined);
  }
}
