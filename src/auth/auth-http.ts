import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../common/request-context.js';

/** Query parameters of an authorization response (RFC 6749 §4.1.2, RFC 9207, OIDC Session Management). */
const CALLBACK_PARAMS = ['code', 'state', 'iss', 'session_state', 'error', 'error_description', 'error_uri'];

/** Answers directly (login redirects, callbacks, logout), with an exact Content-Length. */
export function respond(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body?: string): void {
  res.writeHead(status, { ...headers, 'content-length': body ? Buffer.byteLength(body) : 0 });
  res.end(body);
}

/** Adds Set-Cookie headers to whatever response this request ends with. */
export function setResponseCookies(ctx: RequestContext, cookies: readonly string[]): void {
  if (!cookies.length) return;
  const existing = ctx.responseHeaders?.['set-cookie'];
  ctx.responseHeaders = { ...ctx.responseHeaders, 'set-cookie': [...(existing ? (Array.isArray(existing) ? existing : [existing]) : []), ...cookies] };
}

/** `query` (with its "?", or "") without the authorization response parameters. */
export function withoutCallbackParams(query: string): string {
  if (!query) return '';
  const rest = new URLSearchParams(query.slice(1));
  for (const p of CALLBACK_PARAMS) rest.delete(p);
  const s = rest.toString();
  return s ? `?${s}` : '';
}

/** Three dot-separated parts: a JWS (a JWT access token), without allocating the split. */
export function isCompactJws(token: string): boolean {
  const a = token.indexOf('.');
  if (a <= 0) return false;
  const b = token.indexOf('.', a + 1);
  return b > a + 1 && token.indexOf('.', b + 1) === -1;
}

/** A page navigation by a browser: the only kind of request that is ever redirected to the IdP. */
export function isBrowserNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (req.headers.authorization) return false;
  const xrw = req.headers['x-requested-with'];
  if (typeof xrw === 'string' && xrw.toLowerCase() === 'xmlhttprequest') return false;
  const mode = req.headers['sec-fetch-mode'];
  if (mode !== undefined && mode !== 'navigate') return false;
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.includes('text/html');
}

/** Only a same-origin absolute path is ever a return target: never `//host`, never a scheme. */
export function safeReturnPath(candidate: string | undefined, fallback?: string): string {
  for (const c of [candidate, fallback]) {
    // Browsers drop tabs and newlines from URLs ("/\t/evil" becomes "//evil"): refuse every control character.
    if (c && c.startsWith('/') && !c.startsWith('//') && !c.startsWith('/\\') && !/[\x00-\x1f\x7f]/.test(c)) return c;
  }
  return '/';
}

/** The payload of a JWT whose signature was checked elsewhere (an ID token validated at login). */
export function decodeClaims(jwt: string): Record<string, unknown> {
  try {
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')) as unknown;
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
