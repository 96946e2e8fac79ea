import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerOptions as HttpServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ConfigProblem } from '../config/config.loader.js';
import type { TlsContextStore } from '../common/tls-context.js';

/**
 * Listener addresses in Kong's `proxy_listen` / `admin_listen` syntax: a
 * comma-separated list of `address:port [flag …]`, e.g.
 * `0.0.0.0:8000, 0.0.0.0:8443 ssl http2`, or `off`.
 *
 * Flags: `ssl` (TLS with the GATEHOUSE_SSL_CERT certificates), `http2` (ALPN
 * `h2` next to `http/1.1`; needs `ssl`: browsers speak HTTP/2 over TLS only and
 * cleartext h2c is not offered), `backlog=N` (the listen queue). nginx socket
 * tuning flags Kong files carry (`reuseport`, `deferred`, `bind`,
 * `so_keepalive=…`) are accepted and have no effect: Node has no equivalent
 * or does it already. `proxy_protocol` is refused: the gateway does not parse
 * the PROXY header, and accepting it silently would trust the wrong peer.
 */
export interface ListenerSpec {
  host: string;
  port: number;
  ssl: boolean;
  http2: boolean;
  backlog?: number;
  /** The entry as written, for logs and errors. */
  text: string;
}

const IGNORED_FLAGS = new Set(['reuseport', 'deferred', 'bind']);

export function parseListeners(value: string, setting: string, opts: { allowOff?: boolean } = {}): { listeners: ListenerSpec[]; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const listeners: ListenerSpec[] = [];
  const trimmed = value.trim();
  if (trimmed === 'off') {
    if (!opts.allowOff) problems.push({ path: setting, message: 'cannot be "off": this listener is required' });
    return { listeners, problems };
  }
  const entries = trimmed.split(',').map((s) => s.trim());
  entries.forEach((entry, i) => {
    const at = entries.length > 1 ? `${setting}[${i}]` : setting;
    const [address, ...flags] = entry.split(/\s+/);
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(address ?? '');
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) {
      problems.push({ path: at, message: `must be "host:port" and optional flags (e.g. 0.0.0.0:8000 or [::]:8443 ssl http2), got "${entry}"` });
      return;
    }
    const spec: ListenerSpec = { host: m[1] ?? m[2], port, ssl: false, http2: false, text: entry };
    for (const flag of flags) {
      if (flag === 'ssl') spec.ssl = true;
      else if (flag === 'http2') spec.http2 = true;
      else if (flag.startsWith('backlog=')) {
        const n = Number(flag.slice(8));
        if (!Number.isInteger(n) || n <= 0) problems.push({ path: at, message: `backlog must be a positive integer, got "${flag}"` });
        else spec.backlog = n;
      } else if (IGNORED_FLAGS.has(flag) || flag.startsWith('so_keepalive=')) continue;
      else if (flag === 'proxy_protocol') problems.push({ path: at, message: 'proxy_protocol is not supported (the PROXY protocol header is not parsed)' });
      else problems.push({ path: at, message: `unknown flag "${flag}" (supported: ssl, http2, backlog=N; ignored: reuseport, deferred, bind, so_keepalive)` });
    }
    if (spec.http2 && !spec.ssl) problems.push({ path: at, message: 'http2 needs ssl (HTTP/2 is offered by ALPN on TLS listeners; cleartext h2c is not supported)' });
    listeners.push(spec);
  });
  const seen = new Set<string>();
  for (const l of listeners) {
    const key = `${l.host}:${l.port}`;
    if (l.port !== 0 && seen.has(key)) problems.push({ path: setting, message: `${key} is listed twice` });
    seen.add(key);
  }
  return { listeners, problems };
}

export type ListenerServer = HttpServer | HttpsServer | Http2SecureServer;

export interface ListenerHandlers {
  request: (req: IncomingMessage, res: ServerResponse) => void;
  /** `Upgrade` requests on HTTP/1.1 connections (WebSockets); HTTP/2 has no Upgrade. */
  upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/**
 * One server per listener: `http` for plain ones, `https` for `ssl`, and
 * `http2.createSecureServer` with `allowHTTP1` for `ssl http2`, whose
 * compatibility API hands the same handler request/response objects.
 * Certificates come from the store, which swaps them on reload for new
 * handshakes (setSecureContext for clients without SNI, the SNI callback for
 * the others).
 */
export function createListenerServer(spec: ListenerSpec, httpOptions: HttpServerOptions, handlers: ListenerHandlers, tls?: TlsContextStore): ListenerServer {
  let server: ListenerServer;
  if (!spec.ssl) {
    server = createHttpServer(httpOptions, handlers.request);
  } else {
    if (!tls) throw new Error(`listener ${spec.text}: ssl without certificates`);
    if (spec.http2) {
      server = createSecureServer(
        {
          ...tls.serverOptions(),
          allowHTTP1: true,
          // The HTTP/1.1 header limit applies to HTTP/2's decoded header list as well.
          settings: { maxHeaderListSize: httpOptions.maxHeaderSize },
          maxSessionMemory: 10,
          // A handshake gets the time a client has for its request headers (tls' default is 120 s).
          handshakeTimeout: httpOptions.headersTimeout,
        },
        handlers.request as unknown as Parameters<typeof createSecureServer>[1],
      );
    } else {
      server = createHttpsServer({ ...httpOptions, ...tls.serverOptions(), handshakeTimeout: httpOptions.headersTimeout }, handlers.request);
    }
    const s = server as HttpsServer;
    const unsubscribe = tls.onReload((defaults) => s.setSecureContext(defaults));
    server.once('close', unsubscribe);
  }
  if (handlers.upgrade) server.on('upgrade', handlers.upgrade);
  return server;
}

/** `http://127.0.0.1:8000` / `https://…` for a listening server (wildcard addresses shown as loopback). */
export function listenerUrl(spec: ListenerSpec, server: ListenerServer): string {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : spec.port;
  const host = spec.host === '0.0.0.0' || spec.host === '::' ? '127.0.0.1' : spec.host;
  return `${spec.ssl ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
