import { request } from 'undici';
import { traceIdpCall } from '../telemetry/tracing.js';
import { declaredTooLarge, MAX_IDP_RESPONSE_BYTES, readCapped, responseTooLarge } from '../common/bounded.fetch.js';

/**
 * GET a JSON object from an IdP endpoint (discovery, JWKS) with a hard timeout
 * for the whole exchange and a cap on the body (MAX_IDP_RESPONSE_BYTES): a
 * larger body is cut off where it crosses the cap, never buffered whole.
 * No redirects: a discovery document or key set must be served where it is named.
 */
export function fetchJson(url: string, timeoutMs: number, signal?: AbortSignal, maxBytes = MAX_IDP_RESPONSE_BYTES): Promise<Record<string, unknown>> {
  // Only discovery documents and key sets are fetched this way; a span each when spans are recorded (src/telemetry).
  return traceIdpCall(url.includes('/.well-known/') ? 'discovery' : 'jwks', 'GET', url, () => fetchJsonUntraced(url, timeoutMs, signal, maxBytes));
}

async function fetchJsonUntraced(url: string, timeoutMs: number, signal: AbortSignal | undefined, maxBytes: number): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const res = await request(url, {
    headers: { accept: 'application/json' },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  if (res.statusCode !== 200) {
    // dump() reads at most 128 KiB to keep the connection, then gives up on it.
    await res.body.dump();
    throw new Error(`${url} answered ${res.statusCode}`);
  }
  if (declaredTooLarge(res.headers['content-length'], maxBytes)) {
    res.body.destroy();
    throw responseTooLarge(url, maxBytes);
  }
  const text = (await readCapped(res.body, url, maxBytes)).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${url} did not answer JSON`);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error(`${url} did not answer a JSON object`);
  return body as Record<string, unknown>;
}
