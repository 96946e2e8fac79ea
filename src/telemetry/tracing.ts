import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RequestContext } from '../common/request-context.js';
import type { UpstreamService } from '../proxy/route-table.js';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, validTracestate } from './trace-context.js';
import { readTracingSettings } from './tracing-settings.js';

/** The identity-provider calls that get their own span. */
export type IdpCallKind = 'discovery' | 'jwks' | 'token' | 'refresh' | 'introspection' | 'userinfo' | 'revocation';

/** Where the trace headers for the upstream request are left (ConnectionFacts has these two fields). */
export interface TraceHeaderSlots {
  traceparent?: string;
  tracestate?: string;
}

/**
 * What the proxy path asks of tracing. Two implementations: propagation only
 * (the default, below: W3C headers to the upstream, nothing recorded, no SDK
 * loaded) and the OpenTelemetry SDK (otel.tracing.ts, imported only when an
 * OTLP endpoint is configured).
 */
export interface RequestTracing {
  /** True when spans are recorded: the proxy then calls startRequest and runs the request inside `run`. */
  readonly recording: boolean;
  /** The request arrived (recording only): the server span starts, its parent read from `traceparent`. */
  startRequest(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void;
  /** Runs the request's steps with its span as the parent of IdP calls made on its behalf (recording only). */
  run(ctx: RequestContext, step: () => void): void;
  /** Fills `traceparent` / `tracestate` for the upstream request (recording: the upstream exchange span starts). */
  upstream(req: IncomingMessage, ctx: RequestContext, service: UpstreamService, path: string, slots: TraceHeaderSlots): void;
  /** The upstream exchange is over: its status (undefined when none arrived) or its error. */
  upstreamDone(ctx: RequestContext, status: number | undefined, err: Error | null): void;
  /** An IdP call, as a child span of the request that needed it (or a root span for background refreshes). */
  idpCall<T>(kind: IdpCallKind, method: string, url: string, call: () => Promise<T>): Promise<T>;
  /** Exports what is still buffered. */
  shutdown(): Promise<void>;
}

/**
 * Propagation only. A valid incoming `traceparent` goes upstream as received
 * (re-written as version 00), with its `tracestate`: the gateway records no
 * span, so the upstream's span is the client's child, as W3C allows a
 * non-participating hop (§3.2: a vendor MAY mutate traceparent; it need not).
 * Without one (or with a malformed one) a new trace starts, flagged
 * `sampled` — what an OpenTelemetry SDK with its default sampler
 * (`parentbased_always_on`) would send — so upstreams with parent-based
 * samplers keep recording what arrives through the gateway.
 */
export const PROPAGATION_ONLY: RequestTracing = {
  recording: false,
  startRequest() {},
  run(_ctx, step) {
    step();
  },
  upstream(req, ctx, _service, _path, slots) {
    const incoming = parseTraceparent(req.headers.traceparent as string | undefined);
    if (incoming) {
      ctx.traceId = incoming.traceId;
      slots.traceparent = formatTraceparent(incoming.traceId, incoming.parentId, incoming.flags);
      slots.tracestate = validTracestate(req.headers.tracestate as string | undefined);
      return;
    }
    const traceId = newTraceId();
    ctx.traceId = traceId;
    slots.traceparent = formatTraceparent(traceId, newSpanId(), '01');
  },
  upstreamDone() {},
  idpCall(_kind, _method, _url, call) {
    return call();
  },
  async shutdown() {},
};

let active: RequestTracing = PROPAGATION_ONLY;

/** The tracing in effect for this process (propagation only until startTracing found an OTLP endpoint). */
export function activeTracing(): RequestTracing {
  return active;
}

/** An IdP call traced as `kind` when spans are recorded; otherwise just `call()`. */
export function traceIdpCall<T>(kind: IdpCallKind, method: string, url: string, call: () => Promise<T>): Promise<T> {
  return active === PROPAGATION_ONLY ? call() : active.idpCall(kind, method, url, call);
}

/**
 * Reads the standard `OTEL_*` variables (tracing-settings.ts) and, when an OTLP
 * endpoint is set, loads the OpenTelemetry SDK — by dynamic import, so a
 * gateway without tracing never loads a module of it. Throws SettingsError
 * for values it cannot honour. Call before the gateway starts.
 */
export async function startTracing(env: NodeJS.ProcessEnv, logger: Logger): Promise<RequestTracing> {
  const settings = readTracingSettings(env);
  if (!settings) return (active = PROPAGATION_ONLY);
  const { OtelTracing } = await import('./otel.tracing.js');
  active = await OtelTracing.start(settings, logger);
  logger.info({ protocol: settings.protocol, sampler: settings.sampler, caller: settings.recordCaller }, 'tracing: exporting spans over OTLP/HTTP');
  return active;
}

/** Exports what is buffered, waiting at most `timeoutMs`; back to propagation only. */
export async function stopTracing(timeoutMs = 5_000): Promise<void> {
  const tracing = active;
  active = PROPAGATION_ONLY;
  if (tracing === PROPAGATION_ONLY) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    tracing.shutdown().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
