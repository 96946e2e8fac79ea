import type { LoggerService } from '@nestjs/common';
import { write, writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';

/**
 * One JSON logger for the process (pino: asynchronous-friendly, cheap when a
 * level is off). Code never passes tokens, headers or secrets to the logger
 * (tests assert it); pino's wildcard redaction was dropped as a safety net
 * because it tripled the cost of every access-log line (~15 µs vs ~5 µs).
 *
 * Every line starts with `level`, `time` and `name` (pino's field for the
 * application) and ends with `msg`. pino writes the fields of a call after
 * these without looking for duplicates, and a line with a key twice is read
 * differently by different log pipelines (RFC 8259 §4: behaviour is
 * unpredictable), so no call may use these four names; `service` is the Kong
 * service of a request (access log). No `pid`/`hostname`: one process per
 * container, and multi-worker lines carry their own `pid`.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const stdout = destination ? undefined : new LineBatch(1);
  const logger = pino(
    {
      level,
      base: { name: 'gatehouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? (stdout as unknown as pino.DestinationStream),
  );
  if (stdout) buffered.set(logger, stdout);
  return logger;
}

const buffered = new WeakMap<Logger, LineBatch>();

/** Writes out every buffered line, then resolves: the last thing before exit. */
export function closeLogs(logger: Logger): Promise<void> {
  const batch = buffered.get(logger);
  if (!batch) return new Promise((resolve) => logger.flush(() => resolve()));
  buffered.delete(logger);
  return batch.end();
}

/**
 * The process's log lines, encoded as they arrive into reusable 64 KiB
 * buffers and written to a file descriptor (stdout) a buffer at a time with
 * one asynchronous write in flight: a write per line was the largest single
 * cost of the access log under load, and so were sonic-boom's per-write string
 * measurements and buffer merges (≈ 2 µs per access line at 64 KiB batches,
 * `Buffer.byteLength` over its growing concatenation; bench/README.md, "Access
 * log"). No line is kept as a string: strings held until the next write
 * survived young-generation collections whenever a write took a while (a
 * container runtime's stdout pipe), and copying and promoting them cost the
 * gateway more than building them. Buffers are off the V8 heap. Lines
 * gathered while a write is in flight go out in the next one, so lines stay
 * in order. A timer writes what has gathered, so a quiet gateway's lines
 * appear within LOG_FLUSH_INTERVAL_MS; closeLogs writes the rest at shutdown,
 * and a process exiting without it (a crash) writes what it holds
 * synchronously.
 *
 * Sources (the access log) hold lines not yet built; the batch asks them to
 * append theirs before it takes any other line and before it writes, so their
 * lines keep their place among the others.
 *
 * A log reader that stops reading (a full pipe) is waited for, not blocked on:
 * the write is retried and lines gather meanwhile, up to MAX_PENDING_BYTES,
 * past which new lines are dropped and counted, and the count is logged once
 * the reader is back. A descriptor that fails for good (EPIPE, EBADF) ends
 * logging; it never takes the gateway down.
 */
export class LineBatch {
  /** The buffer being filled, and how much of it is. */
  private chunk: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private used = 0;
  /** Filled buffers waiting for the write in flight, oldest first. */
  private queued: QueuedChunk[] = [];
  /** Bytes gathered and not yet handed to a write (queued and being filled). */
  private pendingBytes = 0;
  /** Written buffers kept for reuse: a steady flow of lines allocates nothing. */
  private readonly spare: Buffer[] = [];
  private readonly sources: (() => void)[] = [];
  private writing = false;
  private broken = false;
  private dropped = 0;
  /** `flush(cb)` callers waiting for the write in flight and what gathered behind it. */
  private waiting: ((err?: Error) => void)[] = [];
  /**
   * Writes what has gathered LOG_FLUSH_INTERVAL_MS after the first line of a
   * batch. Armed only while something waits, so an idle gateway never wakes
   * for its log (a steady interval woke every idle process five times a
   * second, which on a shared core is CPU taken from the busy ones).
   */
  private timer: NodeJS.Timeout | undefined;
  private timerArmed = false;

  constructor(private readonly fd: number) {
    process.once('exit', () => this.flushSync());
  }

  /** Something is waiting to be written (a line, or a source's pending records): the timer will write it. */
  schedule(): void {
    if (this.timerArmed || this.broken) return;
    this.timerArmed = true;
    if (this.timer !== undefined) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      // Still armed while draining: the lines the sources append now are written now, not 200 ms later.
      this.drain();
      this.timerArmed = false;
    }, LOG_FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  /** `flush` appends the source's pending lines (with append). */
  addSource(flush: () => void): void {
    this.sources.push(flush);
  }

  /** A line from pino, after whatever the sources hold. */
  write(line: string): boolean {
    this.flushSources();
    this.append(line);
    return true;
  }

  /** Lines, ready to be written, in order after what has gathered. */
  append(text: string): void {
    if (this.broken) return;
    if (this.pendingBytes >= MAX_PENDING_BYTES) {
      this.dropped++;
      return;
    }
    this.encode(text);
    if (this.queued.length !== 0) this.writeNext();
    else this.schedule();
  }

  /** Starts a write of everything gathered, unless one is in flight (the flush timer, end). */
  drain(): void {
    this.flushSources();
    this.writeNext();
  }

  /** pino's `logger.flush(cb)`: calls back once what has gathered so far is written. */
  flush(cb?: (err?: Error) => void): void {
    this.drain();
    if (!cb) return;
    // Nothing in flight after drain() means nothing is left to write.
    if (!this.writing || this.broken) cb();
    else this.waiting.push(cb);
  }

  /** Writes everything, then resolves; later lines are dropped (the process is about to exit). */
  end(): Promise<void> {
    clearTimeout(this.timer);
    // No timer after the end: the flush below writes everything.
    this.timerArmed = true;
    return new Promise((resolve) =>
      this.flush(() => {
        this.broken = true;
        resolve();
      }),
    );
  }

  private flushSources(): void {
    for (let i = 0; i < this.sources.length; i++) this.sources[i]();
  }

  /** Encodes a line into the buffer being filled; a buffer it does not fit in is queued (the caller starts the write). */
  private encode(text: string): void {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8: a line that may not fit starts the next buffer.
    if (CHUNK_BYTES - this.used < text.length * 3) {
      this.queueChunk();
      if (text.length * 3 > CHUNK_BYTES) {
        // Longer than a buffer (a large error line): a buffer of its own.
        const own = Buffer.from(text);
        this.queued.push({ chunk: own, length: own.length });
        this.pendingBytes += own.length;
        return;
      }
    }
    const n = this.chunk.write(text, this.used);
    this.used += n;
    this.pendingBytes += n;
  }

  /** The buffer being filled joins the queue and a spare one takes its place. */
  private queueChunk(): void {
    if (this.used === 0) return;
    this.queued.push({ chunk: this.chunk, length: this.used });
    this.chunk = this.spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.used = 0;
  }

  /** Writes the oldest queued buffer, or the one being filled when nothing is queued; one write at a time. */
  private writeNext(): void {
    if (this.writing || this.broken) return;
    if (this.dropped > 0) {
      const count = this.dropped;
      this.dropped = 0;
      this.encode(droppedLine(count));
    }
    if (this.queued.length === 0) this.queueChunk();
    if (this.queued.length === 0) return;
    const { chunk, length } = this.queued.shift()!;
    this.pendingBytes -= length;
    this.writing = true;
    this.writeBuffer(chunk, 0, length);
  }

  private writeBuffer(chunk: Buffer, offset: number, end: number): void {
    write(this.fd, chunk, offset, end - offset, null, (err, written) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking pipe that is full: the reader will catch up.
          setTimeout(() => this.writeBuffer(chunk, offset, end), 10).unref();
          return;
        }
        this.broken = true;
        this.queued = [];
        this.pendingBytes = 0;
        this.used = 0;
        this.writing = false;
        this.settleWaiting();
        return;
      }
      if (offset + written < end) {
        this.writeBuffer(chunk, offset + written, end);
        return;
      }
      this.writing = false;
      if (chunk.length === CHUNK_BYTES && this.spare.length < SPARE_CHUNKS) this.spare.push(chunk);
      // Whole buffers write at once; a partly filled one waits for the timer, unless someone waits for it.
      if (this.queued.length !== 0 || (this.waiting.length !== 0 && this.used > 0)) this.writeNext();
      else {
        this.settleWaiting();
        // Lines that gathered during the write: the timer takes them (or a buffer filling first).
        if (this.used > 0) this.schedule();
      }
    });
  }

  private settleWaiting(): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const cb of waiting) cb();
  }

  /**
   * At exit: what has gathered, written synchronously. A write still in
   * flight in libuv's thread pool cannot be waited for here; its lines may
   * land after these or not at all (only on an exit that skipped closeLogs).
   */
  private flushSync(): void {
    if (this.broken) return;
    this.flushSources();
    if (this.dropped > 0) this.encode(droppedLine(this.dropped));
    this.queueChunk();
    try {
      for (const { chunk, length } of this.queued) {
        for (let off = 0; off < length; ) off += writeSync(this.fd, chunk, off, length - off);
      }
    } catch {
      // Nowhere left to write.
    }
    this.broken = true;
  }
}

/** A buffer of lines waiting to be written, and how much of it is lines. */
interface QueuedChunk {
  readonly chunk: Buffer;
  readonly length: number;
}

/**
 * The size of a buffer of lines, and of a write. One write per 64 KiB (≈ 200
 * access lines) rather than per 4 KiB: each write is a hop to libuv's thread
 * pool and back.
 */
const CHUNK_BYTES = 65_536;

/** Written buffers kept for the next lines: the one being written, the one filling, one spare. */
const SPARE_CHUNKS = 2;

/** Bytes held while the reader does not read (64 MiB); past it, lines are dropped and counted. */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/** How late a line may be written when logs are quiet; under load a buffer is written whenever it has filled. */
export const LOG_FLUSH_INTERVAL_MS = 200;

function droppedLine(count: number): string {
  return `{"level":"warn","time":"${new Date().toISOString()}","name":"gatehouse","dropped_lines":${count},"msg":"log lines dropped: the log reader did not keep up"}\n`;
}

export const LOGGER = Symbol('LOGGER');

/** Routes Nest's own messages (bootstrap, errors) into the same JSON stream. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
}
