import { z } from 'zod';
import { inertShape, kongEntity } from '../../config/kong-fields.js';

/** 64 MiB: a few thousand typical JSON responses, small beside the gateway's own heap. */
export const DEFAULT_MEMORY_MAX_BYTES = 64 * 1024 * 1024;
/**
 * 1 MiB: above it a body is streamed to the client but not stored. Bodies that
 * large are rarely worth a shared cache's memory, and collecting them would let
 * a few concurrent misses hold many megabytes each.
 */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

const headerName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a header name');
/** `type/subtype`, either side may be `*` (Kong 3.x accepts wildcards). */
const mediaType = z
  .string()
  .trim()
  .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\s*;.*)?$/, 'must be a media type such as "application/json"');

/**
 * Kong's `proxy-cache` parameters (with `proxy-cache-advanced`'s `redis`):
 * Kong's names, meanings and defaults unless a comment says otherwise.
 */
const proxyCacheObject = z
  .strictObject({
    /** Upstream statuses that may be stored. Kong: 200, 301, 404. */
    response_code: z.array(z.number().int().min(100).max(900)).min(1).default([200, 301, 404]),
    /** Request methods whose responses may be stored. Kong: GET, HEAD. */
    request_method: z.array(z.enum(['GET', 'HEAD', 'POST', 'PATCH', 'PUT'])).min(1).default(['GET', 'HEAD']),
    /** Response media types that may be stored, compared on `type/subtype` only (parameters such as charset ignored). */
    content_type: z.array(mediaType).min(1).default(['text/plain', 'application/json']),
    /** Seconds a stored response is served (unless `cache_control` gives the response's own lifetime). */
    cache_ttl: z.number().int().positive().default(300),
    /**
     * Honour `Cache-Control` both ways (RFC 9111): the request's `no-store` bypasses, `no-cache` and `max-age`
     * refresh; the response's `no-store`, `no-cache` and `private` are never stored and `s-maxage`/`max-age`
     * set its lifetime. Off (Kong's default): only `cache_ttl` counts.
     */
    cache_control: z.boolean().default(false),
    /** Request headers whose values are part of the cache key (case-insensitive names). */
    vary_headers: z.array(headerName).optional(),
    /** Query parameters that are part of the key; when unset, the whole (sorted) query is. */
    vary_query_params: z.array(z.string().min(1)).optional(),
    /** Lower-case the path (and query parameter names) before keying: `/A` and `/a` share an entry. */
    ignore_uri_case: z.boolean().default(false),
    /** Seconds the storage keeps an entry; default: its lifetime. A kept but stale entry answers `Refresh`, not `Hit`. */
    storage_ttl: z.number().int().positive().optional(),
    /** `memory`: this process (LRU bounded by bytes); `redis`: shared by every gateway instance. Required, as in Kong. */
    strategy: z.enum(['memory', 'redis']),
    memory: z
      .strictObject({
        /** Kong's shared-dict name: accepted so Kong files load; Gatehouse has one store per plugin entry. */
        dictionary_name: z.string().min(1).default('kong_db_cache'),
        /** Gatehouse: bytes of bodies, headers and keys held before the least recently used entries go. */
        max_bytes: z.number().int().positive().default(DEFAULT_MEMORY_MAX_BYTES),
      })
      .prefault({}),
    /** Gatehouse: a body larger than this is streamed but not stored. */
    max_body_bytes: z.number().int().positive().default(DEFAULT_MAX_BODY_BYTES),
    /** Kong 3.8's shared Redis fields (used with `strategy: redis`). */
    redis: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(1).max(65535).default(6379),
        username: z.string().min(1).optional(),
        password: z.string().min(1).optional(),
        database: z.number().int().nonnegative().default(0),
        /** Accepted for Kong files; every Redis call is bounded by the gateway's REDIS_TIMEOUT_MS (1 s). */
        timeout: z.number().int().positive().default(2000),
        /** Gatehouse: prefix of every key this cache writes. */
        prefix: z.string().default('gatehouse:proxy-cache:'),
      })
      .prefault({}),
    /** Which of its own headers the plugin adds (Kong 3.x). */
    response_headers: z
      .strictObject({
        age: z.boolean().default(true),
        'X-Cache-Status': z.boolean().default(true),
        'X-Cache-Key': z.boolean().default(true),
      })
      .prefault({}),
    ...inertShape({}),
  })
  .check((ctx) => {
    const c = ctx.value;
    if (c.storage_ttl !== undefined && c.storage_ttl < c.cache_ttl) {
      ctx.issues.push({ code: 'custom', input: c.storage_ttl, path: ['storage_ttl'], message: `must be at least cache_ttl (${c.cache_ttl})` });
    }
    if (c.max_body_bytes > c.memory.max_bytes && c.strategy === 'memory') {
      ctx.issues.push({ code: 'custom', input: c.max_body_bytes, path: ['max_body_bytes'], message: `must not exceed memory.max_bytes (${c.memory.max_bytes})` });
    }
  });

/** Every parameter of Kong 3.4–3.15's proxy-cache is implemented; `null` (as Kong dumps unset ones) takes the default. */
export const proxyCacheConfigSchema = kongEntity('proxy-cache', proxyCacheObject, {});

export type ProxyCacheConfig = z.output<typeof proxyCacheConfigSchema>;
