import { EventEmitter } from 'node:events';
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
import { clientResponseHeaders } from './forwarding-headers.js';
import type { UpstreamService } from './route-table.js';

/** Methods RFC 9110 §9.2.2 calls idempotent: safe to send again after a connection failure. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Failures that happen before the upstream saw the request, so a retry cannot repeat its effect. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/**
 * Forwards requests to upstream services through one keep-alive undici Pool per
 * origin. Bodies stream both ways (undici's `stream()` writes straight into the
 * client response, which measured fastest here: see ../shared/PERFORMANCE.md).
 */
export class UpstreamClient {
  private readonly pools = new Map<string, Pool>();
  /** The pool of each service, found once: a per-request key string and lookup measured on the hot path. */
  private readonly servicePools = new Map<UpstreamService, Pool>();

  constructor(services: readonly UpstreamService[]) {
    for (const s of services) this.pool(s);
  }

  private pool(service: UpstreamService): Pool {
    let pool = this.servicePools.get(service);
    if (pool) return pool;
    // Services on one origin share connections when their timeouts agree; the pool's own
    // headersTimeout/bodyTimeout are the service's read_timeout, so requests need no per-request timers.
    const key = `${service.origin}#${service.connectTimeoutMs}#${service.readTimeoutMs}`;
    pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(service.origin, {
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
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    const options: Dispatcher.RequestOptions<RequestContext> = {
      method: method as Dispatcher.HttpMethod,
      path: path + ctx.query,
      headers,
      // An iterator that does not destroy the client request if undici gives up on it,
      // so the gateway can still answer 502 on the same connection.
      body: hasBody ? (req.iterator({ destroyOnReturn: false }) as unknown as AsyncIterable<Buffer> & Dispatcher.DispatchOptions['body']) : null,
      opaque: ctx,
      signal: abortSignalOf(req.socket),
    };
    const pool = this.pool(service);
    const retriable = !hasBody && IDEMPOTENT.has(method);
    return new Promise<void>((resolve, reject) => {
      let attempt = 0;
      let responded = false;
      const factory = ({ statusCode, headers: upstreamHeaders, opaque }: Dispatcher.StreamFactoryData<RequestContext>) => {
        responded = true;
        opaque.upstreamLatencyMs = performance.now() - opaque.upstreamStartedAt;
        const headers = clientResponseHeaders(upstreamHeaders as Record<string, string | string[]>, opaque.requestId);
        if (opaque.responseHeaders) mergeResponseHeaders(headers, opaque.responseHeaders);
        res.writeHead(statusCode, headers);
        return res;
      };
      const done = (err: Error | null) => {
        if (!err) return resolve();
        // The client is gone: nobody to answer (the access log records the abort).
        if (res.destroyed && !responded) return resolve();
        if (responded) {
          // Already streaming: abort rather than end cleanly (undici destroyed res already).
          if (!res.destroyed) res.destroy(err);
          return resolve();
        }
        const code = (err as NodeJS.ErrnoException).code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
        if (retriable && attempt < service.retries && code && CONNECT_FAILURES.has(code) && !res.destroyed) {
          attempt++;
          ctx.upstreamStartedAt = performance.now();
          pool.stream(options, factory, done);
          return;
        }
        reject(toGatewayError(err, code, service));
      };
      ctx.upstreamStartedAt = performance.now();
      pool.stream(options, factory, done);
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}

const ABORT_SIGNAL = Symbol('gatehouse.abortSignal');

/**
 * The abort signal of every upstream request made for one client connection: a
 * client that goes away (or a shutdown that closes its connection) must not
 * leave upstream requests holding pooled connections until read_timeout.
 * undici takes an EventEmitter as the signal (far cheaper than an
 * AbortController); one per connection, with one `close` listener, instead of
 * an emitter and a listener per request. undici removes its own listener when
 * a request completes, so only requests still in flight are aborted.
 */
function abortSignalOf(socket: Socket & { [ABORT_SIGNAL]?: EventEmitter }): EventEmitter {
  let signal = socket[ABORT_SIGNAL];
  if (!signal) {
    const emitter = (signal = socket[ABORT_SIGNAL] = new EventEmitter());
    // Pipelined requests on one connection each listen until they complete.
    emitter.setMaxListeners(0);
    socket.once('close', () => emitter.emit('abort'));
  }
  return signal;
}

function toGatewayError(err: Error, code: string | undefined, service: UpstreamService): GatewayError {
  const where = `upstream ${service.name} (${service.origin})`;
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new GatewayTimeoutError(`${where}: ${code ?? err.name}`, err);
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ServiceUnavailableError('name resolution failed', `${where}: DNS lookup failed (${code})`, err);
  }
  if (err instanceof undiciErrors.RequestAbortedError) {
    return new BadGatewayError(`${where}: request aborted`, err);
  }
  return new BadGatewayError(`${where}: ${code ?? err.message}`, err);
}

/** Adds the gateway's own response headers; Set-Cookie is appended to the upstream's, others replace. */
function mergeResponseHeaders(headers: Record<string, string | string[] | undefined>, extra: Record<string, string | string[]>) {
  for (const [name, value] of Object.entries(extra)) {
    if (name === 'set-cookie') {
      const existing = headers[name];
      headers[name] = [...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]), ...(Array.isArray(value) ? value : [value])];
    } else {
      headers[name] = value;
    }
  }
}
