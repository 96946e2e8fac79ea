import { createHash } from 'node:crypto';

/** The directives of a `Cache-Control` field the cache acts on (RFC 9111 §5.2). */
export interface CacheDirectives {
  noStore: boolean;
  noCache: boolean;
  private: boolean;
  /** Seconds, or undefined when absent or malformed. */
  maxAge?: number;
  sMaxAge?: number;
}

const NONE: CacheDirectives = Object.freeze({ noStore: false, noCache: false, private: false });

/**
 * Parses `Cache-Control` (several fields joined by commas are one list, RFC 9110 §5.3).
 * Directive names are case-insensitive; a malformed delta-seconds is ignored,
 * and a repeated one keeps the first, as RFC 9111 §4.2.1 asks of caches.
 */
export function parseCacheControl(value: string | string[] | undefined): CacheDirectives {
  if (value === undefined) return NONE;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === '') return NONE;
  const out: CacheDirectives = { noStore: false, noCache: false, private: false };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const arg = eq < 0 ? undefined : part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    switch (name) {
      case 'no-store':
        out.noStore = true;
        break;
      case 'no-cache':
        // `no-cache="Set-Cookie"` (a field list) still forbids reuse without validation, which this cache does not do.
        out.noCache = true;
        break;
      case 'private':
        out.private = true;
        break;
      case 'max-age':
        out.maxAge ??= deltaSeconds(arg);
        break;
      case 's-maxage':
        out.sMaxAge ??= deltaSeconds(arg);
        break;
    }
  }
  return out;
}

function deltaSeconds(arg: string | undefined): number | undefined {
  return arg !== undefined && /^\d{1,10}$/.test(arg) ? Number(arg) : undefined;
}

/**
 * How long a response may be served from the cache, in seconds, or 0 when it
 * must not be stored. With `cache_control` on, a shared cache honours
 * `no-store`, `private` and `no-cache` (it does not revalidate, RFC 9111 §3,
 * §5.2.2.4), and `s-maxage` before `max-age` (§5.2.2.10); without them the
 * configured TTL applies. Off, only `cache_ttl` counts (Kong's default).
 */
export function responseTtl(cacheControl: boolean, directives: CacheDirectives, cacheTtl: number): number {
  if (!cacheControl) return cacheTtl;
  if (directives.noStore || directives.private || directives.noCache) return 0;
  return directives.sMaxAge ?? directives.maxAge ?? cacheTtl;
}

/** What a request's own `Cache-Control` asks of the cache (cache_control on). */
export type RequestCachePolicy = 'use' | 'bypass' | 'refresh';

/**
 * `no-store`: neither served from nor stored (RFC 9111 §5.2.1.5);
 * `no-cache` or `max-age=0`: not served from the cache, but the fresh answer
 * may be stored (§5.2.1.4, §5.2.1.1). A positive `max-age` is checked against
 * the entry's age at lookup.
 */
export function requestPolicy(directives: CacheDirectives): RequestCachePolicy {
  if (directives.noStore) return 'bypass';
  if (directives.noCache || directives.maxAge === 0) return 'refresh';
  return 'use';
}

/** `type/subtype` in lower case, parameters dropped: `Application/JSON; charset=utf-8` → `application/json`. */
export function mediaTypeOf(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** The configured `content_type` list compiled to a test: exact media types, plus `type/*` and `*` wildcards. */
export function contentTypeMatcher(allowed: readonly string[]): (contentType: string | undefined) => boolean {
  const exact = new Set<string>();
  const typePrefixes: string[] = [];
  let any = false;
  for (const entry of allowed) {
    const media = mediaTypeOf(entry);
    if (media === '*/*') any = true;
    else if (media.endsWith('/*')) typePrefixes.push(media.slice(0, -1));
    else exact.add(media);
  }
  return (contentType) => {
    if (contentType === undefined) return false;
    if (any) return true;
    const media = mediaTypeOf(contentType);
    if (exact.has(media)) return true;
    for (const p of typePrefixes) if (media.startsWith(p)) return true;
    return false;
  };
}

/** What the cache key is made of, beyond the route it is compiled for. */
export interface KeyInputs {
  method: string;
  /** The normalised path (RequestContext.path). */
  path: string;
  /** The raw query including "?" (RequestContext.query), or "". */
  query: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The Host the client sent, when the route forwards it (preserve_host): the upstream may answer per host. */
  host?: string;
  /**
   * Who is asking on an authenticated route: the caller's `credential_claim`,
   * else their access token (hashed with the rest, never stored), else none.
   */
  caller?: string;
  accessToken?: string;
}

export interface KeyOptions {
  /** The route (and service) the plugin is compiled for: routes never share entries. */
  scope: string;
  ignoreUriCase: boolean;
  /** Parameter names (lower-cased when ignoreUriCase); undefined means the whole query. */
  varyQueryParams?: ReadonlySet<string>;
  /** Lower-case, sorted. */
  varyHeaders: readonly string[];
}

/**
 * The cache key: SHA-256 (hex) of the route, method, path, sorted query
 * (only `vary_query_params` when set), the Host with preserve_host, the
 * `vary_headers` values and the caller's identity. The components are JSON-encoded so no value (a claim may
 * hold any character) can run into the next one.
 */
export function cacheKey(inputs: KeyInputs, opts: KeyOptions): string {
  const parts: (string | null)[] = [opts.scope, inputs.method, opts.ignoreUriCase ? inputs.path.toLowerCase() : inputs.path, canonicalQuery(inputs.query, opts)];
  if (inputs.host !== undefined) parts.push(`host:${inputs.host.toLowerCase()}`);
  for (const name of opts.varyHeaders) {
    const v = inputs.headers[name];
    parts.push(v === undefined ? null : Array.isArray(v) ? v.join(', ') : v);
  }
  if (inputs.caller !== undefined) parts.push(`caller:${inputs.caller}`);
  else if (inputs.accessToken !== undefined) parts.push(`token:${inputs.accessToken}`);
  else parts.push(null);
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** The query's parameters sorted (`b=2&a=1` and `a=1&b=2` are one entry); names lower-cased with ignore_uri_case. */
export function canonicalQuery(query: string, opts: Pick<KeyOptions, 'ignoreUriCase' | 'varyQueryParams'>): string {
  if (query.length <= 1) return '';
  const kept: string[] = [];
  for (const pair of query.slice(1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    let name = eq < 0 ? pair : pair.slice(0, eq);
    if (opts.ignoreUriCase) name = name.toLowerCase();
    if (opts.varyQueryParams && !opts.varyQueryParams.has(name)) continue;
    kept.push(eq < 0 ? name : `${name}${pair.slice(eq)}`);
  }
  if (kept.length > 1) kept.sort();
  return kept.join('&');
}
