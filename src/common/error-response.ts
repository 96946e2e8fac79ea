import { HttpException } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { GatewayError } from './gateway.error.js';

/**
 * The one mapping from an error to a response. Gateway errors carry their
 * status, Kong-worded message and challenge headers; Nest's HttpExceptions
 * (terminus' 503) keep their body; anything else is a bug and becomes a logged
 * 500 without detail. A response already streaming cannot change its status, so
 * it is aborted instead of ended cleanly. Used by the proxy handler directly and
 * by the Nest exception filter.
 */
export function writeErrorResponse(req: IncomingMessage | undefined, res: ServerResponse, exception: unknown, logger: Logger): void {
  const ctx = req?.gatehouse;
  let status: number;
  let body: Record<string, unknown>;
  let headers: Record<string, string> | undefined;
  if (exception instanceof GatewayError) {
    status = exception.status;
    body = { message: exception.publicMessage, ...exception.body };
    // Kong's display_errors: the route's operator chose to tell clients why they were refused.
    if (status < 500 && ctx?.match?.route.auth?.config.display_errors) body.error_description = exception.message;
    headers = exception.headers;
    if (ctx) ctx.denial ??= exception.message;
    if (status >= 500) {
      logger.warn({ request_id: ctx?.requestId, status, reason: exception.message, err: exception.cause instanceof Error ? exception.cause.message : undefined }, 'request failed');
    }
  } else if (exception instanceof HttpException) {
    status = exception.getStatus();
    const response = exception.getResponse();
    body = typeof response === 'string' ? { message: response } : (response as Record<string, unknown>);
  } else {
    status = 500;
    body = { message: 'An unexpected error occurred' };
    logger.error({ request_id: ctx?.requestId, err: exception instanceof Error ? { message: exception.message, stack: exception.stack } : String(exception) }, 'unexpected error');
  }

  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const payload = JSON.stringify(body);
  let decided = ctx?.responseHeaders;
  // A 401 says the caller is not authenticated: it never carries a new session, only deletions of old ones.
  if (status === 401 && decided?.['set-cookie']) decided = { ...decided, 'set-cookie': [decided['set-cookie']].flat().filter((c) => /;\s*Max-Age=0(;|$)/i.test(c)) };
  res.writeHead(status, {
    // Headers the gateway decided on before the error (e.g. deleting a dead session cookie) still apply.
    ...decided,
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...(ctx ? { 'x-request-id': ctx.requestId } : {}),
  });
  res.end(req?.method === 'HEAD' ? undefined : payload);
}
