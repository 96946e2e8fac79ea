import type { IncomingMessage } from 'node:http';
import { SETTINGS_DEFAULTS } from '../../config/gateway-settings.js';
import type { OpenIdConnectConfig } from '../../config/openid-connect.schema.js';
import { SessionTooLargeError } from '../auth.errors.js';
import { parseCookies, serializeCookie, type CookieAttributes } from '../cookies.js';
import { sealedLength } from './jwe.js';

/** Browsers keep about 4096 bytes per cookie, name and attributes included. */
export const CHUNK_SIZE = 3800;
export const MAX_CHUNKS = 10;
const CHUNK_COUNT = /^(\d{1,2})~/;

/**
 * Request-header bytes left for everything but the session cookies: about
 * 1 KB of a browser's own (request line, Host, User-Agent, Accept*, sec-ch-*,
 * Sec-Fetch-*), 1 KB for a long URL and its Referer (a login callback's
 * query), 1 KB for the site's other cookies and what proxies in front add
 * (X-Forwarded-*, traceparent).
 */
export const HEADER_RESERVE_BYTES = 3072;

/**
 * The bytes the session's cookies may take in a request's Cookie header when
 * the gateway refuses request headers over `maxHeaderSize` (Node counts the
 * request line and every header line): a session that needs more would come
 * back with every request and be answered 431, forever.
 */
export function sessionCookieBudget(maxHeaderSize: number): number {
  return Math.max(0, maxHeaderSize - HEADER_RESERVE_BYTES);
}

/** The budget under the default GATEHOUSE_MAX_HEADER_SIZE, for stores not told the real one. */
export const DEFAULT_MAX_COOKIE_BYTES = sessionCookieBudget(Number(SETTINGS_DEFAULTS.GATEHOUSE_MAX_HEADER_SIZE));

/** `__Host-` only where browsers accept it: Secure, Path=/ and no Domain. */
export function sessionCookieName(config: OpenIdConnectConfig, secure: boolean): string {
  return secure && config.session_cookie_path === '/' && !config.session_cookie_domain ? `__Host-${config.session_cookie_name}` : config.session_cookie_name;
}

/**
 * Bytes that a sealed value of `valueLength` characters, split into chunks,
 * adds to a request's Cookie header: every `name=value` and the `; ` between them.
 */
export function cookieHeaderBytes(cookieName: string, valueLength: number): number {
  const count = Math.max(1, Math.ceil(valueLength / CHUNK_SIZE));
  let bytes = cookieName.length + 1 + valueLength;
  if (count > 1) bytes += `${count}~`.length;
  for (let i = 2; i <= count; i++) bytes += 2 + `${cookieName}_${i}=`.length;
  return bytes;
}

/**
 * The cookie side of every session store: the name (and `__Host-` prefix),
 * attributes, splitting a sealed value into chunks of at most CHUNK_SIZE and
 * reassembling them, the size limit, and deleting what an earlier, larger
 * cookie left behind.
 */
export class SessionCookie {
  readonly name: string;

  constructor(
    private readonly config: OpenIdConnectConfig,
    private readonly secure: boolean,
    /** Bytes the session's cookies may take in a request's Cookie header. */
    readonly maxBytes: number = DEFAULT_MAX_COOKIE_BYTES,
  ) {
    this.name = sessionCookieName(config, secure);
  }

  get attributes(): CookieAttributes {
    const sameSite = this.config.session_cookie_same_site;
    return {
      path: this.config.session_cookie_path,
      domain: this.config.session_cookie_domain,
      httpOnly: this.config.session_cookie_http_only,
      secure: this.secure,
      sameSite: sameSite === 'Default' ? undefined : sameSite,
    };
  }

  /** Names of every cookie a session may have set on the request (all chunks). A property: callers pass it around as a filter. */
  readonly isSessionCookie = (name: string): boolean =>
    name === this.name || (name.startsWith(`${this.name}_`) && /^\d+$/.test(name.slice(this.name.length + 1)));

  /** The sealed value as sent (all chunks reassembled), or undefined when absent or incomplete. */
  value(req: IncomingMessage): string | undefined {
    const cookies = parseCookies(req.headers.cookie);
    const first = cookies.get(this.name);
    if (!first) return undefined;
    let value = first;
    const m = CHUNK_COUNT.exec(first);
    if (m) {
      const count = Number(m[1]);
      value = first.slice(m[0].length);
      for (let i = 2; i <= count; i++) {
        const part = cookies.get(`${this.name}_${i}`);
        if (part === undefined) return undefined;
        value += part;
      }
    }
    return value;
  }

  /**
   * Set-Cookie headers carrying `value` for `maxAge` seconds, and deleting the
   * chunks a larger earlier cookie left behind. Throws SessionTooLargeError,
   * before anything is sent, when the browser could not send it back to this gateway.
   */
  serialize(value: string, maxAge: number, req: IncomingMessage): string[] {
    const bytes = cookieHeaderBytes(this.name, value.length);
    if (bytes > this.maxBytes || Math.ceil(value.length / CHUNK_SIZE) > MAX_CHUNKS) throw new SessionTooLargeError(bytes, Math.min(this.maxBytes, cookieHeaderBytes(this.name, MAX_CHUNKS * CHUNK_SIZE)));
    const attrs = { ...this.attributes, maxAge };
    const chunks: string[] = [];
    for (let i = 0; i < value.length; i += CHUNK_SIZE) chunks.push(value.slice(i, i + CHUNK_SIZE));
    const out = chunks.map((c, i) => serializeCookie(i === 0 ? this.name : `${this.name}_${i + 1}`, i === 0 && chunks.length > 1 ? `${chunks.length}~${c}` : c, attrs));
    for (const name of parseCookies(req.headers.cookie).keys()) {
      const n = name.startsWith(`${this.name}_`) ? Number(name.slice(this.name.length + 1)) : NaN;
      if (n > chunks.length) out.push(serializeCookie(name, '', { ...this.attributes, maxAge: 0 }));
    }
    return out;
  }

  /** Set-Cookie headers deleting every chunk, with the same attributes it was set with (the first even when the request carried none). */
  clear(req: IncomingMessage): string[] {
    const names = new Set([this.name]);
    for (const name of parseCookies(req.headers.cookie).keys()) if (this.isSessionCookie(name)) names.add(name);
    return [...names].map((n) => serializeCookie(n, '', { ...this.attributes, maxAge: 0 }));
  }
}

/**
 * A session an identity provider of the common kind issues: an access token,
 * an ID token and a refresh token of 1–1.5 KB each (Keycloak, Entra ID, Okta
 * JWTs). Below this many token bytes, logins will fail for most users.
 */
export const TYPICAL_TOKEN_BYTES = 4096;

/**
 * How many bytes of tokens (access, ID and refresh token together) a session
 * can carry when its cookies may take `maxCookieBytes`: Infinity for Redis
 * storage (the cookie holds only a reference), 0 when not even an empty
 * session fits. Assumes the longer, `__Host-` prefixed name where it may apply
 * and a 64-character subject.
 */
export function cookieSessionCapacity(config: OpenIdConnectConfig, maxCookieBytes: number): number {
  const name = sessionCookieName(config, true);
  const limit = Math.min(maxCookieBytes, cookieHeaderBytes(name, MAX_CHUNKS * CHUNK_SIZE));
  const fits = (plaintextBytes: number) => cookieHeaderBytes(name, sealedLength(plaintextBytes)) <= limit;
  if (config.session_storage === 'redis') return fits(Buffer.byteLength(JSON.stringify({ sid: 'x'.repeat(32) }))) ? Infinity : 0;
  const t = 1_700_000_000;
  const empty = Buffer.byteLength(
    JSON.stringify({ sid: 'x'.repeat(32), created: t, renewed: t, seen: t, iss: config.issuer, sub: 'x'.repeat(64), access_token: '', expires_at: t, refresh_token: '', id_token: '' }),
  );
  if (!fits(empty)) return 0;
  let lo = 0;
  let hi = limit;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(empty + mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * At start: a warning for the log when GATEHOUSE_MAX_HEADER_SIZE leaves this
 * plugin's cookie sessions no room, or less than a common identity provider's
 * tokens need; undefined when they fit.
 */
export function sessionCapacityWarning(config: OpenIdConnectConfig, maxHeaderSize: number): string | undefined {
  const capacity = cookieSessionCapacity(config, sessionCookieBudget(maxHeaderSize));
  if (capacity >= TYPICAL_TOKEN_BYTES) return undefined;
  const advice = 'use session_storage: redis or raise GATEHOUSE_MAX_HEADER_SIZE';
  if (capacity === 0) return `GATEHOUSE_MAX_HEADER_SIZE=${maxHeaderSize} leaves no room for a session cookie: every login will fail; ${advice}`;
  return `GATEHOUSE_MAX_HEADER_SIZE=${maxHeaderSize} leaves room for ${capacity} bytes of tokens in a session cookie (a common identity provider issues ${TYPICAL_TOKEN_BYTES}): logins with larger tokens will fail; ${advice}`;
}
