import './runtime/runtime-tuning.js';
import 'reflect-metadata';
import { ConfigError } from './config/config.loader.js';
import { createConfigStore, followConfigStore } from './config/stores/config-store.factory.js';
import { configWarnings } from './config/config-warnings.js';
import { GatewayConfig } from './config/gateway-config.js';
import { loadGatewaySettings } from './config/gateway-config.module.js';
import { SettingsError } from './config/gateway-settings.js';
import { initialConfig } from './config/initial-config.js';
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
    config = await initialConfig(settings, store, logger);
  } catch (err) {
    // ConfigError lists every problem; the demo's, the store's and a missing config's errors carry a GATEHOUSE_ code and a complete message.
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

function fail(message: string): void {
  process.stderr.write(`gatehouse: ${message}\n`);
  process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`gatehouse: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
