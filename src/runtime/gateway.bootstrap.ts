import type { DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { adminOptions, startAdminListener } from '../admin/admin.server.js';
import { AppModule } from '../app.module.js';
import { GatewayExceptionFilter } from '../common/gateway-exception.filter.js';
import { NestPinoLogger } from '../common/logger.js';
import { TlsContextStore } from '../common/tls-context.js';
import type { ConfigStore } from '../config/config-store.js';
import type { GatewayConfig } from '../config/gateway-config.js';
import { processStatus } from '../health/process-status.js';
import { ReadinessState } from '../health/readiness.state.js';
import { ServerCounters } from '../health/server.counters.js';
import { statusHttpAdapter } from '../health/status.server.js';
import { countConfigChanges } from '../metrics/config-metrics.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';
import type { ListenerSpec } from '../proxy/listeners.js';
import { ProxyConfigRuntime } from '../proxy/proxy-config.runtime.js';
import { ProxyHandler } from '../proxy/proxy.handler.js';
import { ProxyServer } from '../proxy/proxy.server.js';
import { WebSocketProxy } from '../proxy/websocket.proxy.js';
import { joinClusterState } from './cluster.js';

export interface RunningGateway {
  /** The first proxy listener's URL; `proxyUrls` has one per listener, in GATEHOUSE_PROXY_LISTEN order. */
  proxyUrl: string;
  proxyUrls: string[];
  statusUrl: string;
  /** The Nest application (AppModule): the proxy's providers, and the status listener's routes. */
  app: NestFastifyApplication;
  /** Serving, then draining (SIGTERM, `POST /status/ready`): readiness answers 503 while requests are still served. */
  readiness: ReadinessState;
  /** The live declarative config: apply a document, read the applied one. */
  runtime: ProxyConfigRuntime;
  /** The Admin API's URL, when it listens (a store given and GATEHOUSE_ADMIN_LISTEN not off). */
  adminUrl?: string;
  /** Stop accepting, let in-flight requests finish (bounded), close upstream pools. */
  shutdown(): Promise<void>;
}

export interface StartGatewayOptions {
  /** @nestjs/config's module holding the validated GATEHOUSE_* settings (loadGatewaySettings). */
  settingsModule?: DynamicModule;
  /** Where the declarative config lives; the Admin API listens only when there is one. */
  store?: ConfigStore;
}

export async function startGateway(config: GatewayConfig, logger: Logger, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const { store } = options;
  const settings = config.settings;
  const counters = new ServerCounters();
  const readiness = new ReadinessState();
  const state = {
    readiness,
    // With GATEHOUSE_WORKERS > 1 every worker's counters (and draining) are shared through the primary.
    processStatuses: joinClusterState(readiness, () => processStatus(counters)),
  };

  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.register({ config, logger, settingsModule: options.settingsModule, state }),
    statusHttpAdapter(settings, logger),
    { logger: new NestPinoLogger(logger), abortOnError: false },
  );
  app.useGlobalFilters(new GatewayExceptionFilter(logger));
  await app.init();

  const handler = app.get(ProxyHandler);
  const runtime = app.get(ProxyConfigRuntime);
  countConfigChanges(runtime);
  // kong_nginx_connections_total and kong_nginx_requests_total read the same counters as GET /status.
  gatewayMetrics.useServerCounters(counters);
  // The first listener's address may have been rewritten by the demo (a free port chosen up front).
  const { proxyListen, statusListen } = settings;
  const specs: ListenerSpec[] = settings.proxyListeners.map((l, i) => (i === 0 ? { ...l, host: proxyListen.host, port: proxyListen.port } : l));
  const tls = settings.tls ? new TlsContextStore(settings.tls, logger) : undefined;
  tls?.watch();
  const proxyServer = new ProxyServer(specs, settings, handler, app.get(WebSocketProxy), counters, logger, tls);

  readiness.onDraining((origin) => {
    // Keep-alive clients are told to reconnect, so they land on an instance that stays.
    handler.draining = true;
    logger.info({ origin }, 'draining: readiness answers 503, requests are still served');
  });

  await proxyServer.listen();
  await app.listen(statusListen.port, statusListen.host);
  // The Admin API writes through the store and applies to this process's runtime (other processes follow the store).
  const adminListen = settings.adminListen;
  const admin =
    store && adminListen
      ? await startAdminListener({
          listen: adminListen,
          tls: settings.adminSsl ? tls : undefined,
          runtime,
          store,
          logger,
          options: adminOptions(settings),
        })
      : undefined;
  const statusServer = app.getHttpServer() as Server;
  const address = statusServer.address();
  const statusHost = statusListen.host === '0.0.0.0' || statusListen.host === '::' ? '127.0.0.1' : statusListen.host;
  const proxyUrls = proxyServer.urls();

  let closing: Promise<void> | undefined;
  return {
    app,
    readiness,
    runtime,
    adminUrl: admin?.url,
    proxyUrl: proxyUrls[0],
    proxyUrls,
    statusUrl: `http://${statusHost.includes(':') ? `[${statusHost}]` : statusHost}:${typeof address === 'object' && address ? address.port : 0}`,
    shutdown() {
      closing ??= (async () => {
        const force = setTimeout(() => {
          logger.warn({ timeout_ms: settings.shutdownTimeoutMs }, 'shutdown timeout reached, closing remaining connections');
          statusServer.closeAllConnections();
          proxyServer.destroy();
        }, settings.shutdownTimeoutMs);
        force.unref();
        // Stop accepting; idle keep-alive connections close now, busy ones after their response
        // (which carries Connection: close); then the upstream pools close.
        readiness.startDraining('signal');
        // The status listener stops accepting with the proxy's (its Fastify answers 503 to requests
        // on kept-alive connections meanwhile); the container closes once the proxy has drained,
        // because closing it closes the upstream pools (ProxyModule's shutdown hook).
        await Promise.all([proxyServer.close(), app.getHttpAdapter().close(), admin?.close()]);
        tls?.close();
        await app.close();
        clearTimeout(force);
      })();
      return closing;
    },
  };
}
