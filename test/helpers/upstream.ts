import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Upstream {
  url: string;
  port: number;
  server: Server;
  /** Requests received so far (method, url, headers, body size). */
  requests: { method: string; url: string; headers: IncomingMessage['headers']; bytes: number }[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on a free loopback port. The default handler echoes the
 * request as JSON (method, url, headers, body byte count), like httpbin's /anything.
 */
export async function startUpstream(handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const requests: Upstream['requests'] = [];
  const server = createServer((req, res) => {
    if (handler) return handler(req, res);
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, bytes });
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * An upstream that answers `/quick` at once and holds every other request until
 * `release(body)`: "a request in flight during shutdown or draining" becomes a
 * fact the test controls rather than a race.
 */
export async function startHoldingUpstream() {
  const held: ServerResponse[] = [];
  let arrived: (() => void) | undefined;
  const upstream = await startUpstream((req, res) => {
    req.resume();
    if (req.url === '/quick') return void res.end('quick');
    held.push(res);
    arrived?.();
  });
  return {
    upstream,
    nextArrival: () => new Promise<void>((r) => (arrived = r)),
    release: (body = 'released') => {
      for (const res of held.splice(0)) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }
    },
  };
}
