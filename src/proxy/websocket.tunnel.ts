import type { Socket } from 'node:net';
import { CLOSE_GOING_AWAY, FrameBoundary, clientCloseFrame, serverCloseFrame } from './websocket.frames.js';

/** How long a side told to go away may take to close its end before its socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;

export interface TunnelStats {
  /** Bytes relayed client → upstream and upstream → client. */
  bytesUp: number;
  bytesDown: number;
  /** Who ended it: `client`, `upstream`, `idle`, `shutdown`, or an error code. */
  closedBy?: string;
}

/**
 * The two halves of an upgraded connection, relayed byte for byte. Frames are
 * not decoded (extensions such as permessage-deflate pass through untouched);
 * a FrameBoundary per direction only tracks where frames end.
 *
 * - Backpressure: a side whose peer's socket buffer is full is paused until
 *   it drains, so a fast sender cannot make the gateway buffer its flood.
 * - Clean close: an end (FIN) from one side ends the other once its pending
 *   bytes are written; an error on either destroys both.
 * - Idle timeout: no byte either way for `idleMs` (the service's
 *   read_timeout, as Kong's proxy_read_timeout) closes both with 1001.
 * - `goAway()` (shutdown): both sides get a Close frame 1001 at the next frame
 *   boundary of their direction, then the end of the stream.
 */
export class WebSocketTunnel {
  readonly stats: TunnelStats = { bytesUp: 0, bytesDown: 0 };
  readonly closed: Promise<void>;
  private goingAway = false;
  private readonly up = new FrameBoundary();
  private readonly down = new FrameBoundary();
  /** Directions (client→upstream, upstream→client) still relaying while going away. */
  private upOpen = true;
  private downOpen = true;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    idleMs: number,
  ) {
    let resolveClosed!: () => void;
    this.closed = new Promise((r) => (resolveClosed = r));
    let open = 2;
    const onClose = () => {
      if (--open === 0) resolveClosed();
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.relay(client, upstream, true);
    this.relay(upstream, client, false);
    client.setTimeout(idleMs, () => this.idle());
    upstream.setTimeout(idleMs, () => this.idle());
    const fail = (side: string) => (err: NodeJS.ErrnoException) => {
      this.stats.closedBy ??= `${side} ${err.code ?? err.message}`;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail('client'));
    upstream.on('error', fail('upstream'));
  }

  private relay(from: Socket, to: Socket, upward: boolean): void {
    const frames = upward ? this.up : this.down;
    from.on('data', (chunk: Buffer) => {
      if (upward ? !this.upOpen : !this.downOpen) return; // told to go away: the rest is dropped
      if (this.goingAway) {
        const n = frames.advance(chunk, true);
        if (n > 0) to.write(n === chunk.length ? chunk : chunk.subarray(0, n));
        if (frames.atBoundary) this.closeDirection(upward);
        return;
      }
      frames.advance(chunk);
      if (upward) this.stats.bytesUp += chunk.length;
      else this.stats.bytesDown += chunk.length;
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => from.resume());
    from.once('end', () => {
      this.stats.closedBy ??= upward ? 'client' : 'upstream';
      to.end();
    });
    // A side closed without FIN (reset, destroyed): the other side goes too, after what was already written.
    from.once('close', () => {
      if (!to.destroyed) to.end();
      setTimeout(() => to.destroy(), CLOSE_GRACE_MS).unref();
    });
  }

  /** The direction toward `upward ? upstream : client` gets its Close frame and its end. */
  private closeDirection(upward: boolean): void {
    if (upward ? !this.upOpen : !this.downOpen) return;
    if (upward) this.upOpen = false;
    else this.downOpen = false;
    const to = upward ? this.upstream : this.client;
    if (to.writable) to.end(upward ? clientCloseFrame(CLOSE_GOING_AWAY) : serverCloseFrame(CLOSE_GOING_AWAY));
    setTimeout(() => to.destroy(), CLOSE_GRACE_MS).unref();
  }

  private idle(): void {
    this.stats.closedBy ??= 'idle';
    this.goAway();
  }

  /** Close 1001 to both sides at their next frame boundary; resolves when both sockets have closed. */
  goAway(): Promise<void> {
    if (!this.goingAway) {
      this.stats.closedBy ??= 'shutdown';
      this.goingAway = true;
      // Paused sides must flow again to reach their boundary (or be dropped).
      this.client.resume();
      this.upstream.resume();
      if (this.up.atBoundary) this.closeDirection(true);
      if (this.down.atBoundary) this.closeDirection(false);
      // A frame that never completes must not hold the shutdown; a Close cannot be put inside it, so that side is cut.
      setTimeout(() => {
        if (this.upOpen) this.upstream.destroy();
        if (this.downOpen) this.client.destroy();
      }, CLOSE_GRACE_MS).unref();
    }
    return this.closed;
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }
}
