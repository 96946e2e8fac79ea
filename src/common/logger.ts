import type { LoggerService } from '@nestjs/common';
import { pino, type Logger } from 'pino';

/**
 * One JSON logger for the process (pino: asynchronous-friendly, cheap when a
 * level is off). Redaction is a second line of defence: code never passes
 * tokens or secrets to the logger in the first place.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['*.authorization', '*.cookie', '*.access_token', '*.id_token', '*.refresh_token', '*.client_secret', '*.session_secret'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ sync: false, minLength: 0 }),
  );
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
