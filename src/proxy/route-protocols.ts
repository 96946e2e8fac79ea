import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../common/gateway.error.js';
import type { RequestContext } from '../common/request-context.js';
import { requestScheme } from './forwarding-headers.js';

/**
 * A route limited to `https` (or `wss`) reached in clear text, answered as
 * Kong does: 426 with `Upgrade: TLS/1.2, HTTP/1.1` by default, or the
 * route's `https_redirect_status_code` (301/302/307/308) with a Location on
 * https:// and the same host (without its port, like Kong's `$host`) and path.
 */
export class HttpsRequiredError extends GatewayError {
  constructor(status: number, location: string | undefined, { http2 }: { http2: boolean }) {
    super(status, status === 426 ? 'Please use HTTPS protocol' : status === 301 || status === 308 ? 'Moved Permanently' : 'Moved Temporarily', {
      reason: 'the route accepts only https',
      // An HTTP/2 request is only seen as clear text when a trusted proxy says so; HTTP/2 responses
      // cannot carry connection-specific fields (RFC 9113 §8.2.2).
      headers: status !== 426 ? { location: location! } : http2 ? undefined : { connection: 'Upgrade', upgrade: 'TLS/1.2, HTTP/1.1' },
    });
  }
}

/** A WebSocket handshake on a route whose protocols list neither ws nor wss. */
export class WebSocketNotAllowedError extends GatewayError {
  constructor() {
    super(400, 'Bad request', { reason: 'WebSocket upgrade on a route without ws/wss in its protocols', body: { reason: 'this route does not accept WebSocket connections' } });
  }
}

/** A plain HTTP request on a route that lists only ws/wss: RFC 9110 §15.5.22, the client must upgrade. */
export class WebSocketRequiredError extends GatewayError {
  constructor({ http2 }: { http2: boolean }) {
    // Connection-specific fields are forbidden in HTTP/2 responses (RFC 9113 §8.2.2).
    super(426, 'Please use WebSocket protocol', { reason: 'the route accepts only WebSocket connections', headers: http2 ? undefined : { connection: 'Upgrade', upgrade: 'websocket' } });
  }
}

/**
 * Checks the matched route's `protocols` against how the request came in.
 * Called only for routes that are not plain `[http, https]` (RouteProtocols.anyHttp).
 * As in Kong, a route listing `http` only still serves a TLS request.
 */
export function checkRouteProtocols(req: IncomingMessage, ctx: RequestContext, websocket: boolean): void {
  const route = ctx.match!.route;
  const p = route.protocols;
  const secure = requestScheme(req, ctx.peerTrusted) === 'https';
  if (websocket) {
    if (!p.ws && !p.wss) throw new WebSocketNotAllowedError();
    if (p.ws || secure) return;
  } else {
    if (!p.http && !p.https) throw new WebSocketRequiredError({ http2: req.httpVersionMajor === 2 });
    if (p.http || secure) return;
  }
  const status = p.httpsRedirectStatus;
  let location: string | undefined;
  if (status !== 426) {
    // Kong: "https://" .. forwarded_host .. request_uri; the host as the client (or a trusted proxy) named it, without port.
    const sent = (ctx.peerTrusted && (req.headers['x-forwarded-host'] as string | undefined)) || req.headers.host || '';
    location = `https://${stripPort(sent.split(',', 1)[0].trim())}${ctx.path}${ctx.query}`;
  }
  throw new HttpsRequiredError(status, location, { http2: req.httpVersionMajor === 2 });
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
