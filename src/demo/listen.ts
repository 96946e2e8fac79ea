import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Starts `server` listening on `host`:`port` (0 picks a free port) and resolves
 * with the bound port, or rejects with the listen error (EADDRINUSE …). With
 * `unref`, neither the server nor its connections keep the process alive: the
 * gateway decides when the process ends.
 */
export async function listenHttp(server: Server, host: string, port: number, unref = false): Promise<number> {
  server.keepAliveTimeout = 5_000;
  if (unref) {
    server.unref();
    server.on('connection', (socket) => socket.unref());
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
