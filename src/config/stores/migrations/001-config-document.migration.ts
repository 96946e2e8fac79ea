import type { Migration } from './postgres.migrator.js';

/**
 * The one stored declarative document. A single row (id 1), created here with
 * no document and version 0, so that every save is an UPDATE of a row that
 * exists: the row lock makes the compare-and-set on `version` exact, which an
 * INSERT … ON CONFLICT racing another first save would not be.
 *
 * `version` grows by one with every save, in every instance; `instance` is the
 * writing process's random id, so a process recognises its own save when the
 * change notification or the poll brings it back.
 */
export const configDocument: Migration = {
  id: 1,
  name: 'config_document',
  up: `
    CREATE TABLE gatehouse_config (
      id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
      document jsonb,
      version bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now(),
      updated_by text NOT NULL DEFAULT '',
      instance text NOT NULL DEFAULT ''
    );
    INSERT INTO gatehouse_config (id, document, version, updated_by) VALUES (1, NULL, 0, 'migrations');
  `,
};
