import './runtime/runtime-tuning.js';
import 'reflect-metadata';
import { ConfigError, loadDeclarativeConfigFile, validateDeclarativeDocument } from './config/config.loader.js';
import { createConfigStore, followConfigStore } from './config/stores/config-store.factory.js';
import { initialPostgresDocument, PostgresConfigStore } from './config/stores/postgres-config.store.js';
import { configWarnings } from './config/config-warnings.js';
import { GatewayConfig } from './config/gateway-config.js';
import { loadGatewaySettings } from './config/gateway-config.module.js';
import { SettingsError, type GatewaySettings } from './config/gateway-settings.js';
import type { ConfigStore } from './config/config-store.js';
import { documentWithIds } from './admin/admin-entities.js';
import { closeLogs, createLogger } from './common/logger.js';
import { startGateway } from './runtime/gateway.bootstrap.js';
import { isClusterWorker, onShutdownSignal, reportWorkerStarted, runPrimary } from './runtime/cluster.js';
import { ShutdownSequence } from './health/shutdown.sequence.js';
import { ConfigStoreHealth } from './health/config-store.health.js';
import { sessionCapacityWarning } from './auth/session.store.js';
import { startTracing, stopTracing } from './telemetry/tracing.js';

/**
 * Start-up order matters: settings and the declarative config are read and
 * validated completely before Nest starts, so a bad file exits non-zero with
 * every problem listed and nothing ever listens.
 */
async function main(): Promise<void> {
  if (process.argv[2] === 'migrations') {
    const { runMigrationsCommand } = await import('./config/stores/migrations/migrations.command.js');
    process.exitCode = await runMigrationsCommand(process.argv.slice(3), process.env);
    return;
  }
  let settings, settingsModule;
  try {
    ({ settings, module: settingsModule } = await loadGatewaySettings(process.argv.slice(2)));
  } catch (err) {
    if (err instanceof SettingsError) return fail(err.message);
    throw err;
  }
  const logger = createLogger(settings.logLevel);

  let config: GatewayConfig;
  const store = createConfigStore(settings, logger);
  // SIGHUP reloads the config once the gateway runs; until then it must not end the process (its default action).
  if (store) process.on('SIGHUP', () => undefined);
  if (settings.demo && settings.workers > 1) {
    // The demo runs an embedded IdP in-process: N copies would be N different issuers.
    return fail('GATEHOUSE_WORKERS > 1 needs a declarative config (--config PATH); the built-in demo runs as one process');
  }
  try {
    if (store instanceof PostgresConfigStore) {
      // The database is the truth; a file only seeds an empty one (exactly one of several starting instances does).
      const document = await initialPostgresDocument(store, settings.declarativeConfig, logger);
      if (!document) return fail(`${store.source}: holds no declarative config`);
      config = new GatewayConfig(settings, validateDeclarativeDocument(document, store.source), store.source, false, document as Record<string, unknown>);
    } else if (settings.demo) {
      const { startDemo, DemoStartError } = await import('./demo/demo.js');
      try {
        config = await startDemo(settings, logger);
      } catch (err) {
        if (err instanceof DemoStartError || err instanceof ConfigError) return fail(err.message);
        throw err;
      }
      // The demo keeps admin changes in the embedded store. Its document holds the demo's
      // {vault://env/GATEHOUSE_DEMO_*} references, so a restart on other ports or secrets still fits.
      if (store) config = await fromStore(store, config.document, config, settings);
    } else if (!settings.declarativeConfig) {
      // A database and no file: whatever the store holds, or nothing yet (a fresh Kong with a database).
      config = await fromStore(store!, { _format_version: '3.0' }, undefined, settings);
    } else {
      const file = settings.declarativeConfig;
      // Through the store, so its watch starts from exactly the bytes that were validated; a writable
      // store that is still empty starts from the file (Kong's declarative_config import).
      let document = store ? await store.load() : undefined;
      if (!document) {
        if (store && !store.writable) return fail(`${store.source}: holds no declarative config`);
        document = (await loadDeclarativeConfigFile(file)).document;
        config = store ? await fromStore(store, document as Record<string, unknown>, undefined, settings) : new GatewayConfig(settings, validateDeclarativeDocument(document, file), file, false, document as Record<string, unknown>);
      } else {
        config = new GatewayConfig(settings, validateDeclarativeDocument(document, store!.source), store!.kind === 'off' ? file : store!.source, false, document as Record<string, unknown>);
      }
    }
  } catch (err) {
    // The store's start-up errors (unreachable, migrations pending) carry a GATEHOUSE_ code and a complete message.
    if (err instanceof ConfigError || /^GATEHOUSE_/.test(String((err as { code?: unknown }).code))) return fail(err instanceof Error ? err.message : String(err));
    throw err;
  }

  // Once, where the file was loaded: not per worker, not on a first request.
  if (!isClusterWorker()) {
    for (const w of configWarnings(config.declarative)) logger.warn({ config: config.source, path: w.path }, w.message);
    // Otherwise a header limit too small for cookie sessions shows only as failed logins.
    for (const plugin of config.openIdConnectConfigs) {
      const sessions = plugin.session_secret && (plugin.auth_methods.includes('session') || plugin.auth_methods.includes('authorization_code'));
      const warning = sessions ? sessionCapacityWarning(plugin, settings.maxHeaderSize) : undefined;
      if (warning) logger.warn({ issuer: plugin.issuer, session_storage: plugin.session_storage }, warning);
    }
  }

  // The file is validated once, here, before any worker is forked.
  if (settings.workers > 1 && !isClusterWorker()) {
    // Each worker opens its own store; the primary only validated.
    await store?.close();
    process.exitCode = await runPrimary(settings.workers, logger, settings.shutdownTimeoutMs, settings.shutdownDelayMs);
    return;
  }

  let gateway;
  try {
    // Before the gateway: the proxy picks its tracing when it is built (propagation only without OTEL_EXPORTER_OTLP_ENDPOINT).
    await startTracing(process.env, logger);
    gateway = await startGateway(config, logger, { settingsModule, store });
  } catch (err) {
    if (err instanceof SettingsError) return fail(err.message);
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      return fail(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code}); set GATEHOUSE_PROXY_LISTEN / GATEHOUSE_STATUS_LISTEN / GATEHOUSE_ADMIN_LISTEN`);
    }
    throw err;
  }
  const started = { proxy: gateway.proxyUrl, listeners: gateway.proxyUrls, status: gateway.statusUrl, admin: gateway.adminUrl, database: settings.database, config: config.source, demo: config.demo, issuers: config.issuers };
  if (isClusterWorker()) reportWorkerStarted(logger, started);
  else logger.info(started, 'gatehouse started');
  // Every process follows the store itself: with workers, each one sees the file change (or its SIGHUP, forwarded by the primary).
  const unfollow = store ? followConfigStore(store, gateway.runtime, logger, gateway.app.get(ConfigStoreHealth)) : undefined;

  // SIGTERM: readiness 503, serve on for GATEHOUSE_SHUTDOWN_DELAY, then drain and exit (ShutdownSequence).
  const sequence = new ShutdownSequence(gateway, settings.shutdownDelayMs, logger);
  onShutdownSignal((signal) => {
    const done = sequence.signal(signal);
    if (!done) return;
    // A shutting-down gateway takes no new configuration.
    unfollow?.();
    void store?.close();
    // Spans still buffered are exported (bounded) before the last log lines.
    done.then(() => stopTracing()).then(
      () => {
        logger.info('shutdown complete');
        void closeLogs(logger).then(() => process.exit(0));
      },
      (err) => {
        logger.error({ err }, 'shutdown failed');
        void closeLogs(logger).then(() => process.exit(1));
      },
    );
  });
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

function fail(message: string): void {
  process.stderr.write(`gatehouse: ${message}\n`);
  process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`gatehouse: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
