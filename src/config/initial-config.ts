import type { Logger } from 'pino';
import { documentWithIds } from '../admin/admin-entities.js';
import { loadDeclarativeConfigFile, validateDeclarativeDocument } from './config.loader.js';
import type { ConfigStore } from './config-store.js';
import { GatewayConfig } from './gateway-config.js';
import type { GatewaySettings } from './gateway-settings.js';
import { initialPostgresDocument, PostgresConfigStore } from './stores/postgres-config.store.js';

/** A store that must hold the configuration holds none: the gateway does not start (nothing to route). */
export class MissingConfigError extends Error {
  readonly code = 'GATEHOUSE_CONFIG_MISSING';
  constructor(source: string) {
    super(`${source}: holds no declarative config`);
    this.name = 'MissingConfigError';
  }
}

/**
 * The configuration the gateway starts with, validated, from whichever source
 * is the truth:
 *
 * - PostgreSQL: the database; a file only seeds an empty one (exactly one of
 *   several starting instances does).
 * - The demo: its generated document, kept in the embedded store once admin
 *   changes land there (its `{vault://env/GATEHOUSE_DEMO_*}` references make a
 *   restart on other ports or secrets still fit).
 * - A store and no file: whatever the store holds, or an empty configuration
 *   (a fresh Kong with a database).
 * - A file: read through the store when there is one, so its watch starts from
 *   exactly the bytes that were validated; a writable store that is still empty
 *   starts from the file (Kong's declarative_config import).
 *
 * Throws ConfigError (every problem listed), MissingConfigError, or the store's
 * start-up errors (each with a GATEHOUSE_ code and a complete message).
 */
export async function initialConfig(settings: GatewaySettings, store: ConfigStore | undefined, logger: Logger): Promise<GatewayConfig> {
  if (store instanceof PostgresConfigStore) {
    const document = await initialPostgresDocument(store, settings.declarativeConfig, logger);
    if (!document) throw new MissingConfigError(store.source);
    return validated(settings, document, store.source);
  }
  if (settings.demo) {
    const { startDemo } = await import('../demo/demo.js');
    const demo = await startDemo(settings, logger);
    return store ? fromStore(store, demo.document, demo, settings) : demo;
  }
  const file = settings.declarativeConfig;
  if (!file) return fromStore(store!, { _format_version: '3.0' }, undefined, settings);
  const stored = store ? await store.load() : undefined;
  if (stored) {
    return validated(settings, stored, store!.source, store!.kind === 'off' ? file : store!.source);
  }
  if (store && !store.writable) throw new MissingConfigError(store.source);
  const document = (await loadDeclarativeConfigFile(file)).document;
  if (store) return fromStore(store, document as Record<string, unknown>, undefined, settings);
  return validated(settings, document, file);
}

/** A document validated (ConfigError names `validatedAs` in every problem) as the configuration read from `source`. */
function validated(settings: GatewaySettings, document: unknown, validatedAs: string, source = validatedAs): GatewayConfig {
  return new GatewayConfig(settings, validateDeclarativeDocument(document, validatedAs), source, false, document as Record<string, unknown>);
}

/**
 * The store's document, or `seed` (ids added) saved into an empty writable
 * store. Validated with the store as its source, so a bad stored document
 * names the store file.
 */
async function fromStore(store: ConfigStore, seed: Record<string, unknown>, demo: GatewayConfig | undefined, settings: GatewaySettings): Promise<GatewayConfig> {
  let document = (await store.load()) as Record<string, unknown> | undefined;
  if (!document) {
    document = documentWithIds(seed);
    // Validated before it is stored: a bad seed file must not become the store's content.
    validateDeclarativeDocument(document, store.source);
    if (store.writable) await store.save(document, { actor: demo ? 'demo' : 'seed' });
  }
  return new GatewayConfig(settings, validateDeclarativeDocument(document, store.source), store.source, demo !== undefined, document);
}
