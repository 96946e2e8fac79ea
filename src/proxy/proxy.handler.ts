import { Inject, Injectable } from '@nestjs/common';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { OpenIdConnectService } from '../auth/openid-connect.service.js';
import { AccessLog } from '../common/access-log.js';
import { writeErrorResponse } from '../common/error-response.js';
import { LOGGER } from '../common/logger.js';
import { RequestContext, requestIdFor } from '../common/request-context.js';
import { GatewayError } from '../common/gateway.error.js';
import { GatewayConfig } from '../config/gateway-config.js';
import { isTrustedPeer, upstreamRequestHeaders, type ConnectionFacts } from './forwarding-headers.js';
import { checkRouteProtocols } from './route-protocols.js';
import { WebSocketProxy } from './websocket.proxy.js';
import { RESPONDED, type AccessResult, type CompiledPlugin } from '../plugins/plugin.js';
import { RouteMatcher } from './route-matcher.js';
import { activeTracing, type RequestTracing } from '../telemetry/tracing.js';
import { UpstreamClient } from './upstream.client.js';

/**
 * The catch-all: every method and path on the proxy listener, in one readable
 * chain — route match, the route's access phase (its plugins in priority order:
 * cors, authentication and authorization, limits, cache), forward (the response
 * phase runs as the upstream answers), log phase — with every error going
 * through the one error mapping.
 *
 * It is a Nest provider wired by DI, but it is called straight from the Node
 * HTTP server rather than through Nest's router: per request, the router,
 * guard and interceptor pipeline plus Fastify's routing and hooks took the
 * gateway from ~0.8× to 0.44× of a bare Node proxy's throughput (measured in
 * bench/README.md). The steps are the same objects Nest would call.
 */
@Injectable()
export class ProxyHandler {
  private readonly accessLog: AccessLog;
  /**
   * One 'close' listener shared by every response (no closure per request):
   * the matched route's log phase (prometheus), then the access line.
   * Registered when the request arrives if the access log is on, else only
   * for a route with a log phase.
   */
  private readonly onResponseClose: (this: ServerResponse) => void;
  private readonly anyTrusted: boolean;
  /** Propagation only unless OTEL_EXPORTER_OTLP_ENDPOINT is set (src/telemetry/tracing.ts). */
  private readonly tracing: RequestTracing;
  /** Set on SIGTERM: responses then close their connection so keep-alive clients move elsewhere. */
  draining = false;

  constructor(
    private readonly routes: RouteMatcher,
    private readonly oidc: OpenIdConnectService,
    private readonly upstream: UpstreamClient,
    private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly websockets: WebSocketProxy,
  ) {
    this.accessLog = new AccessLog(logger);
    const accessLog = this.accessLog;
    this.onResponseClose = function (this: ServerResponse) {
      const req = this.req;
      const ctx = req.gatehouse;
      if (ctx === undefined) return;
      const log = ctx.match?.route.phases.log;
      if (log !== undefined && log.length !== 0) runLogPhase(log, req, this, ctx, logger);
      if (accessLog.enabled) accessLog.record(req, this, ctx);
    };
    this.anyTrusted = config.settings.trustedIpsText !== '';
    this.tracing = activeTracing();
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    // HTTP/2 (compat API): the host is `:authority` (RFC 9113 §8.3.1); one integer compare on HTTP/1.1.
    if (req.httpVersionMajor === 2) adaptHttp2Request(req);
    const ctx = this.begin(req, res);
    if (this.tracing.recording) {
      this.tracing.startRequest(req, res, ctx);
      this.tracing.run(ctx, () => this.process(req, res, ctx, undefined));
    } else {
      this.process(req, res, ctx, undefined);
    }
  };

  /** The request's context, and the response's access-log listener. */
  private begin(req: IncomingMessage, res: ServerResponse): RequestContext {
    // No trusted proxies configured (the default): skip the address parse on every request.
    const peerTrusted = this.anyTrusted && isTrustedPeer(this.config.settings.trustedIps, req.socket.remoteAddress);
    const ctx = new RequestContext(requestIdFor(req, peerTrusted), peerTrusted);
    req.gatehouse = ctx;
    if (this.draining) res.shouldKeepAlive = false;
    if (this.accessLog.enabled) res.on('close', this.onResponseClose);
    return ctx;
  }

  /**
   * Route match, access phase, forward; every error through the one error
   * mapping. `head` is set for a WebSocket handshake (the bytes read past its
   * headers): the route must then allow ws/wss, and the forward is the upgrade.
   */
  private process(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, head: Buffer | undefined): void {
    let pending: Promise<void>;
    try {
      this.routes.resolve(req, ctx);
      if (head !== undefined) checkRouteProtocols(req, ctx, true);
      else if (!ctx.match!.route.protocols.anyHttp) checkRouteProtocols(req, ctx, false);
      const { access, log } = ctx.match!.route.phases;
      if (log.length && !this.accessLog.enabled) res.on('close', this.onResponseClose);
      const accessed = runAccessPhase(access, 0, req, res, ctx);
      if (accessed === undefined) pending = this.forward(req, res, ctx, head);
      else if (accessed === RESPONDED) return;
      else pending = accessed.then((r) => (r === RESPONDED ? undefined : this.forward(req, res, ctx, head)));
    } catch (err) {
      writeErrorResponse(req, res, err, this.logger);
      return;
    }
    pending.catch((err: unknown) => writeErrorResponse(req, res, err, this.logger));
  }

  /**
   * An HTTP/1.1 `Upgrade` request (the server's `upgrade` event). A WebSocket
   * handshake goes through the same chain as any request: route, protocols
   * (the route must list ws or wss), the access phase with its plugins (a
   * refusal is the usual 401/403 JSON answer and the connection closes, never
   * a 101), the identity headers; then WebSocketProxy does the upstream
   * handshake and the tunnel. Any other Upgrade (h2c, …) is ignored as RFC
   * 9110 §7.8 allows: served as a plain request, on a connection that closes.
   */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node caches the peer address on first read; the access log reads it when the connection has closed.
    void req.socket.remoteAddress;
    // The HTTP server removed its own error listener when it handed the socket over: without one, a client
    // resetting the connection during the handshake would be an uncaught exception.
    socket.on('error', onUpgradedSocketError);
    const res = responseOnUpgradedSocket(req, socket as Socket);
    const websocket = req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket';
    if (!websocket) {
      // The parser stops at the headers of an Upgrade request: a body cannot be read as a request body.
      if ((req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined) {
        const reason = 'a request with a body cannot carry Upgrade (only WebSocket upgrades are supported)';
        writeErrorResponse(req, res, new GatewayError(400, 'Bad request', { reason, body: { reason } }), this.logger);
        return;
      }
      this.handle(req, res);
      return;
    }
    this.process(req, res, this.begin(req, res), head);
  };

  /** The upstream exchange: a request through the pool, or for a WebSocket handshake (`head` set) the tunnel. */
  private forward(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, head: Buffer | undefined): Promise<void> {
    // RouteMatcher refuses a match without an upstream path before any step runs.
    const match = ctx.match!;
    const headers = this.upstreamHeaders(req, ctx);
    if (head !== undefined) return this.websockets.connect(req, res, ctx, match.upstreamPath!, headers, head);
    return this.upstream.forward(req, res, ctx, match.route.service, match.upstreamPath!, headers);
  }

  private upstreamHeaders(req: IncomingMessage, ctx: RequestContext): string[] {
    const route = ctx.match!.route;
    const service = route.service;
    const socket = req.socket;
    const facts: ConnectionFacts = {
      peer: socket.remoteAddress ?? '',
      peerTrusted: ctx.peerTrusted,
      scheme: (socket as TLSSocket).encrypted ? 'https' : 'http',
      localPort: socket.localPort ?? this.config.settings.proxyListen.port,
      path: ctx.path,
      requestId: ctx.requestId,
      upstreamHost: route.preserveHost && req.headers.host ? req.headers.host : service.hostHeader,
      stripHeaders: route.auth?.stripHeaders,
      ownedCookies: ctx.cookieFilter ?? this.oidc.ownedCookies,
      traceparent: undefined,
      tracestate: undefined,
    };
    // W3C trace context, always sent upstream: the client's (checked) or a new trace (src/telemetry/tracing.ts).
    this.tracing.upstream(req, ctx, service, ctx.match!.upstreamPath!, facts);
    return upstreamRequestHeaders(req.rawHeaders, facts, ctx.headerEdits, req.headers.connection);
  }
}

/**
 * After the `upgrade` event the connection is no longer the HTTP server's: a
 * ServerResponse bound to the socket lets the plugins and the error mapping
 * answer exactly as on any request. Anything but a 101 closes the connection
 * once written.
 */
function responseOnUpgradedSocket(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => {
    if (res.statusCode !== 101) socket.end();
  });
  return res;
}

function onUpgradedSocketError(this: Duplex): void {
  this.destroy();
}

function adaptHttp2Request(req: IncomingMessage): void {
  const authority = req.headers[':authority'];
  if (typeof authority === 'string') req.headers.host = authority;
}

/**
 * The access phase: each plugin in priority order. Steps that decide without
 * I/O return nothing and the loop goes on synchronously; the first promise
 * continues the rest after it. RESPONDED stops the chain (the plugin answered).
 */
function runAccessPhase(chain: readonly CompiledPlugin[], from: number, req: IncomingMessage, res: ServerResponse, ctx: RequestContext): AccessResult {
  for (let i = from; i < chain.length; i++) {
    const result = chain[i].access!(req, res, ctx);
    if (result === undefined) continue;
    if (result === RESPONDED) return RESPONDED;
    return result.then((r) => (r === RESPONDED ? RESPONDED : runAccessPhase(chain, i + 1, req, res, ctx)));
  }
  return undefined;
}

/** The log phase, after the response: a failing plugin is logged, never allowed to disturb the others. */
function runLogPhase(chain: readonly CompiledPlugin[], req: IncomingMessage, res: ServerResponse, ctx: RequestContext, logger: Logger) {
  for (const plugin of chain) {
    try {
      plugin.log!(req, res, ctx);
    } catch (err) {
      logger.error({ request_id: ctx.requestId, plugin: plugin.name, err: err instanceof Error ? err.message : String(err) }, 'plugin log phase failed');
    }
  }
}
