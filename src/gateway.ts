import { type DynamicModule, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { AccessLog } from './common/access-log.js';
import { GatewayExceptionFilter } from './common/gateway-exception.filter.js';
import { NestPinoLogger } from './common/logger.js';
import { RequestContext, requestIdFor } from './common/request-context.js';
import { ConfigModule } from './config/config.module.js';
import { GatewayConfig } from './config/gateway-config.js';
import { HealthModule } from './health/health.module.js';
import { IssuerRegistry } from './auth/issuer.registry.js';
import { isTrustedPeer } from './proxy/forwarding-headers.js';
import { ProxyModule } from './proxy/proxy.module.js';

/** The proxy listener's application: the route table, plugins and the catch-all forward. */
@Module({})
export class ProxyAppModule {
  static register(config: GatewayConfig, logger: Logger): DynamicModule {
    return { module: ProxyAppModule, imports: [ConfigModule.forRoot(config, logger), ProxyModule] };
  }
}

/** The status listener's application: health (and later metrics), never shadowed by a proxied route. */
@Module({})
export class StatusAppModule {
  /** `issuers` is the proxy application's registry: readiness reports on the very state that verifies tokens. */
  static register(config: GatewayConfig, logger: Logger, issuers: IssuerRegistry): DynamicModule {
    return { module: StatusAppModule, imports: [ConfigModule.forRoot(config, logger), HealthModule.register(issuers)] };
  }
}

export interface RunningGateway {
  proxyUrl: string;
  statusUrl: string;
  proxy: NestFastifyApplication;
  status: NestFastifyApplication;
  /** Stop accepting, let in-flight requests finish (bounded), close upstream pools. */
  shutdown(): Promise<void>;
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

function fastifyAdapter(config: GatewayConfig, logger: Logger, onServer: (s: Server) => void) {
  const s = config.settings;
  return new FastifyAdapter({
    logger: false,
    exposeHeadRoutes: false,
    routerOptions: { maxParamLength: 1 << 16 },
    requestIdHeader: false,
    return503OnClosing: true,
    clientErrorHandler: (err, socket) => clientErrorResponse(err as NodeJS.ErrnoException, socket, logger),
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
      const server = createServer(
        {
          maxHeaderSize: s.maxHeaderSize,
          // Slow clients: all headers within this time, the whole request within the other.
          headersTimeout: s.clientHeaderTimeoutMs,
          requestTimeout: s.clientBodyTimeoutMs,
          // Node enforces both only when it sweeps its connections (every 30 s by default),
          // which would let a stalled client hold a socket for up to 30 s past its limit.
          connectionsCheckingInterval: Math.min(1_000, s.clientHeaderTimeoutMs),
          keepAliveTimeout: 65_000,
          requireHostHeader: true,
        },
        handler,
      );
      onServer(server);
      return server;
    },
  });
}

export async function startGateway(config: GatewayConfig, logger: Logger): Promise<RunningGateway> {
  const nestLogger = new NestPinoLogger(logger);
  const filter = new GatewayExceptionFilter(logger);
  const accessLog = new AccessLog(logger);
  const servers: Server[] = [];

  const proxy = await NestFactory.create<NestFastifyApplication>(
    ProxyAppModule.register(config, logger),
    fastifyAdapter(config, logger, (s) => servers.push(s)),
    { logger: nestLogger, bodyParser: false, abortOnError: false },
  );
  const instance = proxy.getHttpAdapter().getInstance();
  // Bodies are streamed to the upstream untouched: no parser may read them.
  instance.removeAllContentTypeParsers();
  instance.addContentTypeParser('*', (_req: FastifyRequest, _payload: IncomingMessage, done: (err: null) => void) => done(null));
  const trusted = config.settings.trustedIps;
  const anyTrusted = config.settings.trustedIpsText !== '';
  instance.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const req = request.raw;
    // No trusted proxies configured (the default): skip the address parse on every request.
    const peerTrusted = anyTrusted && isTrustedPeer(trusted, req.socket.remoteAddress);
    const ctx = new RequestContext(requestIdFor(req, peerTrusted), peerTrusted);
    req.gatehouse = ctx;
    accessLog.track(req, reply.raw, ctx);
    done();
  });
  proxy.useGlobalFilters(filter);

  const status = await NestFactory.create<NestFastifyApplication>(
    StatusAppModule.register(config, logger, proxy.get(IssuerRegistry)),
    fastifyAdapter(config, logger, (s) => servers.push(s)),
    { logger: nestLogger, abortOnError: false },
  );
  status.useGlobalFilters(filter);

  const { proxyListen, statusListen } = config.settings;
  await proxy.listen(proxyListen.port, proxyListen.host);
  await status.listen(statusListen.port, statusListen.host);
  const url = (app: INestApplication, fallbackHost: string) => {
    const address = app.getHttpServer().address();
    const host = fallbackHost === '0.0.0.0' || fallbackHost === '::' ? '127.0.0.1' : fallbackHost;
    return `http://${host.includes(':') ? `[${host}]` : host}:${typeof address === 'object' && address ? address.port : 0}`;
  };

  let closing: Promise<void> | undefined;
  return {
    proxy,
    status,
    proxyUrl: url(proxy, proxyListen.host),
    statusUrl: url(status, statusListen.host),
    shutdown() {
      closing ??= (async () => {
        const force = setTimeout(() => {
          logger.warn({ timeout_ms: config.settings.shutdownTimeoutMs }, 'shutdown timeout reached, closing remaining connections');
          for (const s of servers) s.closeAllConnections();
        }, config.settings.shutdownTimeoutMs);
        force.unref();
        // Fastify stops accepting, closes idle keep-alive connections and waits for in-flight requests.
        await proxy.close();
        await status.close();
        clearTimeout(force);
      })();
      return closing;
    },
  };
}
