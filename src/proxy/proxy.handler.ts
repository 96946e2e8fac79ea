import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { OpenIdConnectService } from '../auth/openid-connect.service.js';
import { ScopesGuard } from '../auth/scopes.guard.js';
import { AccessLog } from '../common/access-log.js';
import { writeErrorResponse } from '../common/error-response.js';
import { LOGGER } from '../common/logger.js';
import { RequestContext, requestIdFor } from '../common/request-context.js';
import { GatewayConfig } from '../config/gateway-config.js';
import { isTrustedPeer, upstreamRequestHeaders } from './forwarding-headers.js';
import { RouteMatcher } from './route-matcher.js';
import { UpstreamClient } from './upstream.client.js';

/**
 * The catch-all: every method and path on the proxy listener, in one readable
 * chain — route match, authentication (the route's compiled openid-connect policy),
 * authorization (ScopesGuard), forward — with every error going through the one
 * error mapping.
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
  /** Set on SIGTERM: responses then close their connection so keep-alive clients move elsewhere. */
  draining = false;

  constructor(
    private readonly routes: RouteMatcher,
    private readonly oidc: OpenIdConnectService,
    private readonly scopes: ScopesGuard,
    private readonly upstream: UpstreamClient,
    private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.accessLog = new AccessLog(logger);
    this.anyTrusted = config.settings.trustedIpsText !== '';
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    // No trusted proxies configured (the default): skip the address parse on every request.
    const peerTrusted = this.anyTrusted && isTrustedPeer(this.config.settings.trustedIps, req.socket.remoteAddress);
    const ctx = new RequestContext(requestIdFor(req, peerTrusted), peerTrusted);
    req.gatehouse = ctx;
    if (this.draining) res.shouldKeepAlive = false;
    this.accessLog.track(req, res, ctx);
    let pending: Promise<void>;
    try {
      this.routes.resolve(req, ctx);
      const auth = ctx.match!.route.auth;
      if (!auth) pending = this.forward(req, res, ctx);
      else if (this.oidc.authenticateCached(req, ctx, auth)) {
        this.scopes.authorizeRoute(ctx, auth, req.method!);
        pending = this.forward(req, res, ctx);
      } else pending = this.authenticated(req, res, ctx);
    } catch (err) {
      writeErrorResponse(req, res, err, this.logger);
      return;
    }
    pending.catch((err: unknown) => writeErrorResponse(req, res, err, this.logger));
  };

  private async authenticated(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const auth = ctx.match!.route.auth!;
    if ((await this.oidc.authenticate(req, res, ctx, auth)) === 'responded') return;
    this.scopes.authorizeRoute(ctx, auth, req.method!);
    return this.forward(req, res, ctx);
  }

  private forward(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const { route, upstreamPath } = ctx.match!;
    const service = route.service;
    const socket = req.socket;
    const headers = upstreamRequestHeaders(
      req.rawHeaders,
      {
        peer: socket.remoteAddress ?? '',
        peerTrusted: ctx.peerTrusted,
        scheme: (socket as TLSSocket).encrypted ? 'https' : 'http',
        localPort: socket.localPort ?? this.config.settings.proxyListen.port,
        path: ctx.path,
        requestId: ctx.requestId,
        upstreamHost: route.preserveHost && req.headers.host ? req.headers.host : service.hostHeader,
        stripHeaders: route.auth?.stripHeaders,
        ownedCookies: ctx.cookieFilter ?? this.oidc.ownedCookies,
      },
      ctx.headerEdits,
      req.headers.connection,
    );
    // RouteMatcher refuses a match without an upstream path before any step runs.
    return this.upstream.forward(req, res, ctx, service, upstreamPath!, headers);
  }
}
