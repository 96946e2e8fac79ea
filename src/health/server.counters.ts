import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Kong's `server` section of `GET /status` (nginx's stub_status counters), for one process. */
export interface ServerCountersSnapshot {
  total_requests: number;
  connections_active: number;
  connections_reading: number;
  connections_writing: number;
  connections_waiting: number;
  connections_accepted: number;
  connections_handled: number;
}

/**
 * Connection and request counters of the proxy listener, kept so that the hot
 * path pays one integer increment per request and nothing else: connection
 * states are not tracked per request but derived when `GET /status` asks, by
 * looking at each open socket once (the socket's current response is what
 * Node's own http server keeps on it while a request is in progress).
 *
 * - accepted: every TCP connection the listener took, including those Node dropped
 *   at `maxConnections`; handled: those it served (as nginx's accepts/handled).
 * - reading: a request whose body is still arriving; writing: a request fully
 *   received whose response is in progress (upstream wait included, as nginx);
 *   waiting: the rest of the open connections — idle keep-alive, and new
 *   connections whose request headers have not completed (Node's parser does not
 *   expose that phase, which nginx counts as reading).
 */
export class ServerCounters {
  private accepted = 0;
  private handled = 0;
  private requests = 0;
  private readonly sockets = new Set<Socket>();

  attach(server: Server): void {
    server.on('connection', (socket: Socket) => {
      this.accepted++;
      this.handled++;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('drop', () => this.accepted++);
  }

  /** Wraps the listener's request handler: one increment per request, no allocation. */
  counting(handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      this.requests++;
      handler(req, res);
    };
  }

  snapshot(): ServerCountersSnapshot {
    let reading = 0;
    let writing = 0;
    for (const socket of this.sockets) {
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (!res) continue;
      if (res.req && !res.req.complete) reading++;
      else writing++;
    }
    return {
      total_requests: this.requests,
      connections_active: this.sockets.size,
      connections_reading: reading,
      connections_writing: writing,
      connections_waiting: this.sockets.size - reading - writing,
      connections_accepted: this.accepted,
      connections_handled: this.handled,
    };
  }
}
