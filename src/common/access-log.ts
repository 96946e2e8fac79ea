import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type Logger } from 'pino';
import type { AccessLogConfig } from '../plugins/access-log/access-log.schema.js';
import type { CompiledRoute } from '../proxy/route-table.js';
import { isoNow, jsonString, roundMs } from '../telemetry/json-line.js';
import { LineBatch } from './logger.js';
import type { RequestContext } from './request-context.js';

/**
 * One JSON line per proxied request, written when the response is finished or
 * aborted. Only what is needed to trace and measure: never headers, never the
 * query string (it may carry tokens or codes), never bodies. `service` is the
 * Kong service; the logger's own fields (`level`, `time`, `name`, `msg`) are
 * not repeated here (logger.ts).
 *
 * The line is built from a template, the way nginx writes its access log, and
 * is byte for byte the line pino would write for the same fields
 * (test/unit/access-log.test.ts checks it). Every string from the request goes
 * through jsonString; numbers and the gateway's own constant fragments do not
 * need to.
 *
 * With the process logger (a LineBatch destination) the line is not built when
 * the response closes: the close handler copies the dozen values into an
 * AccessRecord, and the lines of up to PENDING_RECORDS records are built in one
 * loop and appended to the batch together. Built one at a time, between the
 * parsing and forwarding of other requests, the same line cost ≈ 3.4 µs of CPU
 * inside a loaded gateway against ≈ 0.5 µs in a tight loop (bench/README.md,
 * "Access log"): the difference is cold code and data, which the loop avoids.
 * The batch formats pending records before any other line it is given and
 * before every write, so lines stay in order and nothing is lost at exit.
 */
export class AccessLog {
  /** The logger's level is fixed at start-up: below info there is no access log, and the proxy registers no listener for it. */
  readonly enabled: boolean;
  private readonly destination: { write(line: string): unknown };
  /** The process logger's batch, when that is the destination: records wait there to be formatted together. */
  private readonly batch: LineBatch | undefined;
  private pending: AccessRecord[] = [];
  /** `,"name":"gatehouse"` and any other bindings of the logger, already serialized by pino. */
  private readonly bindings: string;
  /** Per route: the `route`/`service` fields, serialized once, and the route's sampling. */
  private readonly routes = new Map<CompiledRoute, RouteLogPolicy>();
  constructor(logger: Logger) {
    this.enabled = logger.isLevelEnabled('info');
    this.destination = (logger as unknown as Record<symbol, { write(line: string): unknown }>)[pino.symbols.streamSym];
    this.bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '';
    this.batch = this.enabled && this.destination instanceof LineBatch ? this.destination : undefined;
    this.batch?.addSource(() => this.flush());
  }

  /** The exchange as it ended (the response closed): written now, or, with the process logger, queued for the next batch. */
  record(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const record = this.capture(req, res, ctx);
    if (record === undefined) return;
    if (this.batch === undefined) {
      this.writeLines(this.lineOf(record));
      return;
    }
    this.pending.push(record);
    // The first record since the last flush: the batch's timer formats it if no other line or record does sooner.
    if (this.pending.length === 1) this.batch.schedule();
    else if (this.pending.length >= PENDING_RECORDS) this.flush();
  }

  /** The lines of every pending record, appended to the batch in order (the batch calls this before it writes). */
  flush(): void {
    const records = this.pending;
    if (records.length === 0) return;
    this.pending = [];
    // Each line is encoded into the batch's buffer as soon as it is built, so no line string outlives the loop.
    for (let i = 0; i < records.length; i++) this.batch!.append(this.lineOf(records[i]));
  }

  /** What the line needs, read while the request and response still say it; undefined when sampling skips it. */
  private capture(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): AccessRecord | undefined {
    const route = ctx.match?.route;
    const policy = route === undefined ? UNROUTED : (this.routes.get(route) ?? this.policyFor(route));
    const status = res.statusCode;
    const aborted = !res.writableFinished;
    if (policy.sampleRate < 1 && !(policy.alwaysLogErrors && (status >= 400 || aborted)) && !(Math.random() < policy.sampleRate)) return undefined;
    return new AccessRecord(
      Date.now(),
      performance.now() - ctx.startedAt,
      ctx.requestId,
      req.method!,
      ctx.path || pathOf(req.url!),
      policy.fields,
      status,
      aborted,
      ctx.caller,
      ctx.denial,
      req.socket.remoteAddress,
      ctx.traceId,
      ctx.upstreamLatencyMs,
    );
  }

  private lineOf(r: AccessRecord): string {
    let line = `{"level":"info","time":"${isoNow(r.time)}"${this.bindings},"request_id":${jsonString(r.requestId)},"method":${jsonString(r.method)},"path":${jsonString(r.path)}${r.routeFields},"status":${r.status}`;
    if (r.aborted) line += ',"aborted":true';
    if (r.caller !== undefined) line += `,"caller":${jsonString(r.caller)}`;
    if (r.denial !== undefined) line += `,"reason":${jsonString(r.denial)}`;
    if (r.clientIp !== undefined) line += `,"client_ip":${jsonString(r.clientIp)}`;
    if (r.traceId !== undefined) line += `,"trace_id":"${r.traceId}"`;
    if (r.upstreamLatencyMs !== undefined) line += `,"upstream_latency_ms":${roundMs(r.upstreamLatencyMs)}`;
    return `${line},"latency_ms":${roundMs(r.latencyMs)},"msg":"request"}\n`;
  }

  private writeLines(text: string): void {
    try {
      this.destination.write(text);
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

/**
 * Records gathered before their lines are built: ≈ 40 KB of lines, a few
 * milliseconds of a loaded gateway's traffic. A quiet gateway's records are
 * formatted by the batch's flush timer (LOG_FLUSH_INTERVAL_MS).
 */
const PENDING_RECORDS = 128;

/** One finished exchange, as the access line will show it (one shape for every record). */
class AccessRecord {
  constructor(
    readonly time: number,
    readonly latencyMs: number,
    readonly requestId: string,
    readonly method: string,
    readonly path: string,
    /** The route's `,"route":…,"service":…` fragment. */
    readonly routeFields: string,
    readonly status: number,
    readonly aborted: boolean,
    readonly caller: string | undefined,
    readonly denial: string | undefined,
    readonly clientIp: string | undefined,
    readonly traceId: string | undefined,
    readonly upstreamLatencyMs: number | undefined,
  ) {}
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
