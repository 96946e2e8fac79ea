import { createHash } from 'node:crypto';
import type { DeclarativeConfig } from '../config/declarative.schema.js';

/** Kong's `configuration_hash` when no configuration is loaded (DECLARATIVE_EMPTY_CONFIG_HASH). */
export const EMPTY_CONFIGURATION_HASH = '0'.repeat(32);

/** True when the document declares nothing at all: Kong's DB-less node is then not ready. */
export function isEmptyConfiguration(declarative: DeclarativeConfig): boolean {
  return declarative.services.length === 0 && declarative.routes.length === 0 && declarative.plugins.length === 0;
}

/**
 * Kong's `configuration_hash`: 32 hex characters (MD5, as Kong) of the loaded
 * document, serialised with sorted keys so that every process and every
 * instance that loaded the same file reports the same value — what a rollout
 * check compares. MD5 here identifies a document; it protects nothing.
 *
 * This digests the validated document the process was started with. When the
 * configuration becomes live-reloadable, the applied configuration carries its
 * own hash (`AppliedConfig.hash`) and `GET /status` reports that instead (see
 * GatewayStateModule's CONFIGURATION_HASH provider, the one place to change).
 */
export function configurationHash(declarative: DeclarativeConfig): string {
  if (isEmptyConfiguration(declarative)) return EMPTY_CONFIGURATION_HASH;
  return createHash('md5').update(canonicalJson(declarative)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
