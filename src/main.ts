import './runtime-tuning.js';
import 'reflect-metadata';
import { ConfigError, loadDeclarativeConfigFile } from './config/config.loader.js';
import { configWarnings } from './config/config-warnings.js';
import { GatewayConfig } from './config/gateway-config.js';
import { readGatewaySettings, SettingsError } from './config/gateway-settings.js';
import { closeLogs, createLogger } from './common/logger.js';
import { startGateway } from './gateway.js';
import { isClusterWorker, reportWorkerStarted, runPrimary } from './cluster.js';
import { sessionCapacityWarning } from './auth/session.store.js';

/**
 * Start-up order matters: settings and the declarative config are read and
 * validated completely before Nest starts, so a bad file exits non-zero with
 * every problem listed and nothing ever listens.
 */
async function main(): Promise<void> {
  let settings;
  try {
    settings = readGatewaySettings(process.env, process.argv.slice(2));
  } catch (err) {
    if (err instanceof SettingsError) return fail(err.message);
    throw err;
  }
  const logger = createLogger(settings.logLevel);

  let config: GatewayConfig;
  if (!settings.declarativeConfig && settings.workers > 1) {
    // The demo runs an embedded IdP in-process: N copies would be N different issuers.
    return fail('GATEHOUSE_WORKERS > 1 needs a declarative config (--config PATH); the built-in demo runs as one process');
  }
  if (!settings.declarativeConfig) {
    const { startDemo, DemoStartError } = await import('./demo/demo.js');
    try {
      config = await startDemo(settings, logger);
    } catch (err) {
      if (err instanceof DemoStartError || err instanceof ConfigError) return fail(err.message);
      throw err;
    }
  } else {
    try {
      const loaded = await loadDeclarativeConfigFile(settings.declarativeConfig);
      config = new GatewayConfig(settings, loaded.config, loaded.source);
    } catch (err) {
      if (err instanceof ConfigError) return fail(err.message);
      throw err;
    }
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
    process.exitCode = await runPrimary(settings.workers, logger, settings.shutdownTimeoutMs);
    return;
  }

  let gateway;
  try {
    gateway = await startGateway(config, logger);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      return fail(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code}); set GATEHOUSE_PROXY_LISTEN / GATEHOUSE_STATUS_LISTEN`);
    }
    throw err;
  }
  const started = { proxy: gateway.proxyUrl, listeners: gateway.proxyUrls, status: gateway.statusUrl, config: config.source, demo: config.demo, issuers: config.issuers };
  if (isClusterWorker()) reportWorkerStarted(logger, started);
  else logger.info(started, 'gatehouse started');

  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    gateway.shutdown().then(
      () => {
        logger.info('shutdown complete');
        void closeLogs(logger).then(() => process.exit(0));
      },
      (err) => {
        logger.error({ err }, 'shutdown failed');
        void closeLogs(logger).then(() => process.exit(1));
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

function fail(message: string): void {
  process.stderr.write(`gatehouse: ${message}\n`);
  process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`gatehouse: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
