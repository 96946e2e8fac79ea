import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { OpenIdConnectService } from '../auth/openid-connect.service.js';
import { AccessLog } from '../common/access-log.js';
import { writeErrorResponse } from '../common/error-response.js';
import { LOGGER } from '../common/logger.js';
import { RequestContext, requestIdFor } from '../common/request-context.js';
import { GatewayConfig } from '../config/gateway-config.js';
import { isTrustedPeer, upstreamRequestHeaders, type ConnectionFacts } from './forwarding-headers.js';
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
  ) {
    this.accessLog = new AccessLog(logger);
    this.anyTrusted = config.settings.trustedIpsText !== '';
    this.tracing = activeTracing();
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    // No trusted proxies configured (the default): skip the address parse on every request.
    const peerTrusted = this.anyTrusted && isTrustedPeer(this.config.settings.trustedIps, req.socket.remoteAddress);
    const ctx = new RequestContext(requestIdFor(req, peerTrusted), peerTrusted);
    req.gatehouse = ctx;
    if (this.draining) res.shouldKeepAlive = false;
    this.accessLog.track(req, res, ctx);
    if (this.tracing.recording) {
      this.tracing.startRequest(req, res, ctx);
      this.tracing.run(ctx, () => this.process(req, res, ctx));
    } else {
      this.process(req, res, ctx);
    }
  };

  /** Route match, access phase, forward; every error through the one error mapping. */
  private process(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    let pending: Promise<void>;
    try {
      this.routes.resolve(req, ctx);
      const { access, log } = ctx.match!.route.phases;
      if (log.length) res.once('close', () => runLogPhase(log, req, res, ctx, this.logger));
      const accessed = runAccessPhase(access, 0, req, res, ctx);
      if (accessed === undefined) pending = this.forward(req, res, ctx);
      else if (accessed === RESPONDED) return;
      else pending = accessed.then((r) => (r === RESPONDED ? undefined : this.forward(req, res, ctx)));
    } catch (err) {
      writeErrorResponse(req, res, err, this.logger);
      return;
    }
    pending.catch((err: unknown) => writeErrorResponse(req, res, err, this.logger));
  }

  private forward(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const { route, upstreamPath } = ctx.match!;
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
    this.tracing.upstream(req, ctx, service, upstreamPath!, facts);
    const headers = upstreamRequestHeaders(req.rawHeaders, facts, ctx.headerEdits, req.headers.connection);
    // RouteMatcher refuses a match without an upstream path before any step runs.
    return this.upstream.forward(req, res, ctx, service, upstreamPath!, headers);
  }
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
