import type { Server } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { TlsContextStore } from '../common/tls-context.js';
import type { GatewaySettings } from '../config/gateway-settings.js';
import type { ServerCounters } from '../health/server.counters.js';
import { createListenerServer, listenerUrl, type ListenerServer, type ListenerSpec } from './listeners.js';
import type { ProxyHandler } from './proxy.handler.js';
import type { WebSocketProxy } from './websocket.proxy.js';

/**
 * Node's own parser rejects malformed and ambiguous requests (oversized headers,
 * Content-Length with Transfer-Encoding, conflicting lengths) before any
 * handler sees them; this gives those refusals a status and a JSON body. The
 * request is never forwarded and the connection is closed (RFC 9112 §6.3).
 */
export function clientErrorResponse(err: NodeJS.ErrnoException, socket: Socket, logger: Logger): void {
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

/** Node HTTP server options shared by the proxy and status listeners: request limits and slow-client timeouts. */
export function serverOptions(settings: GatewaySettings) {
  return {
    maxHeaderSize: settings.maxHeaderSize,
    // Slow clients: all headers within this time, the whole request within the other.
    headersTimeout: settings.clientHeaderTimeoutMs,
    requestTimeout: settings.clientBodyTimeoutMs,
    // Node enforces both only when it sweeps its connections (every 30 s by default),
    // which would let a stalled client hold a socket for up to 30 s past its limit.
    connectionsCheckingInterval: Math.min(1_000, settings.clientHeaderTimeoutMs),
    keepAliveTimeout: 65_000,
    requireHostHeader: true,
  };
}

export function listen(server: Server | ListenerServer, host: string, port: number, backlog?: number): Promise<void> {
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

/**
 * The proxy listeners (Kong's `proxy_listen`): raw Node HTTP/1.1, HTTPS and
 * HTTP/2 servers that call the ProxyHandler provider directly, off Nest's
 * router (see ProxyHandler for why), and hand upgrades to the WebSocket proxy.
 */
export class ProxyServer {
  private readonly servers: ListenerServer[] = [];
  /** HTTP/2 sessions outlive server.close(): close() sends them GOAWAY (in-flight streams finish), destroy() ends them. */
  private readonly h2Sessions = new Set<Http2Session>();

  constructor(
    private readonly specs: readonly ListenerSpec[],
    settings: GatewaySettings,
    private readonly handler: ProxyHandler,
    private readonly websockets: WebSocketProxy,
    counters: ServerCounters,
    logger: Logger,
    tls?: TlsContextStore,
  ) {
    const onRequest = counters.counting(handler.handle);
    for (const spec of specs) {
      const server = createListenerServer(spec, serverOptions(settings), { request: onRequest, upgrade: handler.upgrade }, tls);
      counters.attach(server as Server);
      if (spec.http2) {
        server.on('session', (session: Http2Session) => {
          this.h2Sessions.add(session);
          session.once('close', () => this.h2Sessions.delete(session));
        });
      }
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => clientErrorResponse(err, socket, logger));
      // Failed handshakes (scanners, clients refusing the certificate) are not the gateway's errors.
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => logger.debug({ reason: err.code ?? err.message, peer: socket.remoteAddress }, 'TLS handshake failed'));
      this.servers.push(server);
    }
  }

  /** Binds every listener, in GATEHOUSE_PROXY_LISTEN order. */
  async listen(): Promise<void> {
    for (let i = 0; i < this.specs.length; i++) await listen(this.servers[i], this.specs[i].host, this.specs[i].port, this.specs[i].backlog);
  }

  /** One URL per listener, in GATEHOUSE_PROXY_LISTEN order. */
  urls(): string[] {
    return this.specs.map((spec, i) => listenerUrl(spec, this.servers[i]));
  }

  /**
   * Stops accepting; idle keep-alive connections close now, busy ones after
   * their response (which carries Connection: close, the handler is draining);
   * WebSockets are told (close 1001) and counted in the drain like in-flight requests.
   */
  async close(): Promise<void> {
    this.handler.draining = true;
    for (const session of this.h2Sessions) session.close();
    await Promise.all([...this.servers.map(closeServer), this.websockets.closeAll()]);
  }

  /** The shutdown timeout is reached: every connection left is closed. */
  destroy(): void {
    for (const s of this.servers) (s as Server).closeAllConnections?.();
    this.websockets.destroyAll();
    for (const session of this.h2Sessions) session.destroy();
  }
}
