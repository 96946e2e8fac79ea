/**
 * Where the declarative config lives (Kong's `database` setting). A store holds
 * one whole document in Kong's declarative format (`_format_version`,
 * `services`, `routes`, `plugins`, entities carrying `id`), never a diff: every
 * change, from an admin write, `POST /config` or an edited file, replaces the
 * whole document, and every gateway process compiles it and swaps it in whole.
 *
 * - `off`: a declarative file is the truth; read-only, watched (Kong's DB-less).
 * - `embedded`: a file the gateway itself rewrites atomically; one instance.
 * - `postgres`: one row shared by every instance; changes announced to all.
 */
export type DatabaseKind = 'off' | 'embedded' | 'postgres';

export interface StoreChangeMeta {
  /** Who made the change, for the audit log: the admin caller's `sub`, `file`, `sighup`… */
  actor: string;
}

export interface ConfigStore {
  readonly kind: DatabaseKind;
  /** False for `off`: admin writes answer Kong's DB-less error (except `POST /config`, which applies without persisting). */
  readonly writable: boolean;
  /** A human-readable location for logs and readiness (a path, `postgres://host:port/db`). */
  readonly source: string;
  /** The stored document, or undefined when the store holds none yet (a fresh database). */
  load(): Promise<unknown | undefined>;
  /** Replaces the stored document; resolves once it is durable. Throws when not writable. */
  save(document: unknown, meta: StoreChangeMeta): Promise<void>;
  /**
   * Calls `onChange` with the new document whenever it changes other than by
   * this process's own `save` (another instance, another worker, an edited
   * file, SIGHUP). `onError` reports a store that became unreachable; the
   * running config stays in effect meanwhile.
   */
  watch(onChange: (document: unknown, meta: StoreChangeMeta) => void, onError: (err: Error) => void): void;
  close(): Promise<void>;
}
