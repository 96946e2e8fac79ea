import { type ArgumentsHost, Catch, type ExceptionFilter, Inject } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { writeErrorResponse } from './error-response.js';
import { LOGGER } from './logger.js';

/** Nest's side of the one error mapping (writeErrorResponse), for the status listener's handlers. */
@Catch()
export class GatewayExceptionFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const res: ServerResponse = reply.raw ?? (reply as unknown as ServerResponse);
    // Written on the raw response, so Fastify must not send one too.
    if (typeof reply.hijack === 'function' && !reply.sent) reply.hijack();
    writeErrorResponse(request.raw, res, exception, this.logger);
  }
}
