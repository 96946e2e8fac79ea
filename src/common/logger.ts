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
  const stdout = destination ? undefined : bufferedStdout();
  const logger = pino(
    {
      level,
      base: { name: 'gatehouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? stdout!,
  );
  if (stdout) buffered.set(logger, stdout);
  return logger;
}

const buffered = new WeakMap<Logger, ReturnType<typeof pino.destination>>();

/**
 * Writes out every buffered line, then resolves: the last thing before exit.
 * Not `logger.flush(cb)`: with a write already in progress, sonic-boom calls
 * back once that write is done even when lines below its batch size are still
 * buffered (pino's exit hook then writes them synchronously, possibly ahead of
 * the write in flight). Ending the stream writes everything, in order (stdout
 * itself stays open).
 */
export function closeLogs(logger: Logger): Promise<void> {
  const stdout = buffered.get(logger);
  if (!stdout) return new Promise((resolve) => logger.flush(() => resolve()));
  buffered.delete(logger);
  return new Promise((resolve) => {
    stdout.once('close', () => resolve());
    stdout.once('error', () => resolve());
    stdout.end();
  });
}

/** Written at least this often when logs are quiet; under load, whenever 4 KiB have gathered. */
export const LOG_FLUSH_INTERVAL_MS = 200;

/**
 * stdout with writes gathered into 4 KiB batches: one write syscall per line
 * was the largest single cost of the access log under load. A timer flushes
 * what has gathered, so a quiet gateway's lines still appear within
 * LOG_FLUSH_INTERVAL_MS; shutdown flushes the rest (main.ts).
 */
function bufferedStdout(): ReturnType<typeof pino.destination> {
  const dest = pino.destination({ sync: false, minLength: 4096 });
  const timer = setInterval(() => {
    try {
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
