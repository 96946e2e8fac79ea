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
 * The process's log lines, gathered and written to a file descriptor (stdout)
 * in batches of BATCH_CHARS with one asynchronous write in flight at a time:
 * a write per line was the largest single cost of the access log under load,
 * and so were sonic-boom's per-write string measurements and buffer merges
 * (≈ 2 µs per access line at 64 KiB batches, `Buffer.byteLength` over its
 * growing concatenation; bench/README.md, "Access log"). Lines gathered while
 * a write is in flight go out in the next one, so lines stay in order. A timer
 * writes what has gathered, so a quiet gateway's lines appear within
 * LOG_FLUSH_INTERVAL_MS; closeLogs writes the rest at shutdown, and a process
 * exiting without it (a crash) writes what it holds synchronously.
 *
 * Sources (the access log) hold lines not yet built; the batch asks them to
 * append theirs before it takes any other line and before it writes, so their
 * lines keep their place among the others.
 *
 * A log reader that stops reading (a full pipe) is waited for, not blocked on:
 * the write is retried and lines gather meanwhile, up to MAX_PENDING_CHARS,
 * past which new lines are dropped and counted, and the count is logged once
 * the reader is back. A descriptor that fails for good (EPIPE, EBADF) ends
 * logging; it never takes the gateway down.
 */
export class LineBatch {
  private parts: string[] = [];
  private size = 0;
  private readonly sources: (() => void)[] = [];
  private writing = false;
  private broken = false;
  private dropped = 0;
  /** `flush(cb)` callers waiting for the write in flight and what gathered behind it. */
  private waiting: ((err?: Error) => void)[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly fd: number) {
    this.timer = setInterval(() => this.drain(), LOG_FLUSH_INTERVAL_MS);
    this.timer.unref();
    process.once('exit', () => this.flushSync());
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
    if (this.size >= MAX_PENDING_CHARS) {
      this.dropped++;
      return;
    }
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= BATCH_CHARS) this.writeParts();
  }

  /** Starts a write of everything gathered, unless one is in flight (the flush timer, end). */
  drain(): void {
    this.flushSources();
    this.writeParts();
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
    clearInterval(this.timer);
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

  private takeParts(): Buffer {
    if (this.dropped > 0) {
      this.parts.push(droppedLine(this.dropped));
      this.dropped = 0;
    }
    const text = this.parts.length === 1 ? this.parts[0] : this.parts.join('');
    this.parts = [];
    this.size = 0;
    return Buffer.from(text);
  }

  private writeParts(): void {
    if (this.writing || this.size === 0 || this.broken) return;
    this.writing = true;
    this.writeBuffer(this.takeParts());
  }

  private writeBuffer(buf: Buffer): void {
    write(this.fd, buf, 0, buf.length, null, (err, written) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking pipe that is full: the reader will catch up.
          setTimeout(() => this.writeBuffer(buf), 10).unref();
          return;
        }
        this.broken = true;
        this.parts = [];
        this.size = 0;
        this.writing = false;
        this.settleWaiting();
        return;
      }
      if (written < buf.length) {
        this.writeBuffer(buf.subarray(written));
        return;
      }
      this.writing = false;
      if (this.size >= BATCH_CHARS || (this.waiting.length !== 0 && this.size > 0)) this.writeParts();
      else this.settleWaiting();
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
    if (this.size === 0) return;
    const buf = this.takeParts();
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off);
    } catch {
      // Nowhere left to write.
    }
  }
}

/**
 * Characters gathered before a write. One write per 64 KiB (≈ 200 access
 * lines) rather than per 4 KiB: each write is a hop to libuv's thread pool and
 * back.
 */
const BATCH_CHARS = 65_536;

/** Lines held while the reader does not read (≈ 64 MiB); past it, lines are dropped and counted. */
const MAX_PENDING_CHARS = 64 * 1024 * 1024;

/** Written at least this often when logs are quiet; under load, whenever BATCH_CHARS have gathered. */
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
