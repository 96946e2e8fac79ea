import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The benchmark's upstream, run as its own process (pinned by the runner):
 *
 * - any GET: a 123-byte JSON body (the "small API response");
 * - GET /64k…: a 64 KiB body;
 * - GET /stream?bytes=N: N bytes, written with backpressure (for the 1 GiB run);
 * - POST/PUT: reads and discards the body, answers the small JSON.
 *
 * Prints one JSON line `{"port":N}` when listening.
 */

export const SMALL_BODY = Buffer.from(
  JSON.stringify({ ok: true, service: 'bench-upstream', message: 'hello from the upstream', padding: 'x'.repeat(36) }),
);
export const BIG_BODY = Buffer.alloc(64 * 1024, 'a');
const CHUNK = Buffer.alloc(64 * 1024, 'b');

const smallHeaders = { 'content-type': 'application/json', 'content-length': String(SMALL_BODY.length) };
const bigHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BODY.length) };

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'POST' || req.method === 'PUT') {
    req.on('data', () => {});
    req.on('end', () => {
      res.writeHead(200, smallHeaders);
      res.end(SMALL_BODY);
    });
    return;
  }
  if (url.includes('/64k')) {
    res.writeHead(200, bigHeaders);
    res.end(BIG_BODY);
    return;
  }
  const stream = /\/stream\?bytes=(\d+)/.exec(url);
  if (stream) {
    let left = Number(stream[1]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
    const pump = () => {
      while (left > 0) {
        const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
    return;
  }
  res.writeHead(200, smallHeaders);
  res.end(SMALL_BODY);
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
