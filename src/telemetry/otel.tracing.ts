import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { RequestContext } from '../common/request-context.js';
import type { UpstreamService } from '../proxy/route-table.js';
import type { IdpCallKind, RequestTracing, TraceHeaderSlots } from './tracing.js';
import type { TracingSettings } from './tracing-settings.js';

/** Set on a server span whose incoming parent came from a peer outside GATEHOUSE_TRUSTED_IPS. */
export const UNTRUSTED_PARENT = 'gatehouse.untrusted_parent';

/**
 * The sampler. `OTEL_TRACES_SAMPLER` as the SDK reads it, with one rule on
 * top: an incoming `traceparent` from a peer that is not a trusted proxy is
 * still the span's parent (the trace stays joined up, as W3C intends), but
 * its `sampled` flag decides nothing: the root sampler decides as if there
 * were no parent. Otherwise any client could make the gateway record and
 * export a span for every request it sends (or none), whatever ratio the
 * operator chose. Trusted proxies' flags count, as a parent-based sampler
 * expects.
 */
export class GatewaySampler implements Sampler {
  private readonly configured: Sampler;

  constructor(
    private readonly root: Sampler,
    parentBased: boolean,
  ) {
    this.configured = parentBased ? new ParentBasedSampler({ root }) : root;
  }

  shouldSample(context: Context, traceId: string, name: string, kind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    if (attributes[UNTRUSTED_PARENT] === true) return this.root.shouldSample(context, traceId, name, kind, attributes, links);
    return this.configured.shouldSample(context, traceId, name, kind, attributes, links);
  }

  toString(): string {
    return `GatewaySampler{${this.configured.toString()}}`;
  }
}

export function samplerFor(settings: Pick<TracingSettings, 'sampler' | 'samplerRatio'>): GatewaySampler {
  const base = settings.sampler.replace('parentbased_', '');
  const root = base === 'always_off' ? new AlwaysOffSampler() : base === 'traceidratio' ? new TraceIdRatioBasedSampler(settings.samplerRatio) : new AlwaysOnSampler();
  return new GatewaySampler(root, settings.sampler.startsWith('parentbased_'));
}

/** Per request: the server span and, while it runs, the upstream exchange's. */
export interface RequestSpans {
  server: Span;
  upstream?: Span;
}

/**
 * Spans through the OpenTelemetry SDK, exported over OTLP/HTTP in batches
 * (BatchSpanProcessor; its `OTEL_BSP_*` variables apply). One SERVER span per
 * request, CLIENT children for the upstream exchange and for IdP calls. The
 * request's span is found by IdP calls through an AsyncLocalStorage entered
 * around the request's steps; that store, and the async hooks Node turns on
 * for it, exist only in this module, so a gateway without tracing never pays
 * for them.
 *
 * Attributes follow OpenTelemetry's HTTP semantic conventions; `url.path` is
 * the normalised path without the query (which may carry tokens), and no
 * header is recorded. The Kong route and service are `gatehouse.route` and
 * `gatehouse.service`; the caller is `enduser.id` only with GATEHOUSE_TRACE_CALLER.
 */
export class OtelTracing implements RequestTracing {
  readonly recording = true;
  private readonly propagator = new W3CTraceContextPropagator();
  private readonly store = new AsyncLocalStorage<Span>();
  private readonly onClose: (this: ServerResponse) => void;

  private constructor(
    private readonly provider: BasicTracerProvider,
    private readonly tracer: Tracer,
    private readonly recordCaller: boolean,
  ) {
    const tracing = this;
    this.onClose = function (this: ServerResponse) {
      const ctx = this.req.gatehouse;
      if (ctx?.spans) tracing.endRequest(this.req, this, ctx, ctx.spans);
    };
  }

  static async start(settings: TracingSettings, _logger: Logger): Promise<OtelTracing> {
    const exporter: SpanExporter =
      settings.protocol === 'http/json'
        ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
        : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
    const resource = defaultResource()
      .merge(resourceFromAttributes({ 'service.name': settings.serviceName ?? 'gatehouse' }))
      .merge(detectResources({ detectors: [envDetector] }));
    const provider = new BasicTracerProvider({
      resource,
      sampler: samplerFor(settings),
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    return new OtelTracing(provider, provider.getTracer('gatehouse'), settings.recordCaller);
  }

  startRequest(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const parent = this.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const socket = req.socket;
    const attributes: Attributes = {
      'http.request.method': req.method,
      'url.scheme': (socket as TLSSocket).encrypted ? 'https' : 'http',
      'client.address': socket.remoteAddress,
      'server.port': socket.localPort,
      'network.protocol.version': req.httpVersion,
      'gatehouse.request_id': ctx.requestId,
    };
    if (!ctx.peerTrusted && trace.getSpanContext(parent) !== undefined) attributes[UNTRUSTED_PARENT] = true;
    const server = this.tracer.startSpan(req.method!, { kind: SpanKind.SERVER, attributes }, parent);
    ctx.spans = { server };
    ctx.traceId = server.spanContext().traceId;
    res.on('close', this.onClose);
  }

  run(ctx: RequestContext, step: () => void): void {
    const server = ctx.spans?.server;
    if (server) this.store.run(server, step);
    else step();
  }

  private endRequest(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, spans: RequestSpans): void {
    const span = spans.server;
    const route = ctx.match?.route;
    const status = res.statusCode;
    if (route) {
      span.updateName(`${req.method} ${route.name}`);
      span.setAttribute('gatehouse.route', route.name);
      span.setAttribute('gatehouse.service', route.service.name);
    }
    span.setAttribute('url.path', ctx.path || pathOf(req.url!));
    span.setAttribute('http.response.status_code', status);
    if (this.recordCaller && ctx.caller !== undefined) span.setAttribute('enduser.id', ctx.caller);
    if (!res.writableFinished) {
      span.setAttribute('error.type', 'aborted');
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'response aborted' });
    } else if (status >= 500) {
      // HTTP semconv: a 4xx is the client's error, not the server span's.
      span.setAttribute('error.type', String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    // A refusal's reason (`insufficient_scope`, a redirect to log in) helps reading a trace; it never holds a token.
    if (ctx.denial !== undefined) span.setAttribute('gatehouse.reason', ctx.denial);
    if (spans.upstream) this.upstreamDone(ctx, undefined, new Error('response closed'));
    span.end();
  }

  upstream(req: IncomingMessage, ctx: RequestContext, service: UpstreamService, path: string, slots: TraceHeaderSlots): void {
    const server = ctx.spans?.server;
    const parent = server ? trace.setSpan(ROOT_CONTEXT, server) : ROOT_CONTEXT;
    const span = this.tracer.startSpan(
      req.method!,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': req.method,
          'server.address': service.hostname,
          'server.port': service.port,
          // The path the upstream is asked for, without the query.
          'url.full': `${service.origin}${path}`,
          'gatehouse.service': service.name,
        },
      },
      parent,
    );
    if (ctx.spans) ctx.spans.upstream = span;
    else ctx.spans = { server: span, upstream: span };
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), slots, defaultTextMapSetter);
    ctx.traceId ??= span.spanContext().traceId;
  }

  upstreamDone(ctx: RequestContext, status: number | undefined, err: Error | null): void {
    const span = ctx.spans?.upstream;
    if (!span) return;
    ctx.spans!.upstream = undefined;
    if (status !== undefined) span.setAttribute('http.response.status_code', status);
    if (err) {
      const code = (err as NodeJS.ErrnoException).code ?? ((err.cause as NodeJS.ErrnoException | undefined)?.code || err.name);
      span.setAttribute('error.type', code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    } else if (status !== undefined && status >= 500) {
      span.setAttribute('error.type', String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }

  async idpCall<T>(kind: IdpCallKind, method: string, url: string, call: () => Promise<T>): Promise<T> {
    const parentSpan = this.store.getStore();
    const span = this.tracer.startSpan(
      `${method} ${kind}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { 'http.request.method': method, 'url.full': pathOf(url), 'gatehouse.idp.endpoint': kind },
      },
      parentSpan ? trace.setSpan(ROOT_CONTEXT, parentSpan) : ROOT_CONTEXT,
    );
    try {
      const result = await call();
      if (result instanceof Response) {
        span.setAttribute('http.response.status_code', result.status);
        if (result.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      }
      return result;
    } catch (err) {
      const e = err as Error;
      span.setAttribute('error.type', e.name || 'Error');
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      throw err;
    } finally {
      span.end();
    }
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
