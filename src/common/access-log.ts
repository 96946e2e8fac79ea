import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type Logger } from 'pino';
import type { AccessLogConfig } from '../plugins/access-log/access-log.schema.js';
import type { CompiledRoute } from '../proxy/route-table.js';
import { isoNow, jsonString, roundMs } from '../telemetry/json-line.js';
import type { RequestContext } from './request-context.js';

/**
 * One JSON line per proxied request, written when the response is finished or
 * aborted. Only what is needed to trace and measure: never headers, never the
 * query string (it may carry tokens or codes), never bodies. `service` is the
 * Kong service; the logger's own fields (`level`, `time`, `name`, `msg`) are
 * not repeated here (logger.ts).
 *
 * The line is built from a template, the way nginx writes its access log, and
 * appended to the logger's own buffered destination (so it stays in order with
 * every other line and is flushed with them, see closeLogs): the same line
 * through pino's serializer cost 14–20 µs of CPU per request inside a loaded
 * gateway, this ≈ 1–3 µs (bench/README.md). It is byte for byte the line pino
 * would write for the same fields (test/unit/access-log.test.ts checks it).
 * Every string from the request goes through jsonString; numbers and the
 * gateway's own constant fragments do not need to.
 */
export class AccessLog {
  /** The logger's level is fixed at start-up: below info there is no access log and no listener at all. */
  private readonly enabled: boolean;
  private readonly destination: { write(line: string): unknown };
  /** `,"name":"gatehouse"` and any other bindings of the logger, already serialized by pino. */
  private readonly bindings: string;
  /** Per route: the `route`/`service` fields, serialized once, and the route's sampling. */
  private readonly routes = new Map<CompiledRoute, RouteLogPolicy>();
  /** One listener shared by every response (no closure per request); `this` is the response. */
  private readonly onClose: (this: ServerResponse) => void;

  constructor(logger: Logger) {
    this.enabled = logger.isLevelEnabled('info');
    this.destination = (logger as unknown as Record<symbol, { write(line: string): unknown }>)[pino.symbols.streamSym];
    this.bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '';
    const log = this;
    this.onClose = function (this: ServerResponse) {
      const req = this.req;
      const ctx = req.gatehouse;
      if (ctx) log.write(req, this, ctx);
    };
  }

  track(_req: IncomingMessage, res: ServerResponse, _ctx: RequestContext): void {
    if (this.enabled) res.on('close', this.onClose);
  }

  /** Builds and writes the line (also called directly by tests). */
  write(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const route = ctx.match?.route;
    const policy = route === undefined ? UNROUTED : (this.routes.get(route) ?? this.policyFor(route));
    const status = res.statusCode;
    const aborted = !res.writableFinished;
    if (policy.sampleRate < 1 && !(policy.alwaysLogErrors && (status >= 400 || aborted)) && !(Math.random() < policy.sampleRate)) return;

    let line = `{"level":"info","time":"${isoNow()}"${this.bindings},"request_id":${jsonString(ctx.requestId)},"method":${jsonString(req.method!)},"path":${jsonString(ctx.path || pathOf(req.url!))}${policy.fields},"status":${status}`;
    if (aborted) line += ',"aborted":true';
    if (ctx.caller !== undefined) line += `,"caller":${jsonString(ctx.caller)}`;
    if (ctx.denial !== undefined) line += `,"reason":${jsonString(ctx.denial)}`;
    const ip = req.socket.remoteAddress;
    if (ip !== undefined) line += `,"client_ip":${jsonString(ip)}`;
    if (ctx.traceId !== undefined) line += `,"trace_id":"${ctx.traceId}"`;
    if (ctx.upstreamLatencyMs !== undefined) line += `,"upstream_latency_ms":${roundMs(ctx.upstreamLatencyMs)}`;
    line += `,"latency_ms":${roundMs(performance.now() - ctx.startedAt)},"msg":"request"}\n`;
    try {
      this.destination.write(line);
    } catch {
      // The destination is closed (a response finishing after closeLogs at exit): nowhere to write.
    }
  }

  private policyFor(route: CompiledRoute): RouteLogPolicy {
    const config = (route.plugins as { 'access-log'?: AccessLogConfig })['access-log'];
    const policy: RouteLogPolicy = {
      fields: `,"route":${jsonString(route.name)},"service":${jsonString(route.service.name)}`,
      sampleRate: config?.sample_rate ?? 1,
      alwaysLogErrors: config?.always_log_errors ?? true,
    };
    this.routes.set(route, policy);
    return policy;
  }
}

interface RouteLogPolicy {
  /** `,"route":…,"service":…`, or nothing for a request no route matched. */
  readonly fields: string;
  readonly sampleRate: number;
  readonly alwaysLogErrors: boolean;
}

const UNROUTED: RouteLogPolicy = { fields: '', sampleRate: 1, alwaysLogErrors: true };

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
