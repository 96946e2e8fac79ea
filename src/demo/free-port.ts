import { createServer } from 'node:net';

/**
 * A port that was free a moment ago on `host`, for when a URL must be known
 * before its server starts (a redirect URI, nginx's config). Another process
 * may take it in between; callers fail loudly (EADDRINUSE) rather than guess.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
