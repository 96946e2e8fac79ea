import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RequestContext } from './request-context.js';

/**
 * One JSON line per proxied request, written when the response is finished or
 * aborted. Only what is needed to trace and measure: never headers, never the
 * query string (it may carry tokens or codes), never bodies. `service` is the
 * Kong service; the logger's own fields (`level`, `time`, `name`, `msg`) are
 * not repeated here (logger.ts).
 */
export class AccessLog {
  constructor(private readonly logger: Logger) {}

  track(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    // Below info level there is no access log: no listener, no object, nothing per request.
    if (!this.logger.isLevelEnabled('info')) return;
    res.once('close', () => {
      const route = ctx.match?.route;
      this.logger.info(
        {
          request_id: ctx.requestId,
          method: req.method,
          path: ctx.path || req.url!.split('?', 1)[0],
          route: route?.name,
          service: route?.service.name,
          status: res.statusCode,
          aborted: !res.writableFinished || undefined,
          caller: ctx.caller,
          reason: ctx.denial,
          client_ip: req.socket.remoteAddress,
          upstream_latency_ms: ctx.upstreamLatencyMs === undefined ? undefined : round(ctx.upstreamLatencyMs),
          latency_ms: round(performance.now() - ctx.startedAt),
        },
        'request',
      );
    });
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
