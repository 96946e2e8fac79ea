import { traceIdpCall, type IdpCallKind } from '../telemetry/tracing.js';

/**
 * Limits on what the gateway reads from an identity provider. Every IdP answer
 * the gateway needs (discovery document, JWKS, token, introspection, userinfo
 * and revocation responses) is a small JSON document: a few KiB, where a JWKS
 * with a dozen keys or a userinfo with long group lists stays far below 1 MiB.
 * Anything larger is a broken or hostile IdP (or a compromised network path),
 * and reading it whole would let one response exhaust the gateway's memory.
 */
export const MAX_IDP_RESPONSE_BYTES = 1024 * 1024;

/**
 * An IdP response body over the cap, or an IdP request that failed or timed
 * out. A TypeError on purpose: the Fetch Standard reports every network failure
 * as a TypeError, and openid-client passes TypeErrors through unchanged, while
 * it turns anything else into a ClientError that callers read as "the IdP
 * refused" (a 401) rather than "the IdP is unavailable" (a 503).
 */
export class IdpFetchError extends TypeError {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'IdpFetchError';
  }
}

export function responseTooLarge(url: string, maxBytes: number): IdpFetchError {
  return new IdpFetchError(`${url}: response body larger than ${maxBytes} bytes`);
}

/** A declared Content-Length over the cap: refused before a byte of the body is read. */
export function declaredTooLarge(contentLength: string | string[] | null | undefined, maxBytes: number): boolean {
  const value = Array.isArray(contentLength) ? contentLength[0] : contentLength;
  if (value === null || value === undefined) return false;
  const n = Number(value);
  return Number.isFinite(n) && n > maxBytes;
}

/**
 * Reads a whole body, failing as soon as it grows past `maxBytes` (the stream
 * is cancelled there, which closes the connection: the rest is never
 * received). A Content-Length cannot be trusted to bound a body, chunked
 * bodies have none, and fetch counts bytes after content decoding, so a
 * compressed body is bounded by what it expands to.
 */
export async function readCapped(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | null, url: string, maxBytes: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if ('getReader' in body) {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw responseTooLarge(url, maxBytes);
      }
      chunks.push(value);
    }
  } else {
    for await (const chunk of body) {
      size += chunk.byteLength;
      // Leaving the loop early destroys the stream (and with it the connection).
      if (size > maxBytes) throw responseTooLarge(url, maxBytes);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks, size);
}

/** Statuses whose responses cannot have a body (Fetch Standard "null body status"). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/**
 * A fetch for openid-client's `customFetch` (token, introspection, userinfo and
 * revocation requests): the request and the whole body must arrive within
 * `timeoutMs`, and the body must fit in `maxBytes`. The body is read here, in
 * full, so an oversized or stalled answer fails the request itself, before
 * openid-client parses anything. Failures are IdpFetchErrors (see there).
 */
export function boundedFetch(timeoutMs: number, maxBytes = MAX_IDP_RESPONSE_BYTES, fetchImpl: FetchLike = fetch): FetchLike {
  const bounded = boundedFetchUntraced(timeoutMs, maxBytes, fetchImpl);
  // Each call is a span when spans are recorded (src/telemetry), named by what it asks the IdP.
  return (url, init) => traceIdpCall(idpCallKind(url, init), init.method ?? 'GET', url, () => bounded(url, init));
}

/**
 * Which IdP endpoint an openid-client request is for, read from the request
 * itself (openid-client's customFetch is not told): a `grant_type` is the
 * token endpoint (`refresh_token`: a refresh), a `token` parameter without one
 * is introspection (RFC 7662) or revocation (RFC 7009, told apart by the
 * endpoint's path, for span names only), no form body is userinfo.
 */
export function idpCallKind(url: string, init: RequestInit): IdpCallKind {
  const body = init.body;
  const form = body instanceof URLSearchParams ? body : typeof body === 'string' ? new URLSearchParams(body) : undefined;
  if (!form) return 'userinfo';
  const grant = form.get('grant_type');
  if (grant === 'refresh_token') return 'refresh';
  if (grant !== null) return 'token';
  if (form.has('token')) return /revo/i.test(new URL(url).pathname) ? 'revocation' : 'introspection';
  return 'userinfo';
}

function boundedFetchUntraced(timeoutMs: number, maxBytes: number, fetchImpl: FetchLike): FetchLike {
  return async (url, init) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    try {
      const res = await fetchImpl(url, { ...init, signal });
      if (declaredTooLarge(res.headers.get('content-length'), maxBytes)) {
        await res.body?.cancel().catch(() => undefined);
        throw responseTooLarge(url, maxBytes);
      }
      const body = await readCapped(res.body, url, maxBytes);
      return new Response(NULL_BODY_STATUS.has(res.status) ? null : body, { status: res.status, statusText: res.statusText, headers: res.headers });
    } catch (err) {
      if (err instanceof IdpFetchError) throw err;
      if (timeout.aborted) throw new IdpFetchError(`${url}: no complete answer within ${timeoutMs} ms`, err);
      throw new IdpFetchError(`${url}: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  };
}
