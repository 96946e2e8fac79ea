import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

/**
 * The runtime's floor for a reverse proxy: node:http in front, one keep-alive
 * undici Pool behind, bodies streamed both ways with `Pool.stream()` (the
 * fastest variant measured in ../shared/PERFORMANCE.md). No routing, no
 * plugins, no logging — whatever Gatehouse costs on top of this is its own.
 *
 * Usage: node bare-proxy.js http://127.0.0.1:UPSTREAM_PORT — prints {"port":N}.
 */

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function forwardable(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

const upstream = new URL(process.argv[2] ?? 'http://127.0.0.1:8080');
const pool = new Pool(upstream.origin, { keepAliveTimeout: 4_000 });

const server = createServer((req, res) => {
  const headers = forwardable(req.headers);
  headers.host = upstream.host;
  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  pool.stream(
    { path: req.url!, method: req.method as 'GET', headers, body: hasBody ? req : null, opaque: res },
    ({ statusCode, headers: upstreamHeaders, opaque }) => {
      const out = opaque as typeof res;
      out.writeHead(statusCode, forwardable(upstreamHeaders));
      return out;
    },
    (err) => {
      if (!err) return;
      if (res.headersSent) res.destroy(err);
      else {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"message":"Bad gateway"}');
      }
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
