import { connect } from 'node:net';

export { freePort } from '../../src/demo/free-port.js';

/** How a fresh TCP connection to `url`'s host and port fares: 'connected', or the error code (ECONNREFUSED …). */
export function tryConnect(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}
