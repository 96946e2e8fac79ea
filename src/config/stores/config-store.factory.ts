import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config.loader.js';
import type { ConfigRuntime } from '../config-runtime.js';
import type { ConfigStore, StoreChangeMeta } from '../config-store.js';
import type { ConfigStoreHealth } from '../../health/config-store.health.js';
import type { GatewaySettings } from '../gateway-settings.js';
import { EmbeddedConfigStore } from './embedded-config.store.js';
import { FileConfigStore } from './file-config.store.js';
import { PostgresConfigStore } from './postgres-config.store.js';

/** A store that can be asked to read its source again (SIGHUP). */
interface Reloadable {
  reload(actor?: string): Promise<void>;
}

/**
 * The store GATEHOUSE_DATABASE names, or undefined when the process runs a
 * config no store holds (the built-in demo before it has a store).
 */
export function createConfigStore(settings: GatewaySettings, logger?: Logger): ConfigStore | undefined {
  switch (settings.database) {
    case 'off':
      return new FileConfigStore(settings.declarativeConfig!);
    case 'embedded':
      return new EmbeddedConfigStore(embeddedStoreDir(settings));
    case 'postgres':
      return new PostgresConfigStore(settings.postgres, { logger });
    default:
      return undefined;
  }
}

/**
 * The embedded store's directory. The demo without its entities
 * (GATEHOUSE_DEMO_ENTITIES=off) keeps its store apart from the full demo's,
 * under `<data dir>/demo-without-entities`: a store the full demo seeded
 * would otherwise hold the very entities the blog's commands create, and they
 * would answer 409.
 */
export function embeddedStoreDir(settings: Pick<GatewaySettings, 'dataDir' | 'demo' | 'demoEntities'>): string {
  return settings.demo && !settings.demoEntities ? join(settings.dataDir, DEMO_WITHOUT_ENTITIES_DIR) : settings.dataDir;
}

export const DEMO_WITHOUT_ENTITIES_DIR = 'demo-without-entities';

/**
 * Keeps `runtime` following `store`: every change another writer makes (an
 * edited file, another instance) is applied; a document that does not parse or
 * validate is refused with its problems logged and shown by readiness, and the
 * running config stays. SIGHUP reads the store again.
 */
export function followConfigStore(
  store: ConfigStore,
  runtime: ConfigRuntime & { reject(err: ConfigError, origin: { source: string; actor: string }): void },
  logger: Logger,
  /** Readiness details show an outage (the gateway stays ready: its last good config serves). */
  health?: ConfigStoreHealth,
): () => void {
  health?.follow(store.kind, store.source);
  const onChange = (document: unknown, meta: StoreChangeMeta) => {
    // A document read is a store reached (the embedded store reports no recovery of its own).
    health?.recovered();
    // A refusal is logged and recorded by the runtime itself.
    runtime.apply(document, { source: store.source, actor: meta.actor }).catch(() => undefined);
  };
  const onError = (err: Error) => {
    if (err instanceof ConfigError) return runtime.reject(err, { source: store.source, actor: 'watch' });
    health?.lost(err);
    logger.error({ config: store.source, err: err.message }, 'config store unreachable, the running config stays');
  };
  if (store instanceof PostgresConfigStore) {
    store.watch(onChange, onError, () => {
      health?.recovered();
      logger.info({ config: store.source }, 'config store reachable again');
    });
  } else store.watch(onChange, onError);
  const reloadable = 'reload' in store ? (store as unknown as Reloadable) : undefined;
  const onHup = () => {
    logger.info({ config: store.source }, 'SIGHUP: reloading the declarative config');
    void reloadable?.reload('sighup');
  };
  if (reloadable) process.on('SIGHUP', onHup);
  return () => process.off('SIGHUP', onHup);
}
