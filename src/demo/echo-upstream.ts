import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenHttp } from './listen.js';

/**
 * The demo's upstream: an httpbin `/anything`-style echo, so a user sees exactly
 * what the gateway forwarded (identity headers, path after strip_path, query,
 * body). Answers every method on every path with JSON:
 * `{ method, path, url, args, headers, body, json?, origin }`.
 */

/** Bodies up to this size are echoed as text; larger ones only by size. */
export const ECHO_BODY_LIMIT = 64 * 1024;

export interface EchoUpstreamOptions {
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Do not keep the process alive (the built-in demo sets this). */
  unref?: boolean;
}

export interface EchoUpstream {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface EchoResponse {
  method: string;
  path: string;
  url: string;
  /** Query parameters; a repeated name becomes an array (httpbin's shape). */
  args: Record<string, string | string[]>;
  headers: IncomingMessage['headers'];
  /** The body as text when it is at most ECHO_BODY_LIMIT bytes, else a note with its size. */
  body: string;
  bytes: number;
  /** The body parsed, when it is JSON. */
  json?: unknown;
  /** The peer address the echo saw (the gateway's, behind a proxy). */
  origin: string;
}

export async function startEchoUpstream(options: EchoUpstreamOptions = {}): Promise<EchoUpstream> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer((req, res) => echo(req, res));
  const port = await listenHttp(server, host, options.port ?? 0, options.unref);
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  let stopped: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}

function echo(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    bytes += c.length;
    if (bytes <= ECHO_BODY_LIMIT) chunks.push(c);
  });
  req.on('error', () => res.destroy());
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://echo.invalid');
    const args: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = args[k];
      args[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const text = bytes <= ECHO_BODY_LIMIT ? Buffer.concat(chunks).toString('utf8') : `[${bytes} bytes, not shown]`;
    const out: EchoResponse = {
      method: req.method ?? 'GET',
      path: url.pathname,
      url: req.url ?? '/',
      args,
      headers: req.headers,
      body: text,
      bytes,
      origin: req.socket.remoteAddress ?? '',
    };
    if (bytes > 0 && bytes <= ECHO_BODY_LIMIT && /\bjson\b/i.test(req.headers['content-type'] ?? '')) {
      try {
        out.json = JSON.parse(text);
      } catch {
        /* not JSON after all: body has the text */
      }
    }
    const body = Buffer.from(JSON.stringify(out, null, 2) + '\n');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}
