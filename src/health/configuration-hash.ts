import type { DeclarativeConfig } from '../config/declarative.schema.js';

/** Kong's `configuration_hash` when no configuration is loaded (DECLARATIVE_EMPTY_CONFIG_HASH). */
export const EMPTY_CONFIGURATION_HASH = '0'.repeat(32);

/**
 * True when the document declares nothing at all: Kong's DB-less node is then
 * not ready ("no configuration available (empty configuration present)") and
 * reports the empty hash. Otherwise `GET /status` reports the applied
 * configuration's own hash (ProxyConfigRuntime's `configurationHash`).
 */
export function isEmptyConfiguration(declarative: DeclarativeConfig): boolean {
  return declarative.services.length === 0 && declarative.routes.length === 0 && declarative.plugins.length === 0;
}
