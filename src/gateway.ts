import { type DynamicModule, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { GatewayExceptionFilter } from './common/gateway-exception.filter.js';
import { NestPinoLogger } from './common/logger.js';
import { GatewayConfigModule } from './config/gateway-config.module.js';
import { GatewayConfig } from './config/gateway-config.js';
import { HealthModule } from './health/health.module.js';
import { EMPTY_CONFIGURATION_HASH, isEmptyConfiguration } from './health/configuration-hash.js';
import { GatewayStateModule, type GatewayStateOptions } from './health/gateway-state.module.js';
import { processStatus } from './health/process-status.js';
import { ReadinessState } from './health/readiness.state.js';
import { ServerCounters } from './health/server.counters.js';
import { countConfigChanges } from './metrics/config-metrics.js';
import { gatewayMetrics } from './metrics/gateway-metrics.js';
import { joinClusterState } from './runtime/cluster.js';
import { ProxyHandler } from './proxy/proxy.handler.js';
import { ProxyModule } from './proxy/proxy.module.js';
import { ProxyConfigRuntime } from './proxy/proxy-config.runtime.js';
import { createListenerServer, listenerUrl, type ListenerServer, type ListenerSpec } from './proxy/listeners.js';
import { TlsContextStore } from './common/tls-context.js';
import { WebSocketProxy } from './proxy/websocket.proxy.js';
import { adminOptions, startAdminListener } from './admin/admin.server.js';
import type { ConfigStore } from './config/config-store.js';

/** The proxy listener's application: the route table, plugins and the catch-all forward. */
@Module({})
export class ProxyAppModule {
  static register(config: GatewayConfig, logger: Logger, settingsModule?: DynamicModule): DynamicModule {
    return { module: ProxyAppModule, imports: [GatewayConfigModule.forRoot(config, logger, settingsModule), ProxyModule] };
  }
}

/** The status listener's application: health, Kong's status endpoints and metrics, never shadowed by a proxied route. */
@Module({})
export class StatusAppModule {
  /** `state` comes from the proxy application: readiness reports on the very state that verifies tokens. */
  static register(config: GatewayConfig, logger: Logger, state: GatewayStateOptions, settingsModule?: DynamicModule): DynamicModule {
    return {
      module: StatusAppModule,
      imports: [GatewayConfigModule.forRoot(config, logger, settingsModule), GatewayStateModule.forRoot(state), HealthModule],
    };
  }
}

export interface RunningGateway {
  /** The first proxy listener's URL; `proxyUrls` has one per listener, in GATEHOUSE_PROXY_LISTEN order. */
  proxyUrl: string;
  proxyUrls: string[];
  statusUrl: string;
  proxy: INestApplicationContext;
  status: NestFastifyApplication;
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

/**
 * Node's own parser rejects malformed and ambiguous requests (oversized headers,
 * Content-Length with Transfer-Encoding, conflicting lengths) before any
 * handler sees them; this gives those refusals a status and a JSON body. The
 * request is never forwarded and the connection is closed (RFC 9112 §6.3).
 */
function clientErrorResponse(err: NodeJS.ErrnoException, socket: Socket, logger: Logger) {
  const code = err.code ?? '';
  const [status, text, message] =
    code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'Request header or cookie too large']
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'Request timeout']
        : [400, 'Bad Request', 'Bad request'];
  const canAnswer = socket.writable && !(socket as Socket & { _httpMessage?: unknown })._httpMessage;
  // A socket already answered (e.g. the EOF after a 408) or already mid-response is only closed: one log line per refusal.
  logger[canAnswer ? 'info' : 'debug']({ status, reason: code || err.message, peer: socket.remoteAddress }, 'client error');
  if (canAnswer) {
    const body = JSON.stringify({ message });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
  } else {
    socket.destroy();
  }
}

/** Node HTTP server options shared by both listeners: request limits and slow-client timeouts. */
function serverOptions(config: GatewayConfig) {
  const s = config.settings;
  return {
    maxHeaderSize: s.maxHeaderSize,
    // Slow clients: all headers within this time, the whole request within the other.
    headersTimeout: s.clientHeaderTimeoutMs,
    requestTimeout: s.clientBodyTimeoutMs,
    // Node enforces both only when it sweeps its connections (every 30 s by default),
    // which would let a stalled client hold a socket for up to 30 s past its limit.
    connectionsCheckingInterval: Math.min(1_000, s.clientHeaderTimeoutMs),
    keepAliveTimeout: 65_000,
    requireHostHeader: true,
  };
}

function fastifyAdapter(config: GatewayConfig, logger: Logger, onServer: (s: Server) => void) {
  return new FastifyAdapter({
    logger: false,
    exposeHeadRoutes: false,
    requestIdHeader: false,
    return503OnClosing: true,
    clientErrorHandler: (err, socket) => clientErrorResponse(err as NodeJS.ErrnoException, socket, logger),
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
      const server = createServer(serverOptions(config), handler);
      onServer(server);
      return server;
    },
  });
}

function listen(server: Server | ListenerServer, host: string, port: number, backlog?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server | ListenerServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export async function startGateway(config: GatewayConfig, logger: Logger, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const { store } = options;
  const nestLogger = new NestPinoLogger(logger);
  const servers: Server[] = [];

  // The proxy listener: a Nest application context (modules, DI, lifecycle) whose catch-all handler
  // the Node server calls directly (see ProxyHandler for why not through Nest's router).
  const proxy = await NestFactory.createApplicationContext(ProxyAppModule.register(config, logger, options.settingsModule), {
    logger: nestLogger,
    abortOnError: false,
  });
  await proxy.init();
  const handler = proxy.get(ProxyHandler);
  const websockets = proxy.get(WebSocketProxy);
  const counters = new ServerCounters();
  const onRequest = counters.counting(handler.handle);
  const { proxyListen, statusListen } = config.settings;
  // The first listener's address may have been rewritten by the demo (a free port chosen up front).
  const specs: ListenerSpec[] = config.settings.proxyListeners.map((l, i) => (i === 0 ? { ...l, host: proxyListen.host, port: proxyListen.port } : l));
  const tls = config.settings.tls ? new TlsContextStore(config.settings.tls, logger) : undefined;
  tls?.watch();
  // kong_nginx_connections_total and kong_nginx_requests_total read the same counters as GET /status.
  gatewayMetrics.useServerCounters(counters);
  const proxyServers: ListenerServer[] = [];
  // HTTP/2 sessions outlive server.close(): shutdown sends them GOAWAY (in-flight streams finish), the timeout destroys them.
  const h2Sessions = new Set<Http2Session>();
  for (const spec of specs) {
    const server = createListenerServer(spec, serverOptions(config), { request: onRequest, upgrade: handler.upgrade }, tls);
    counters.attach(server as Server);
    if (spec.http2) {
      server.on('session', (session: Http2Session) => {
        h2Sessions.add(session);
        session.once('close', () => h2Sessions.delete(session));
      });
    }
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => clientErrorResponse(err, socket, logger));
    // Failed handshakes (scanners, clients refusing the certificate) are not the gateway's errors.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => logger.debug({ reason: err.code ?? err.message, peer: socket.remoteAddress }, 'TLS handshake failed'));
    proxyServers.push(server);
  }

  const readiness = new ReadinessState();
  readiness.onDraining((origin) => {
    // Keep-alive clients are told to reconnect, so they land on an instance that stays.
    handler.draining = true;
    logger.info({ origin }, 'draining: readiness answers 503, requests are still served');
  });
  const runtime = proxy.get(ProxyConfigRuntime);
  countConfigChanges(runtime);
  const state: GatewayStateOptions = {
    proxy,
    readiness,
    // The applied configuration's own digest: it follows every reload.
    configurationHash: () => (isEmptyConfiguration(runtime.current.declarative) ? EMPTY_CONFIGURATION_HASH : runtime.current.hash),
    // With GATEHOUSE_WORKERS > 1 every worker's counters (and draining) are shared through the primary.
    processStatuses: joinClusterState(readiness, () => processStatus(counters)),
  };

  const status = await NestFactory.create<NestFastifyApplication>(
    StatusAppModule.register(config, logger, state, options.settingsModule),
    fastifyAdapter(config, logger, (s) => servers.push(s)),
    { logger: nestLogger, abortOnError: false },
  );
  status.useGlobalFilters(new GatewayExceptionFilter(logger));

  for (let i = 0; i < specs.length; i++) await listen(proxyServers[i], specs[i].host, specs[i].port, specs[i].backlog);
  await status.listen(statusListen.port, statusListen.host);
  // The Admin API writes through the store and applies to this process's runtime (other processes follow the store).
  const adminListen = config.settings.adminListen;
  const admin =
    store && adminListen
      ? await startAdminListener({
          listen: adminListen,
          tls: config.settings.adminSsl ? tls : undefined,
          runtime: proxy.get(ProxyConfigRuntime),
          store,
          logger,
          options: adminOptions(config.settings),
        })
      : undefined;
  const url = (server: Server, fallbackHost: string) => {
    const address = server.address();
    const host = fallbackHost === '0.0.0.0' || fallbackHost === '::' ? '127.0.0.1' : fallbackHost;
    return `http://${host.includes(':') ? `[${host}]` : host}:${typeof address === 'object' && address ? address.port : 0}`;
  };

  let closing: Promise<void> | undefined;
  return {
    proxy,
    status,
    readiness,
    runtime: proxy.get(ProxyConfigRuntime),
    adminUrl: admin?.url,
    proxyUrl: listenerUrl(specs[0], proxyServers[0]),
    proxyUrls: specs.map((spec, i) => listenerUrl(spec, proxyServers[i])),
    statusUrl: url(status.getHttpServer(), statusListen.host),
    shutdown() {
      closing ??= (async () => {
        const force = setTimeout(() => {
          logger.warn({ timeout_ms: config.settings.shutdownTimeoutMs }, 'shutdown timeout reached, closing remaining connections');
          for (const s of servers) s.closeAllConnections();
          for (const s of proxyServers) (s as Server).closeAllConnections?.();
          websockets.destroyAll();
          for (const session of h2Sessions) session.destroy();
        }, config.settings.shutdownTimeoutMs);
        force.unref();
        // Stop accepting; idle keep-alive connections close now, busy ones after their response
        // (which carries Connection: close); then the upstream pools close.
        readiness.startDraining('signal');
        handler.draining = true;
        for (const session of h2Sessions) session.close();
        // WebSockets are told (close 1001) and counted in the drain like in-flight requests.
        await Promise.all([...proxyServers.map(closeServer), status.close(), admin?.close(), websockets.closeAll()]);
        tls?.close();
        await proxy.close();
        clearTimeout(force);
      })();
      return closing;
    },
  };
}
