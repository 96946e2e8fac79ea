import { WebSocket } from 'ws';

/**
 * WebSocket echo load: `node ws-load.js URL CONNECTIONS IN_FLIGHT BYTES SECONDS`. Each connection
 * keeps IN_FLIGHT binary messages of BYTES outstanding and sends one more per echo received.
 * Prints `{"messages":N,"seconds":S}` (echoes received after a 1 s warm-up).
 */
const [url, conns, inFlight, bytes, seconds] = [process.argv[2], ...process.argv.slice(3).map(Number)];
const payload = Buffer.alloc(bytes, 'w');
let counting = false;
let messages = 0;
const sockets: WebSocket[] = [];
await Promise.all(
  Array.from({ length: conns }, () =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      sockets.push(ws);
      ws.on('open', () => {
        for (let i = 0; i < inFlight; i++) ws.send(payload);
        resolve();
      });
      ws.on('message', () => {
        if (counting) messages++;
        ws.send(payload);
      });
      ws.on('error', reject);
    }),
  ),
);
await new Promise((r) => setTimeout(r, 1_000));
counting = true;
const started = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1_000));
counting = false;
process.stdout.write(`${JSON.stringify({ messages, seconds: (performance.now() - started) / 1000 })}\n`);
for (const ws of sockets) ws.terminate();
process.exit(0);
