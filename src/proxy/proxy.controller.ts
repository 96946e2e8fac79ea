import { All, Controller, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { GatewayConfig } from '../config/gateway-config.js';
import { upstreamRequestHeaders } from './forwarding-headers.js';
import { RouteMatchGuard } from './route-match.guard.js';
import { UpstreamClient } from './upstream.client.js';
import { AUTH_GUARDS } from '../auth/auth.guards.js';

/**
 * The catch-all: every method and path on the proxy listener. Registered by the
 * last module so the gateway's own endpoints (login callbacks) win. Guards run
 * in order: route match, then the route's plugins (authentication, ScopesGuard).
 */
@Controller()
@UseGuards(RouteMatchGuard, ...AUTH_GUARDS)
export class ProxyController {
  constructor(
    private readonly upstream: UpstreamClient,
    private readonly config: GatewayConfig,
  ) {}

  @All('*')
  async forward(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    // The response is streamed by hand from here on; Fastify must not send one too.
    reply.hijack();
    const req = request.raw;
    const ctx = req.gatehouse!;
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
      },
      ctx.headerEdits,
    );
    await this.upstream.forward(req, reply.raw, ctx, service, upstreamPath, headers);
  }
}
