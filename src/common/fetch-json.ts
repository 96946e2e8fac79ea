import { request } from 'undici';

/**
 * GET a JSON object from an IdP endpoint (discovery, JWKS) with a hard timeout.
 * No redirects: a discovery document or key set must be served where it is named.
 */
export async function fetchJson(url: string, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const res = await request(url, {
    headers: { accept: 'application/json' },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`${url} answered ${res.statusCode}`);
  }
  const body = (await res.body.json()) as unknown;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error(`${url} did not answer a JSON object`);
  return body as Record<string, unknown>;
}
