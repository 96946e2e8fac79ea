import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { LOGGER } from '../../common/logger.js';
import { redisClients, type RedisLease } from '../../common/redis-client.registry.js';
import type { RequestContext } from '../../common/request-context.js';
import { RESPONDED, type AccessResult, type CompiledPlugin, type GatewayPlugin, type PluginScope, type ResponseBodyTap } from '../plugin.js';
import { cacheKey, contentTypeMatcher, parseCacheControl, requestPolicy, responseTtl, type KeyOptions } from './proxy-cache.rules.js';
import type { ProxyCacheConfig } from './proxy-cache.schema.js';
import { decodeEntry, encodeEntry, MemoryStore, type CachedResponse } from './proxy-cache.store.js';

/** Kong's X-Cache-Status values. */
export type CacheStatus = 'Hit' | 'Miss' | 'Refresh' | 'Bypass';

/** What the access phase decided, for the response phase of the same request. */
interface CacheExchange {
  status: Exclude<CacheStatus, 'Hit'>;
  /** Undefined when the request was bypassed before a key was derived. */
  key?: string;
  /** A HEAD response: its Content-Length describes the GET body, and is kept. */
  head?: boolean;
}

/** What the access step decided, for the response phase of the same request. */
const setExchange = (ctx: RequestContext, exchange: CacheExchange) => ((ctx.pluginState ??= {})['proxy-cache'] = exchange);
const exchangeOf = (ctx: RequestContext) => ctx.pluginState?.['proxy-cache'] as CacheExchange | undefined;

const BYPASS: CacheExchange = Object.freeze({ status: 'Bypass' });

/** Headers recomputed for every answer, never taken from a stored response. */
const PER_ANSWER = new Set(['x-request-id', 'age', 'x-cache-status', 'x-cache-key']);

export interface Storage {
  /** Synchronous for memory; a promise for Redis. Resolves undefined when absent, and rejects when the store is down. */
  get(key: string, now: number): CachedResponse | undefined | Promise<CachedResponse | undefined>;
  set(key: string, value: CachedResponse, storageTtl: number): void;
}

/**
 * Kong's `proxy-cache` (PRIORITY 100): answers repeat requests from a store
 * without touching the upstream. It runs after authentication, and on a route
 * with openid-connect the key holds the caller's identity (`ctx.caller`, else
 * the access token), so one caller is never answered with another's response.
 * On a route without authentication, requests carrying credentials
 * (`Authorization`, `Cookie`) bypass the cache (RFC 9111 §3.5).
 */
@Injectable()
export class ProxyCachePlugin implements GatewayPlugin<ProxyCacheConfig> {
  readonly name = 'proxy-cache';
  readonly priority = 100;
  /** One store per plugin entry: a global or service plugin shares it across its routes (keys hold the route). */
  private readonly stores = new WeakMap<ProxyCacheConfig, Storage>();

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  compile(config: ProxyCacheConfig, scope: PluginScope): CompiledPlugin {
    let storage = this.stores.get(config);
    if (!storage) {
      storage = config.strategy === 'redis' ? new RedisStorage(config, this.logger) : memoryStorage(config.memory.max_bytes);
      this.stores.set(config, storage);
    }
    return compileProxyCache(config, scope, storage);
  }
}

function memoryStorage(maxBytes: number): Storage {
  const store = new MemoryStore(maxBytes);
  return { get: (key, now) => store.get(key, now), set: (key, value, ttl) => store.set(key, value, ttl) };
}

/**
 * Entries in a Redis shared by every gateway instance (one GET per lookup, one
 * SET with PX per store). Redis down or hung is never an error for the client:
 * the request bypasses the cache, and for the next REDIS_TIMEOUT-ish second
 * requests bypass without waiting on Redis again.
 */
class RedisStorage implements Storage {
  private readonly lease: RedisLease;
  private readonly prefix: string;
  private downUntil = 0;

  constructor(
    config: ProxyCacheConfig,
    private readonly logger: Logger,
  ) {
    const r = config.redis;
    this.lease = redisClients.acquire({ host: r.host, port: r.port, db: r.database, username: r.username, password: r.password });
    this.prefix = r.prefix;
  }

  get(key: string): CachedResponse | undefined | Promise<CachedResponse | undefined> {
    if (this.downUntil > Date.now()) throw new Error('redis down');
    return this.lease.run((c) => c.getBuffer(this.prefix + key)).then(
      (buf) => (buf ? decodeEntry(buf) : undefined),
      (err: unknown) => {
        this.down(err);
        throw err;
      },
    );
  }

  set(key: string, value: CachedResponse, storageTtl: number): void {
    if (this.downUntil > Date.now()) return;
    this.lease.run((c) => c.set(this.prefix + key, encodeEntry(value), 'PX', storageTtl * 1000)).catch((err: unknown) => this.down(err));
  }

  private down(err: unknown) {
    if (this.downUntil <= Date.now()) this.logger.warn({ plugin: 'proxy-cache', err: err instanceof Error ? err.message : String(err) }, 'proxy-cache: Redis unavailable, bypassing the cache');
    this.downUntil = Date.now() + 1_000;
  }
}

/** The plugin compiled for one route. Exported for unit tests with a store of their choosing. */
export function compileProxyCache(config: ProxyCacheConfig, scope: PluginScope, storage: Storage): CompiledPlugin {
  const methods = new Set<string>(config.request_method);
  const codes = new Set(config.response_code);
  const typeAllowed = contentTypeMatcher(config.content_type);
  const keyOptions: KeyOptions = {
    scope: JSON.stringify([scope.service, scope.route]),
    ignoreUriCase: config.ignore_uri_case,
    varyQueryParams: config.vary_query_params && new Set(config.vary_query_params.map((n) => (config.ignore_uri_case ? n.toLowerCase() : n))),
    varyHeaders: [...new Set((config.vary_headers ?? []).map((h) => h.toLowerCase()))].sort(),
  };
  const honour = config.cache_control;
  const maxBody = config.max_body_bytes;
  const showAge = config.response_headers.age;
  const showStatus = config.response_headers['X-Cache-Status'];
  const showKey = config.response_headers['X-Cache-Key'];

  function serve(entry: CachedResponse, now: number, key: string, res: ServerResponse, ctx: RequestContext): typeof RESPONDED {
    const headers = entry.headers.slice();
    headers.push('x-request-id', ctx.requestId);
    if (showAge) headers.push('age', String(Math.max(0, Math.floor((now - entry.storedAt) / 1000))));
    if (showStatus) headers.push('x-cache-status', 'Hit');
    if (showKey) headers.push('x-cache-key', key);
    if (ctx.responseHeaders) for (const [name, value] of Object.entries(ctx.responseHeaders)) for (const v of Array.isArray(value) ? value : [value]) headers.push(name, v);
    res.writeHead(entry.status, headers);
    res.end(entry.body);
    return RESPONDED;
  }

  /** A stored entry found: answer from it, or go upstream and refresh it. */
  function found(entry: CachedResponse | undefined, now: number, key: string, head: boolean, maxAge: number | undefined, res: ServerResponse, ctx: RequestContext): AccessResult {
    if (entry) {
      const ageMs = now - entry.storedAt;
      if (ageMs < entry.ttl * 1000 && (maxAge === undefined || ageMs <= maxAge * 1000)) return serve(entry, now, key, res, ctx);
      setExchange(ctx, { status: 'Refresh', key, head });
      return;
    }
    setExchange(ctx, { status: 'Miss', key, head });
  }

  return {
    name: 'proxy-cache',
    priority: 100,

    access(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): AccessResult {
      const h = req.headers;
      if (!methods.has(req.method!)) return void (setExchange(ctx, BYPASS));
      const route = ctx.match!.route;
      let caller: string | undefined;
      let accessToken: string | undefined;
      if (route.auth) {
        caller = ctx.caller;
        if (caller === undefined) accessToken = ctx.principal?.accessToken;
        // An authenticated route where no identity was established: nothing safe to key on.
        if (caller === undefined && accessToken === undefined) return void (setExchange(ctx, BYPASS));
      } else if (h.authorization !== undefined || h.cookie !== undefined) {
        // RFC 9111 §3.5: a shared cache does not reuse responses to requests with credentials it cannot tell apart.
        return void (setExchange(ctx, BYPASS));
      }
      let maxAge: number | undefined;
      let policy: 'use' | 'bypass' | 'refresh' = 'use';
      if (honour && h['cache-control'] !== undefined) {
        const d = parseCacheControl(h['cache-control']);
        policy = requestPolicy(d);
        maxAge = d.maxAge;
      }
      if (policy === 'bypass') return void (setExchange(ctx, BYPASS));
      const host = route.preserveHost ? h.host : undefined;
      const key = cacheKey({ method: req.method!, path: ctx.path, query: ctx.query, headers: h, host, caller, accessToken }, keyOptions);
      const head = req.method === 'HEAD';
      if (policy === 'refresh') return void (setExchange(ctx, { status: 'Refresh', key, head }));
      const now = Date.now();
      let got: ReturnType<Storage['get']>;
      try {
        got = storage.get(key, now);
      } catch {
        return void (setExchange(ctx, { status: 'Bypass', key }));
      }
      if (got === undefined || !(got instanceof Promise)) return found(got, now, key, head, maxAge, res, ctx);
      return got.then(
        (entry) => found(entry, Date.now(), key, head, maxAge, res, ctx),
        () => void (setExchange(ctx, { status: 'Bypass', key })),
      ) as Promise<void | typeof RESPONDED>;
    },

    response(ctx: RequestContext, status: number, headers: string[]): ResponseBodyTap | void {
      const exchange = exchangeOf(ctx);
      if (!exchange) return;
      const key = exchange.key;
      if (exchange.status === 'Bypass' || key === undefined) return void announce(headers, 'Bypass', key);

      let contentType: string | undefined;
      let cacheControl: string | undefined;
      let contentLength = -1;
      let upstreamAge = 0;
      let refused = !codes.has(status);
      for (let i = 0; i < headers.length && !refused; i += 2) {
        const name = headers[i].toLowerCase();
        const value = headers[i + 1];
        if (name === 'content-type') contentType = value;
        else if (name === 'cache-control') cacheControl = cacheControl === undefined ? value : `${cacheControl}, ${value}`;
        else if (name === 'content-length') contentLength = Number(value);
        else if (name === 'age') upstreamAge = /^\d+$/.test(value) ? Number(value) : 0;
        // Set-Cookie (the upstream's or the gateway's own session cookie) belongs to one client; Vary: * varies on anything.
        else if (name === 'set-cookie' || (name === 'vary' && value.includes('*'))) refused = true;
      }
      const ttl = refused ? 0 : responseTtl(honour, parseCacheControl(cacheControl), config.cache_ttl);
      if (ttl <= upstreamAge || !typeAllowed(contentType) || contentLength > maxBody) return void announce(headers, 'Bypass', key);

      // What is stored: the upstream's headers, without those rewritten per answer or added per request by the gateway.
      const gatewayOwn = ctx.responseHeaders;
      const stored: string[] = [];
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i].toLowerCase();
        if (PER_ANSWER.has(name) || (gatewayOwn && name in gatewayOwn) || (name === 'content-length' && !exchange.head)) continue;
        stored.push(headers[i], headers[i + 1]);
      }
      announce(headers, exchange.status, key);
      const storedAt = Date.now() - upstreamAge * 1000;
      const storageTtl = Math.max(config.storage_ttl ?? ttl, ttl);
      return new BodyCollector(maxBody, (body) => {
        if (!exchange.head) stored.push('content-length', String(body.length));
        storage.set(key, { status, headers: stored, body, storedAt, ttl }, storageTtl);
      });
    },
  };

  function announce(headers: string[], status: CacheStatus, key: string | undefined) {
    if (showStatus) headers.push('x-cache-status', status);
    if (showKey && key !== undefined) headers.push('x-cache-key', key);
  }
}

/**
 * Collects a body as it streams, up to `max` bytes: beyond that it lets go of
 * what it holds and stores nothing. The chunks are the ones written to the
 * client (no copy while streaming), concatenated once at the end.
 */
export class BodyCollector implements ResponseBodyTap {
  private chunks: Buffer[] | null = [];
  private size = 0;

  constructor(
    private readonly max: number,
    private readonly store: (body: Buffer) => void,
  ) {}

  data(chunk: Buffer): void {
    if (this.chunks === null) return;
    this.size += chunk.length;
    if (this.size > this.max) this.chunks = null;
    else this.chunks.push(chunk);
  }

  end(): void {
    const chunks = this.chunks;
    if (chunks === null) return;
    this.chunks = null;
    this.store(Buffer.concat(chunks, this.size));
  }

  abort(): void {
    this.chunks = null;
  }
}
