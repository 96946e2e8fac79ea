import { Inject, Injectable } from '@nestjs/common';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { BadGatewayError, GatewayTimeoutError } from '../common/gateway.error.js';
import { LOGGER } from '../common/logger.js';
import type { RequestContext } from '../common/request-context.js';
import { certificateFailure, upstreamTlsOptions } from '../common/tls-upstream.js';
import { clientResponseHeaders } from './forwarding-headers.js';
import { WebSocketTunnel } from './websocket.tunnel.js';

/**
 * The upstream half of a WebSocket connection: the handshake is sent to the
 * route's service on a connection of its own (upgraded connections never
 * return to a pool), over TLS with the service's verification for `https`
 * services. A 101 is relayed to the client with the gateway's own headers
 * (request id, a refreshed session cookie) and the two sockets become a
 * WebSocketTunnel; any other answer is relayed as a normal response and the
 * connection closes.
 *
 * Tokens and sessions are checked once, on the handshake (as Kong, nginx
 * auth_request and oauth2-proxy do): a token expiring or a session ending
 * later does not cut an open connection. Upstreams that need it bound the
 * connection themselves; the idle timeout (the service's read_timeout) and
 * shutdown close it.
 */
@Injectable()
export class WebSocketProxy {
  private readonly tunnels = new Set<WebSocketTunnel>();

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  /** Open tunnels, for shutdown and tests. */
  get open(): number {
    return this.tunnels.size;
  }

  connect(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, path: string, headers: string[], head: Buffer): Promise<void> {
    const service = ctx.match!.route.service;
    const client = req.socket;
    // Hop-by-hop (stripped by upstreamRequestHeaders), so named again for this hop (RFC 6455 §4.1).
    headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
    const tls = upstreamTlsOptions(service);
    const options = {
      host: service.hostname.replace(/^\[|\]$/g, ''),
      port: service.port,
      method: 'GET',
      path: path + ctx.query,
      headers,
      setHost: false,
      agent: false as const,
      timeout: service.connectTimeoutMs,
      ...tls,
    };
    ctx.upstreamStartedAt = performance.now();
    return new Promise<void>((resolve, reject) => {
      const upstreamReq: ClientRequest = (tls ? httpsRequest : httpRequest)(options);
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        upstreamReq.destroy();
        reject(err);
      };
      // The client leaving during the handshake abandons it.
      const clientGone = () => fail(new BadGatewayError('client closed during the WebSocket handshake'));
      client.once('close', clientGone);
      upstreamReq.on('socket', (s: Socket) => s.setTimeout(service.connectTimeoutMs));
      upstreamReq.on('timeout', () => fail(new GatewayTimeoutError(`upstream ${service.name} (${service.origin}): WebSocket handshake timed out`)));
      upstreamReq.on('error', (err: NodeJS.ErrnoException) => {
        const where = `upstream ${service.name} (${service.origin})`;
        const certificate = certificateFailure(err.code);
        fail(new BadGatewayError(`${where}: ${certificate ?? err.code ?? err.message}`, err));
      });
      upstreamReq.on('response', (upstreamRes: IncomingMessage) => {
        // The upstream declined the upgrade: its answer goes to the client as any response would.
        if (settled) return upstreamRes.destroy();
        settled = true;
        client.off('close', clientGone);
        ctx.upstreamLatencyMs = performance.now() - ctx.upstreamStartedAt;
        res.writeHead(upstreamRes.statusCode!, this.responseHeaders(upstreamRes.rawHeaders, ctx));
        upstreamRes.pipe(res);
        upstreamRes.once('end', resolve);
        upstreamRes.once('error', () => (res.destroy(), resolve()));
      });
      upstreamReq.on('upgrade', (upstreamRes: IncomingMessage, upstream: Socket, upstreamHead: Buffer) => {
        if (settled) return upstream.destroy();
        settled = true;
        client.off('close', clientGone);
        ctx.upstreamLatencyMs = performance.now() - ctx.upstreamStartedAt;
        if (client.destroyed) {
          upstream.destroy();
          return resolve();
        }
        upstream.setTimeout(0);
        const headers = this.responseHeaders(upstreamRes.rawHeaders, ctx);
        headers.push('connection', 'Upgrade', 'upgrade', upstreamRes.headers.upgrade ?? 'websocket');
        // A 101 has no body; with Connection set explicitly, Node writes the head as given.
        res.writeHead(101, headers);
        res.end();
        if (upstreamHead.length) client.write(upstreamHead);
        if (head.length) upstream.write(head);
        const tunnel = new WebSocketTunnel(client as Socket, upstream, service.readTimeoutMs);
        this.tunnels.add(tunnel);
        void tunnel.closed.then(() => {
          this.tunnels.delete(tunnel);
          this.logger.debug(
            { request_id: ctx.requestId, route: ctx.match!.route.name, bytes_up: tunnel.stats.bytesUp, bytes_down: tunnel.stats.bytesDown, closed_by: tunnel.stats.closedBy },
            'websocket closed',
          );
        });
        resolve();
      });
      upstreamReq.end();
    });
  }

  /** The upstream's headers minus hop-by-hop ones, plus the gateway's (request id, cookies the access phase decided). */
  private responseHeaders(raw: string[], ctx: RequestContext): string[] {
    const headers = clientResponseHeaders(raw, ctx.requestId);
    if (ctx.responseHeaders) {
      for (const [name, value] of Object.entries(ctx.responseHeaders)) for (const v of Array.isArray(value) ? value : [value]) headers.push(name, v);
    }
    return headers;
  }

  /** Shutdown: every tunnel gets close 1001 on both sides; resolves when all have closed. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.tunnels].map((t) => t.goAway()));
  }

  destroyAll(): void {
    for (const t of this.tunnels) t.destroy();
  }
}
