import type { LoggerService } from '@nestjs/common';
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
  let stdout: LineBatch | undefined;
  if (!destination) {
    const dest = bufferedStdout();
    stdout = new LineBatch(dest);
    batches.set(dest, stdout);
  }
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

/**
 * Writes out every buffered line, then resolves: the last thing before exit.
 * Not `logger.flush(cb)`: with a write already in progress, sonic-boom calls
 * back once that write is done even when lines below its batch size are still
 * buffered (pino's exit hook then writes them synchronously, possibly ahead of
 * the write in flight). Ending the stream writes everything, in order (stdout
 * itself stays open).
 */
export function closeLogs(logger: Logger): Promise<void> {
  const batch = buffered.get(logger);
  if (!batch) return new Promise((resolve) => logger.flush(() => resolve()));
  buffered.delete(logger);
  batch.drain();
  const stdout = batch.destination;
  return new Promise((resolve) => {
    stdout.once('close', () => resolve());
    stdout.once('error', () => resolve());
    stdout.end();
  });
}

/**
 * Lines gathered in an array and handed to sonic-boom one batch at a time.
 * sonic-boom's `write()` measures the UTF-8 length of the whole string it is
 * appending to on every call (`Buffer.byteLength(bufs[last])`), which flattens
 * a growing concatenation: with 4 KiB batches that was ≈ 4 µs of CPU per
 * access line, eight times the cost of building the line, and worse with
 * bigger batches (measured: 4.8 µs/line at 4 KiB, 10.8 µs at 64 KiB). Joined
 * here first, sonic-boom sees one write per ~4 KiB. Every logger line goes
 * through this one batch, so lines stay in order.
 */
export class LineBatch {
  private parts: string[] = [];
  private size = 0;

  constructor(readonly destination: ReturnType<typeof pino.destination>) {
    // A process that exits without closeLogs (a crash) still writes what was gathered; sonic-boom's own
    // exit hook may already have run, so this flushes it once more.
    process.once('exit', () => {
      this.drain();
      try {
        destination.flushSync();
      } catch {
        // Closed already, or a write in progress that the exit cannot wait for.
      }
    });
  }

  write(line: string): boolean {
    this.parts.push(line);
    this.size += line.length;
    if (this.size >= BATCH_CHARS) this.drain();
    return true;
  }

  /** Hands what has gathered to the destination (the flush timer, closeLogs, exit). */
  drain(): void {
    if (this.size === 0) return;
    const text = this.parts.length === 1 ? this.parts[0] : this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!(this.destination as unknown as { destroyed: boolean }).destroyed) this.destination.write(text);
  }

  flush(cb?: (err?: Error) => void): void {
    this.drain();
    this.destination.flush(cb);
  }
}

/** Characters gathered before a batch goes to sonic-boom: its own write size (minLength below). */
const BATCH_CHARS = 4096;

/** Written at least this often when logs are quiet; under load, whenever 4 KiB have gathered. */
export const LOG_FLUSH_INTERVAL_MS = 200;

/**
 * stdout with writes gathered into 4 KiB batches: one write syscall per line
 * was the largest single cost of the access log under load. A timer flushes
 * what has gathered, so a quiet gateway's lines still appear within
 * LOG_FLUSH_INTERVAL_MS; shutdown flushes the rest (main.ts).
 */
const batches = new WeakMap<object, LineBatch>();

function bufferedStdout(): ReturnType<typeof pino.destination> {
  const dest = pino.destination({ sync: false, minLength: 4096 });
  const timer = setInterval(() => {
    try {
      const batch = batches.get(dest);
      if (batch) batch.drain();
      dest.flush();
    } catch {
      // flush() throws while a previous write is still in progress; the next tick catches up.
    }
  }, LOG_FLUSH_INTERVAL_MS);
  timer.unref();
  return dest;
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
