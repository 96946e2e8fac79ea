import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { loadDeclarativeConfigFile } from '../config.loader.js';
import type { ConfigStore, StoreChangeMeta } from '../config-store.js';
import type { PostgresSettings } from '../gateway-settings.js';
import { migrateUp, migrationState } from './migrations/postgres.migrator.js';

/** The LISTEN/NOTIFY channel that announces a new stored version to every instance. */
export const CONFIG_CHANNEL = 'gatehouse_config';

export interface PostgresStoreOptions {
  logger?: Logger;
  /**
   * ms between version checks on the listening connection: the safety net for
   * a notification that never arrived, and the probe that finds a connection
   * that died silently (a query that times out is a dead connection).
   */
  pollIntervalMs?: number;
  /** Reconnect backoff: first delay and cap, in ms (doubled per failed attempt, with jitter). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export const POSTGRES_STORE_DEFAULTS = { pollIntervalMs: 5000, reconnectMinMs: 250, reconnectMaxMs: 5000 } as const;

/** A save whose expected version is not the stored one: another admin saved in between (HTTP 409). */
export class ConfigConflictError extends Error {
  readonly code = 'GATEHOUSE_CONFIG_CONFLICT';
  constructor(
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(`the stored configuration is at version ${actualVersion}, not ${expectedVersion}: it changed since it was read`);
    this.name = 'ConfigConflictError';
  }
}

/** The database could not be reached or answered with an error (HTTP 503 for a write). */
export class StoreUnavailableError extends Error {
  readonly code = 'GATEHOUSE_STORE_UNAVAILABLE';
  constructor(source: string, cause: unknown) {
    super(`${source}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StoreUnavailableError';
  }
}

/** `GATEHOUSE_PG_MIGRATIONS=manual` and the schema is behind this build. */
export class MigrationsPendingError extends Error {
  readonly code = 'GATEHOUSE_PG_MIGRATIONS_PENDING';
  constructor(source: string, pending: readonly { id: number; name: string }[]) {
    super(
      `${source}: ${pending.length} schema migration${pending.length === 1 ? '' : 's'} pending ` +
        `(${pending.map((m) => `${m.id}_${m.name}`).join(', ')}); run "gatehouse migrations up" or set GATEHOUSE_PG_MIGRATIONS=auto`,
    );
    this.name = 'MigrationsPendingError';
  }
}

export interface StoredConfig {
  /** undefined while the database holds no document yet. */
  document: unknown | undefined;
  /** 0 before the first save; one more with every save, whoever made it. */
  version: number;
  updatedAt: Date;
  updatedBy: string;
}

export interface PostgresStoreStatus {
  /** The listening connection is up (only meaningful once `watch` was called). */
  connected: boolean;
  /** The newest version this process has applied or saved. */
  version: number;
  /** Why the store is unreachable, while it is. */
  error?: string;
  /** When `connected` last changed. */
  since: Date;
}

interface RowVersion {
  version: string;
  instance: string;
  document: unknown | null;
  updated_by: string;
}

/**
 * The `postgres` store: one row holds the whole declarative document (jsonb)
 * with a version; every instance of the gateway shares it.
 *
 * - `save` is one statement: an UPDATE that bumps the version (and, given
 *   `expectedVersion`, only when the row still has it), plus `pg_notify`, which
 *   PostgreSQL delivers at commit to every listening connection.
 * - `watch` holds one extra connection that LISTENs. A notification from
 *   another instance makes it read the row; so does every reconnect (a
 *   notification sent while disconnected is not queued for us) and a poll
 *   every `pollIntervalMs`. A change is applied when the row's version is newer
 *   than the one this process has, and was not written by this process.
 * - Nothing here is on the request path: while the database is down the
 *   gateway keeps routing with the last applied config, `onError` reports the
 *   outage once, and the connection is retried with capped, jittered backoff.
 */
export class PostgresConfigStore implements ConfigStore {
  readonly kind = 'postgres' as const;
  readonly writable = true;
  readonly source: string;
  /** This process's id in the row's `instance` and in notifications: how an instance recognises its own save. */
  readonly instanceId = randomUUID();

  private readonly pool: pg.Pool;
  private readonly clientConfig: pg.ClientConfig;
  private readonly options: Required<Omit<PostgresStoreOptions, 'logger'>>;
  private readonly logger?: Logger;
  private prepared?: Promise<void>;
  private seenVersion = 0;
  private closed = false;

  private onChange?: (document: unknown, meta: StoreChangeMeta) => void;
  private onError?: (err: Error) => void;
  private onRecovered?: () => void;
  private listener?: pg.Client;
  private connected = false;
  private lastError?: string;
  private since = new Date();
  private attempts = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private pollTimer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private refreshAgain = false;

  /**
   * Connects lazily: the schema is prepared by the first `read`/`load`/`save`
   * (or by `open`), so a factory can build the store synchronously.
   */
  constructor(
    readonly settings: PostgresSettings,
    options: PostgresStoreOptions = {},
  ) {
    this.logger = options.logger;
    this.options = {
      pollIntervalMs: options.pollIntervalMs ?? POSTGRES_STORE_DEFAULTS.pollIntervalMs,
      reconnectMinMs: options.reconnectMinMs ?? POSTGRES_STORE_DEFAULTS.reconnectMinMs,
      reconnectMaxMs: options.reconnectMaxMs ?? POSTGRES_STORE_DEFAULTS.reconnectMaxMs,
    };
    this.source = postgresSource(settings);
    this.clientConfig = postgresClientConfig(settings);
    // Two connections cover an admin write beside a load; the listener has its own.
    this.pool = new pg.Pool({ ...this.clientConfig, max: 2, idleTimeoutMillis: 10_000, allowExitOnIdle: true });
    // An idle pooled connection that dies (server restart) emits here; without a listener it would crash the process.
    this.pool.on('error', (err) => this.logger?.debug({ store: this.source, err: err.message }, 'postgres: idle connection closed'));
  }

  /**
   * Connects, brings the schema up to date (or, with migrations `manual`,
   * refuses a schema that is behind) and returns the store. Throws
   * StoreUnavailableError when the database cannot be reached: there is no
   * last good config to fall back on at start.
   */
  static async open(settings: PostgresSettings, options: PostgresStoreOptions = {}): Promise<PostgresConfigStore> {
    const store = new PostgresConfigStore(settings, options);
    try {
      await store.prepare();
      return store;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Migrates (or checks) the schema once; a failed attempt is retried by the next call. */
  prepare(): Promise<void> {
    this.prepared ??= this.prepareSchema().catch((err) => {
      this.prepared = undefined;
      throw err;
    });
    return this.prepared;
  }

  private async prepareSchema(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new StoreUnavailableError(this.source, err);
    }
    try {
      if (this.settings.migrations === 'auto') {
        const applied = await migrateUp(client);
        if (applied.length) this.logger?.info({ store: this.source, migrations: applied.map((m) => `${m.id}_${m.name}`) }, 'postgres: schema migrated');
      } else {
        const state = await migrationState(client);
        if (state.pending.length) throw new MigrationsPendingError(this.source, state.pending);
      }
      client.release();
    } catch (err) {
      client.release(true);
      if (err instanceof MigrationsPendingError) throw err;
      throw new StoreUnavailableError(this.source, err);
    }
  }

  async load(): Promise<unknown | undefined> {
    return (await this.read()).document;
  }

  /** The document with its version, for a compare-and-set `save` (`expectedVersion`). */
  async read(): Promise<StoredConfig> {
    await this.prepare();
    const result = await this.query<RowVersion & { updated_at: Date }>(
      'SELECT document, version, instance, updated_at, updated_by FROM gatehouse_config WHERE id = 1',
    );
    const row = result.rows[0];
    if (!row) throw new StoreUnavailableError(this.source, new Error('gatehouse_config has no row: the schema was not migrated'));
    const version = Number(row.version);
    if (version > this.seenVersion) this.seenVersion = version;
    return { document: row.document ?? undefined, version, updatedAt: row.updated_at, updatedBy: row.updated_by };
  }

  /**
   * Replaces the document and bumps the version in one statement; the change
   * notification goes out when it commits. With `expectedVersion`, the save
   * happens only if the stored version is still that one (0: nothing saved
   * yet), otherwise ConfigConflictError: two admins editing at once do not
   * silently lose one's change.
   */
  async save(document: unknown, meta: StoreChangeMeta & { expectedVersion?: number }): Promise<void> {
    await this.saveVersion(document, meta);
  }

  /** `save`, resolving with the version the document was stored as. */
  async saveVersion(document: unknown, meta: StoreChangeMeta & { expectedVersion?: number }): Promise<number> {
    if (document === undefined) throw new TypeError('save needs a document');
    await this.prepare();
    const result = await this.query<{ version: string }>(
      `WITH saved AS (
         UPDATE gatehouse_config
            SET document = $1::jsonb, version = version + 1, updated_at = now(), updated_by = $2, instance = $3
          WHERE id = 1 AND ($4::bigint IS NULL OR version = $4::bigint)
          RETURNING version
       )
       SELECT version, pg_notify($5, json_build_object('version', version, 'instance', $3::text)::text) FROM saved`,
      [JSON.stringify(document), meta.actor, this.instanceId, meta.expectedVersion ?? null, CONFIG_CHANNEL],
    );
    if (!result.rows.length) {
      if (meta.expectedVersion === undefined) throw new StoreUnavailableError(this.source, new Error('gatehouse_config has no row: the schema was not migrated'));
      const current = await this.query<{ version: string }>('SELECT version FROM gatehouse_config WHERE id = 1');
      throw new ConfigConflictError(meta.expectedVersion, Number(current.rows[0]?.version ?? 0));
    }
    const version = Number(result.rows[0].version);
    if (version > this.seenVersion) this.seenVersion = version;
    return version;
  }

  /**
   * Starts following changes. `onRecovered` (beyond the ConfigStore contract)
   * is called when the connection is back after `onError` reported it lost,
   * so readiness can clear the outage.
   */
  watch(onChange: (document: unknown, meta: StoreChangeMeta) => void, onError: (err: Error) => void, onRecovered?: () => void): void {
    if (this.onChange) throw new Error('watch was already called on this store');
    this.onChange = onChange;
    this.onError = onError;
    this.onRecovered = onRecovered;
    this.pollTimer = setInterval(() => {
      if (this.listener) void this.refresh();
    }, this.options.pollIntervalMs);
    this.pollTimer.unref();
    void this.connectListener();
  }

  status(): PostgresStoreStatus {
    return { connected: this.connected, version: this.seenVersion, error: this.lastError, since: this.since };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    const listener = this.listener;
    this.listener = undefined;
    if (listener) this.discard(listener);
    await this.pool.end().catch(() => undefined);
  }

  private async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      // A statement error (a bug, a permission) is still "the store could not do it"; the cause is kept.
      throw new StoreUnavailableError(this.source, err);
    }
  }

  private async connectListener(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(this.clientConfig);
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection closed by the server')));
    client.on('notification', (msg) => {
      if (msg.channel !== CONFIG_CHANNEL || client !== this.listener) return;
      let note: { version?: unknown; instance?: unknown } = {};
      try {
        note = JSON.parse(msg.payload ?? '{}');
      } catch {
        // Someone else's NOTIFY on our channel: read the row, which is the truth anyway.
      }
      if (note.instance === this.instanceId) return;
      if (typeof note.version === 'number' && note.version <= this.seenVersion) return;
      void this.refresh();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CONFIG_CHANNEL}`);
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (this.closed) return this.discard(client);
    this.listener = client;
    this.attempts = 0;
    if (!this.connected) {
      const wasDown = this.lastError !== undefined;
      this.connected = true;
      this.lastError = undefined;
      this.since = new Date();
      if (wasDown) {
        this.logger?.info({ store: this.source, version: this.seenVersion }, 'postgres: connection restored, following changes again');
        this.onRecovered?.();
      }
    }
    // Whatever was saved while we were not listening is read now.
    await this.refresh();
  }

  /** One refresh at a time; a request during one runs once more after it. */
  private refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        await this.refreshOnce();
      } while (this.refreshAgain && this.listener);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    const client = this.listener;
    if (!client) return;
    let row: RowVersion | undefined;
    try {
      // The document travels only when it is newer than ours: the poll costs one tiny row.
      const result = await client.query<RowVersion>(
        'SELECT version, instance, updated_by, CASE WHEN version > $1::bigint THEN document END AS document FROM gatehouse_config WHERE id = 1',
        [this.seenVersion],
      );
      row = result.rows[0];
    } catch (err) {
      // Also a query timeout on a connection that died silently: drop it and reconnect.
      this.lost(client, err as Error);
      return;
    }
    if (!row) return;
    const version = Number(row.version);
    if (version <= this.seenVersion) return;
    this.seenVersion = version;
    // This process's own save, seen before save() resolved: it is applied already.
    if (row.instance === this.instanceId || row.document === null) return;
    try {
      this.onChange?.(row.document, { actor: row.updated_by });
    } catch (err) {
      this.logger?.error({ store: this.source, version, err: (err as Error).message }, 'postgres: applying a stored change failed');
    }
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.closed) return this.discard(client);
    // Errors of a connection already given up (its 'end' after its 'error') are not a new outage.
    if (client !== this.listener && this.listener !== undefined) return;
    if (client === this.listener) this.listener = undefined;
    this.discard(client);
    if (this.reconnectTimer) return;
    const message = err.message || String(err);
    if (this.connected || this.lastError === undefined) {
      this.connected = false;
      this.since = new Date();
      this.lastError = message;
      this.logger?.warn({ store: this.source, err: message }, 'postgres: connection lost, serving the last applied config');
      this.onError?.(new StoreUnavailableError(this.source, err));
    } else {
      this.lastError = message;
    }
    // Capped exponential backoff with jitter, so a fleet does not reconnect in step after an outage.
    const base = Math.min(this.options.reconnectMaxMs, this.options.reconnectMinMs * 2 ** this.attempts++);
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connectListener();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Lets go of a connection without waiting: `end()` on a frozen server would wait for an answer that never comes. */
  private discard(client: pg.Client): void {
    client.removeAllListeners('notification');
    client.removeAllListeners('end');
    client.removeAllListeners('error');
    client.on('error', () => undefined);
    client.end().catch(() => undefined);
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
}

/**
 * The document a starting instance runs with: the stored one, or, on a
 * database that holds none yet, the declarative file given with `--config`,
 * validated and then stored (compare-and-set on version 0, so of several
 * instances starting together exactly one stores it and the others run what it
 * stored). Without a file an empty database is an empty configuration, as in
 * Kong: every request gets "no Route matched" until routes are added.
 */
export async function initialPostgresDocument(store: PostgresConfigStore, file: string | undefined, logger?: Logger): Promise<unknown> {
  const stored = await store.load();
  if (stored !== undefined) {
    if (file) logger?.info({ config: store.source, file }, 'postgres: the database holds a config; the declarative file is not imported again');
    return stored;
  }
  if (!file) return { _format_version: '3.0' };
  // Throws ConfigError with every problem: a file that does not load is never stored.
  const { document } = await loadDeclarativeConfigFile(file);
  try {
    await store.save(document, { actor: 'file', expectedVersion: 0 });
    logger?.info({ config: store.source, file }, 'postgres: the empty database was seeded from the declarative file');
    return document;
  } catch (err) {
    if (err instanceof ConfigConflictError) return store.load();
    throw err;
  }
}

/** `postgres://user@host:port/database`: where the config lives, for logs and readiness (never the password). */
export function postgresSource(s: PostgresSettings): string {
  const host = s.host.includes(':') && !s.host.startsWith('/') ? `[${s.host}]` : s.host;
  return `postgres://${encodeURIComponent(s.user)}@${host}:${s.port}/${encodeURIComponent(s.database)}`;
}

/** node-postgres settings from Kong's pg_* settings; `pg_timeout` bounds connecting and every query. */
export function postgresClientConfig(s: PostgresSettings): pg.ClientConfig {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    password: s.password,
    database: s.database,
    ssl: s.ssl ? { rejectUnauthorized: s.sslVerify } : false,
    connectionTimeoutMillis: s.timeoutMs,
    query_timeout: s.timeoutMs,
    keepAlive: true,
    application_name: 'gatehouse',
  };
}
