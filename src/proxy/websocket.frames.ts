import { randomBytes } from 'node:crypto';

/**
 * Where WebSocket frames end in a relayed byte stream (RFC 6455 §5.2), without
 * copying or unmasking anything: only frame headers are read, payloads are
 * skipped by length. The tunnel relays bytes as they come; this tells it when
 * it may insert a frame of its own (a Close on shutdown or idle timeout)
 * without cutting a frame in two. Control frames may sit between the
 * fragments of a message (§5.4), so any frame boundary will do.
 */
export class FrameBoundary {
  private readonly header = Buffer.alloc(14);
  private headerLength = 0;
  /** Header bytes this frame needs: 2 until the second byte says more. */
  private headerNeed = 2;
  private payloadLeft = 0;

  /** True between frames. */
  get atBoundary(): boolean {
    return this.headerLength === 0 && this.payloadLeft === 0;
  }

  /**
   * Reads `chunk` and returns how many of its bytes were consumed: all of
   * them, or with `stopAtBoundary` only up to the end of the first frame that
   * ends inside it (0 when already at a boundary).
   */
  advance(chunk: Buffer, stopAtBoundary = false): number {
    if (stopAtBoundary && this.atBoundary) return 0;
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, length - i);
        i += n;
        this.payloadLeft -= n;
        if (this.payloadLeft === 0 && stopAtBoundary) return i;
        continue;
      }
      this.header[this.headerLength++] = chunk[i++];
      if (this.headerLength === 2) {
        const len7 = this.header[1] & 0x7f;
        this.headerNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.header[1] & 0x80 ? 4 : 0);
      }
      if (this.headerLength >= 2 && this.headerLength === this.headerNeed) {
        const len7 = this.header[1] & 0x7f;
        this.payloadLeft = len7 === 126 ? this.header.readUInt16BE(2) : len7 === 127 ? Number(this.header.readBigUInt64BE(2)) : len7;
        this.headerLength = 0;
        this.headerNeed = 2;
        if (this.payloadLeft === 0 && stopAtBoundary) return i;
      }
    }
    return i;
  }
}

/** Close status 1001 "going away" (RFC 6455 §7.4.1): the gateway is shutting down or the connection sat idle. */
export const CLOSE_GOING_AWAY = 1001;

/** A Close frame as a server sends it: unmasked (§5.1). */
export function serverCloseFrame(code: number): Buffer {
  return Buffer.from([0x88, 0x02, code >> 8, code & 0xff]);
}

/** A Close frame as a client sends it: masked with a fresh key (§5.3), as the gateway is the upstream's client. */
export function clientCloseFrame(code: number): Buffer {
  const mask = randomBytes(4);
  return Buffer.from([0x88, 0x82, mask[0], mask[1], mask[2], mask[3], (code >> 8) ^ mask[0], (code & 0xff) ^ mask[1]]);
}
