import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import {
  BadGatewayError,
  GatewayError,
  GatewayTimeoutError,
  ServiceUnavailableError,
} from '../common/gateway.error.js';
import type { RequestContext } from '../common/request-context.js';
import { clientResponseHeaders, GATEWAY_UPSTREAM_HEADERS } from './forwarding-headers.js';
import { registerHeaderNamesWithUndici } from './undici-header-names.js';
import type { UpstreamService } from './route-table.js';
import type { ResponseBodyTap } from '../plugins/plugin.js';
import { activeTracing } from '../telemetry/tracing.js';
import { certificateFailure, upstreamTlsOptions } from '../common/tls-upstream.js';

/** Methods RFC 9110 §9.2.2 calls idempotent: safe to send again after a connection failure. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Failures that happen before the upstream saw the request, so a retry cannot repeat its effect. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/**
 * Forwards requests to upstream services through one keep-alive undici Pool per
 * origin. Bodies stream both ways: the request body as an async iterator, the
 * response through a dispatch handler (UpstreamExchange) that writes straight
 * into the client response, which measured faster than undici's `stream()` and
 * far faster than `request()` plus a pipe (bench/README.md).
 */
export class UpstreamClient {
  private readonly pools = new Map<string, Pool>();
  /**
   * The pool of each service, found once: a per-request key string and lookup measured on the hot path.
   * Weak, so the services of a replaced route table go with it, while requests still running on it find their pool.
   */
  private readonly servicePools = new WeakMap<UpstreamService, Pool>();
  /** Pools no route uses any more, closing once in-flight requests had time to reach them. */
  private readonly retiring = new Set<NodeJS.Timeout>();

  constructor(services: readonly UpstreamService[] = []) {
    // undici then takes the gateway's own header names as checked, instead of checking them on every request.
    registerHeaderNamesWithUndici(GATEWAY_UPSTREAM_HEADERS);
    for (const s of services) this.pool(s);
  }

  /**
   * Makes the pools of `services` (a new route table's) the live set: pools of
   * unchanged origins are kept with their connections; pools no service uses
   * any more close after RETIRE_GRACE_MS — a request matched on the old table
   * may still be in its access phase (an IdP round trip) — and `close()` then
   * lets the requests they carry finish.
   */
  retain(services: readonly UpstreamService[]): void {
    const keys = new Set<string>();
    for (const s of services) {
      this.pool(s);
      keys.add(poolKey(s));
    }
    for (const [key, pool] of this.pools) {
      if (keys.has(key)) continue;
      this.pools.delete(key);
      const timer = setTimeout(() => {
        this.retiring.delete(timer);
        void pool.close();
      }, RETIRE_GRACE_MS);
      timer.unref();
      this.retiring.add(timer);
    }
  }

  private pool(service: UpstreamService): Pool {
    let pool = this.servicePools.get(service);
    if (pool) return pool;
    // Services on one origin share connections when their timeouts agree; the pool's own
    // headersTimeout/bodyTimeout are the service's read_timeout, so requests need no per-request timers.
    const tls = upstreamTlsOptions(service);
    const key = poolKey(service);
    pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(service.origin, {
        // Upstreams are HTTP/1.1 keep-alive pools, whatever the client spoke (HTTP/2 included).
        ...(tls ? { connect: tls } : {}),
        connectTimeout: service.connectTimeoutMs,
        headersTimeout: service.readTimeoutMs,
        bodyTimeout: service.readTimeoutMs,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
      });
      this.pools.set(key, pool);
    }
    this.servicePools.set(service, pool);
    return pool;
  }

  /**
   * Sends the request upstream and streams the answer into `res`. Resolves when
   * the response has been fully written; rejects with a GatewayError while
   * nothing was sent yet (so the exception filter can answer 502/504), and
   * destroys `res` when the upstream fails mid-response, so the client sees an
   * aborted response instead of a clean but truncated one.
   */
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    service: UpstreamService,
    path: string,
    headers: string[],
  ): Promise<void> {
    const method = req.method!;
    // HTTP/2 has no Transfer-Encoding: a body without a length is announced by a HEADERS frame without END_STREAM.
    const stream = (req as { stream?: { endAfterHeaders: boolean } }).stream;
    const hasBody =
      req.headers['content-length'] !== undefined
        ? req.headers['content-length'] !== '0'
        : stream === undefined
          ? req.headers['transfer-encoding'] !== undefined
          : !stream.endAfterHeaders;
    const options: Dispatcher.DispatchOptions = {
      method: method as Dispatcher.HttpMethod,
      path: path + ctx.query,
      headers,
      // An iterator that does not destroy the client request if undici gives up on it,
      // so the gateway can still answer 502 on the same connection.
      body: hasBody ? (req.iterator({ destroyOnReturn: false }) as unknown as AsyncIterable<Buffer> & Dispatcher.DispatchOptions['body']) : null,
    };
    const pool = this.pool(service);
    const retriable = !hasBody && IDEMPOTENT.has(method);
    // On HTTP/2 the request's own stream stands for the connection: the session socket is shared by
    // concurrent requests, and one request ending must not abort the others' upstream exchanges.
    const client = (stream as unknown as Socket | undefined) ?? req.socket;
    return new Promise<void>((resolve, reject) => {
      let attempt = 0;
      const done = (err: Error | null, responded: boolean) => {
        // Spans are recorded (OTEL_EXPORTER_OTLP_ENDPOINT set): the upstream exchange span ends here, retries included.
        if (ctx.spans !== undefined && !(err && this.willRetry(err, responded, retriable, attempt, service, res))) {
          activeTracing().upstreamDone(ctx, responded ? res.statusCode : undefined, err);
        }
        if (!err) return resolve();
        // The client is gone: nobody to answer (the access log records the abort).
        if ((res.destroyed || client.destroyed) && !responded) return resolve();
        if (responded) {
          // Already streaming: abort rather than end cleanly, so the client sees a broken response.
          if (!res.destroyed) res.destroy(err);
          return resolve();
        }
        const code = errorCode(err);
        if (this.willRetry(err, responded, retriable, attempt, service, res)) {
          attempt++;
          ctx.upstreamStartedAt = performance.now();
          pool.dispatch(options, new UpstreamExchange(client, res, ctx, done));
          return;
        }
        reject(toGatewayError(err, code, service));
      };
      ctx.upstreamStartedAt = performance.now();
      pool.dispatch(options, new UpstreamExchange(client, res, ctx, done));
    });
  }

  /** A connection failure before the upstream saw the request, on an idempotent request with retries left. */
  private willRetry(err: Error, responded: boolean, retriable: boolean, attempt: number, service: UpstreamService, res: ServerResponse): boolean {
    if (responded || !retriable || attempt >= service.retries || res.destroyed) return false;
    const code = errorCode(err);
    return code !== undefined && CONNECT_FAILURES.has(code);
  }

  async close(): Promise<void> {
    for (const t of this.retiring) clearTimeout(t);
    this.retiring.clear();
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}

/** Longer than an access phase can take (IdP calls are bounded by the plugin's `timeout`, 10 s by default). */
const RETIRE_GRACE_MS = 30_000;

function poolKey(service: UpstreamService): string {
  const tls = service.protocol === 'https' ? `#${service.tlsVerify}#${service.caCertificates ?? ''}` : '';
  return `${service.origin}#${service.connectTimeoutMs}#${service.readTimeoutMs}${tls}`;
}

const IN_FLIGHT = Symbol('gatehouse.upstreamExchanges');
type ClientSocket = Socket & { [IN_FLIGHT]?: Set<UpstreamExchange> };

/**
 * One upstream exchange as an undici dispatch handler that writes the answer
 * straight into the client response: status and headers on `onHeaders`, each
 * chunk on `onData` (returning false pauses the upstream socket until the
 * client drains), `end()` on `onComplete`. This is what undici's `stream()`
 * does, without its per-request AsyncResource, `finished()` listeners and
 * header object (measured in bench/README.md).
 *
 * A client that goes away (or a shutdown that closes its connection) must not
 * leave the upstream request holding a pooled connection until read_timeout:
 * each client connection keeps the set of its exchanges in flight, and one
 * `close` listener per connection aborts them.
 */
class UpstreamExchange implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err?: Error) => void) | null = null;
  private responded = false;
  private settled = false;
  /** Response-phase plugins watching the body (e.g. a cache storing it); usually none. */
  private taps: ResponseBodyTap[] | null = null;
  /** undici's resume, hooked to the client's 'drain' only once a write had to wait (most responses never do). */
  private resume: (() => void) | null = null;
  private waitingForDrain = false;

  constructor(
    private readonly socket: ClientSocket,
    private readonly res: ServerResponse,
    private readonly ctx: RequestContext,
    private readonly done: (err: Error | null, responded: boolean) => void,
  ) {
    let inFlight = socket[IN_FLIGHT];
    if (!inFlight) {
      const set = (inFlight = socket[IN_FLIGHT] = new Set());
      socket.once('close', () => {
        for (const exchange of set) exchange.clientGone();
      });
    }
    inFlight.add(this);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.socket.destroyed) abort(new undiciErrors.RequestAbortedError());
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx (100 Continue, 103 Early Hints) concern this hop only; the final response follows.
    if (statusCode < 200) return true;
    const { ctx, res } = this;
    ctx.upstreamLatencyMs = performance.now() - ctx.upstreamStartedAt;
    const headers = clientResponseHeaders(rawHeaders, ctx.requestId);
    if (ctx.responseHeaders) mergeResponseHeaders(headers, ctx.responseHeaders);
    const phase = ctx.match!.route.phases.response;
    for (let i = 0; i < phase.length; i++) {
      const tap = phase[i].response!(ctx, statusCode, headers);
      if (tap) (this.taps ??= []).push(tap);
    }
    res.writeHead(statusCode, headers);
    this.responded = true;
    this.resume = resume;
    if (!res.writableNeedDrain) return true;
    this.waitForDrain();
    return false;
  }

  onData(chunk: Buffer): boolean {
    if (this.taps) for (const t of this.taps) t.data(chunk);
    if (this.res.write(chunk)) return true;
    this.waitForDrain();
    return false;
  }

  /** The upstream is paused (a handler returned false) until the client's buffer drains. */
  private waitForDrain(): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.res.on('drain', this.resume!);
  }

  onComplete(): void {
    this.res.end();
    if (this.taps) for (const t of this.taps) t.end();
    this.settle(null);
  }

  onError(err: Error): void {
    this.settle(err);
  }

  /** The client connection closed: abort the upstream request if it is still running. */
  clientGone(): void {
    if (this.settled) return;
    if (this.abortUpstream) this.abortUpstream(new undiciErrors.RequestAbortedError());
  }

  private settle(err: Error | null): void {
    if (this.settled) return;
    this.settled = true;
    if (err && this.taps) for (const t of this.taps) t.abort();
    this.socket[IN_FLIGHT]?.delete(this);
    this.done(err, this.responded);
  }
}

function errorCode(err: Error): string | undefined {
  return (err as NodeJS.ErrnoException).code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
}

export function toGatewayError(err: Error, code: string | undefined, service: UpstreamService): GatewayError {
  const where = `upstream ${service.name} (${service.origin})`;
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new GatewayTimeoutError(`${where}: ${code ?? err.name}`, err);
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ServiceUnavailableError('name resolution failed', `${where}: DNS lookup failed (${code})`, err);
  }
  const certificate = certificateFailure(code);
  if (certificate) return new BadGatewayError(`${where}: ${certificate}`, err);
  if (err instanceof undiciErrors.RequestAbortedError) {
    return new BadGatewayError(`${where}: request aborted`, err);
  }
  return new BadGatewayError(`${where}: ${code ?? err.message}`, err);
}

/** Adds the gateway's own response headers to the flat list; Set-Cookie and Vary (lists) are appended to the upstream's, others replace. */
function mergeResponseHeaders(headers: string[], extra: Record<string, string | string[]>) {
  for (const [name, value] of Object.entries(extra)) {
    if (name !== 'set-cookie' && name !== 'vary') {
      for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i].toLowerCase() === name) headers.splice(i, 2);
    }
    for (const v of Array.isArray(value) ? value : [value]) headers.push(name, v);
  }
}
