import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { writeErrorResponse } from '../common/error-response.js';
import { GatewayError } from '../common/gateway.error.js';
import { AdminApiError, storeWriteError } from './admin.errors.js';

/** Every path the Admin API serves, for telling a wrong method (405) from a wrong path (404). */
const ADMIN_PATHS = [
  /^\/$/,
  /^\/status\/?$/,
  /^\/config\/?$/,
  /^\/(services|routes|plugins)\/?$/,
  /^\/(services|routes|plugins)\/[^/]+\/?$/,
  /^\/services\/[^/]+\/(routes|plugins)\/?$/,
  /^\/routes\/[^/]+\/plugins\/?$/,
  /^\/schemas\/plugins\/[^/]+\/?$/,
];

/**
 * The admin application's one exception filter: Kong's error bodies.
 * AdminApiError carries Kong's shape; authentication errors (401/403 with their
 * RFC 6750 challenge) go through the gateway's one error mapping; Nest's own
 * "no such route" becomes Kong's 404 or 405; a body that cannot be read, Kong's
 * 400/415. Anything else is a bug: a logged 500 without detail.
 */
@Catch()
export class AdminExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    if (exception instanceof GatewayError) {
      if (typeof reply.hijack === 'function' && !reply.sent) reply.hijack();
      writeErrorResponse(request.raw, reply.raw, exception, this.logger);
      return;
    }
    const [status, body] = adminErrorBody(exception, request.method, request.url, this.logger);
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(JSON.stringify(body));
  }
}

export function adminErrorBody(exception: unknown, method: string, url: string, logger: Logger): [number, Record<string, unknown>] {
  if (exception instanceof AdminApiError) return [exception.status, exception.body];
  const store = storeWriteError(exception);
  if (store) {
    logger.warn({ method, url: url.split('?')[0], err: exception instanceof Error ? exception.message : String(exception), status: store.status }, 'admin API: the config store refused the write');
    return [store.status, store.body];
  }
  const code = (exception as { code?: string }).code;
  const status = exception instanceof HttpException ? exception.getStatus() : (exception as { statusCode?: number }).statusCode;
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || status === 415) return [415, { message: 'Unsupported Media Type' }];
  const message = exception instanceof Error ? exception.message : '';
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (status === 400 && (exception instanceof SyntaxError || /JSON/.test(message)))) {
    return [400, { message: 'Cannot parse JSON body' }];
  }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) return [413, { message: 'Request body too large' }];
  if (status === 404) {
    const path = url.split('?')[0];
    return ADMIN_PATHS.some((p) => p.test(path)) && method !== 'GET' ? [405, { message: 'Method not allowed' }] : [404, { message: 'Not found' }];
  }
  if (status && status >= 400 && status < 500) return [status, { message: exception instanceof Error ? exception.message : 'Bad request' }];
  logger.error({ err: exception instanceof Error ? { message: exception.message, stack: exception.stack } : String(exception) }, 'admin API: unexpected error');
  return [500, { message: 'An unexpected error occurred' }];
}
