import { hkdfSync, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { Redis } from 'ioredis';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { SessionStoreUnavailableError } from './auth.errors.js';
import { parseCookies, serializeCookie, type CookieAttributes } from './cookies.js';

/** What a logged-in browser session holds. Times are epoch seconds. */
export interface SessionData {
  /** Session id: random, new at every login (no fixation). */
  sid: string;
  iss: string;
  sub: string;
  created: number;
  renewed: number;
  seen: number;
  access_token: string;
  /** When the access token expires (epoch s), if the token endpoint said. */
  expires_at?: number;
  refresh_token?: string;
  id_token?: string;
}

/** Browsers keep about 4096 bytes per cookie, name and attributes included. */
const CHUNK_SIZE = 3800;
const MAX_CHUNKS = 10;
const CHUNK_COUNT = /^(\d{1,2})~/;
/** Decrypted cookie payloads kept this long, at most this many (see openCached). */
const OPENED_CACHE_MS = 60_000;
const OPENED_CACHE_MAX = 10_000;
/** A touch-only rewrite is handed again, for this long, to requests presenting the same sealed session (see writeTouched). */
const TOUCHED_REUSE_MS = 10_000;
const TOUCHED_REUSE_MAX = 2_000;

/** A session that cannot be read (tampered, foreign, expired) is no session, never an error. */
export class SessionStore {
  readonly cookieName: string;
  private readonly key: Uint8Array;
  private readonly redis?: Redis;

  constructor(
    private readonly config: OpenIdConnectConfig,
    private readonly secure: boolean,
  ) {
    this.cookieName = secure && config.session_cookie_path === '/' && !config.session_cookie_domain ? `__Host-${config.session_cookie_name}` : config.session_cookie_name;
    // A key per purpose and cookie name: a cookie minted for another purpose or route does not decrypt here.
    this.key = deriveKey(config.session_secret!, `gatehouse session ${config.session_cookie_name}`);
    if (config.session_storage === 'redis') {
      this.redis = new Redis({
        host: config.session_redis_host,
        port: config.session_redis_port,
        username: config.session_redis_username,
        password: config.session_redis_password,
        db: config.session_redis_database,
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        enableOfflineQueue: true,
        connectTimeout: 2_000,
      });
      this.redis.on('error', () => undefined); // reported per request as 503
    }
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

  /** Names of every cookie this store may have set on the request (all chunks). */
  isSessionCookie = (name: string): boolean =>
    name === this.cookieName || (name.startsWith(`${this.cookieName}_`) && /^\d+$/.test(name.slice(this.cookieName.length + 1)));

  /** Reads and validates the session; undefined when absent, unreadable or timed out. */
  async read(req: IncomingMessage, now = epoch()): Promise<SessionData | undefined> {
    const sealed = this.cookieValue(req);
    const payload = sealed === undefined ? undefined : await this.openCached(sealed);
    if (!payload) return undefined;
    let data: SessionData | undefined;
    let source = sealed!;
    if (this.redis) {
      if (typeof payload.sid !== 'string') return undefined;
      const stored = await this.redisCall(() => this.redis!.get(this.redisKey(payload.sid as string)));
      if (!stored) return undefined;
      data = (await this.openCached(stored)) as SessionData | undefined;
      if (data?.sid !== payload.sid) return undefined;
      source = stored;
    } else {
      data = payload as unknown as SessionData;
    }
    if (!isSessionData(data) || !this.alive(data, now)) return undefined;
    this.readFrom.set(data, source);
    return data;
  }

  /** The sealed value each session object handed out by read() was opened from (the cookie's, or Redis's). */
  private readonly readFrom = new WeakMap<SessionData, string>();

  alive(s: SessionData, now = epoch()): boolean {
    const c = this.config;
    if (c.session_absolute_timeout > 0 && now >= s.created + c.session_absolute_timeout) return false;
    if (c.session_rolling_timeout > 0 && now >= s.renewed + c.session_rolling_timeout) return false;
    if (c.session_idling_timeout > 0 && now >= s.seen + c.session_idling_timeout) return false;
    return true;
  }

  /**
   * Marks the session used. Returns true when it changed enough to be written
   * again: writing on every request would cost a JWE and a Set-Cookie each time,
   * so `seen` is only advanced in steps (a quarter of the idle timeout, at most a minute).
   */
  touch(s: SessionData, now = epoch()): boolean {
    const c = this.config;
    let changed = false;
    // Without an idle timeout `seen` decides nothing: never rewrite the cookie just for it.
    const step = c.session_idling_timeout > 0 ? Math.min(60, Math.max(1, Math.floor(c.session_idling_timeout / 4))) : Infinity;
    if (now - s.seen >= step) {
      s.seen = now;
      changed = true;
    }
    if (c.session_rolling_timeout > 0 && now - s.renewed >= c.session_rolling_timeout / 2) {
      s.renewed = now;
      changed = true;
    }
    return changed;
  }

  /** A brand-new session for a fresh login (new sid: never reuse one a client presented). */
  create(fields: Omit<SessionData, 'sid' | 'created' | 'renewed' | 'seen'>, now = epoch()): SessionData {
    return { sid: randomBytes(24).toString('base64url'), created: now, renewed: now, seen: now, ...fields };
  }

  /** Set-Cookie headers that store the session (and delete chunks a larger earlier cookie left behind). */
  async write(s: SessionData, req: IncomingMessage): Promise<string[]> {
    const maxAge = this.cookieMaxAge(s);
    let value: string;
    if (this.redis) {
      const ttl = Math.max(1, maxAge);
      const sealed = await this.seal(s as unknown as Record<string, unknown>);
      await this.redisCall(() => this.redis!.set(this.redisKey(s.sid), sealed, 'EX', ttl));
      value = await this.seal({ sid: s.sid });
    } else {
      value = await this.seal(s as unknown as Record<string, unknown>);
    }
    const attrs = { ...this.attributes, maxAge };
    const chunks: string[] = [];
    for (let i = 0; i < value.length; i += CHUNK_SIZE) chunks.push(value.slice(i, i + CHUNK_SIZE));
    if (chunks.length > MAX_CHUNKS) throw new Error('session too large for cookies; use session_storage: redis');
    const out = chunks.map((c, i) =>
      serializeCookie(i === 0 ? this.cookieName : `${this.cookieName}_${i + 1}`, i === 0 && chunks.length > 1 ? `${chunks.length}~${c}` : c, attrs),
    );
    for (const name of parseCookies(req.headers.cookie).keys()) {
      const n = name.startsWith(`${this.cookieName}_`) ? Number(name.slice(this.cookieName.length + 1)) : NaN;
      if (n > chunks.length) out.push(serializeCookie(name, '', { ...this.attributes, maxAge: 0 }));
    }
    return out;
  }

  /**
   * write() for a session changed only by touch(). Every request that presents
   * the same sealed session finds it equally stale: a page's parallel requests
   * sent before the browser saw the first rewrite, or a client that ignores
   * Set-Cookie. Each would otherwise pay a JWE (and, with Redis, a SET) and get
   * a different cookie. The first rewrite is handed to the others for
   * TOUCHED_REUSE_MS, keyed by the sealed value the session was read from (the
   * exact content, never just its sid); that only delays `seen` by at most the
   * window, and touch() advances it in steps anyway.
   */
  async writeTouched(s: SessionData, req: IncomingMessage): Promise<string[]> {
    const from = this.readFrom.get(s);
    const now = Date.now();
    if (from !== undefined) {
      const hit = this.touched.get(from);
      if (hit && hit.until > now) return hit.cookies;
    }
    const cookies = await this.write(s, req);
    if (from !== undefined) {
      if (this.touched.size >= TOUCHED_REUSE_MAX) this.touched.delete(this.touched.keys().next().value!);
      this.touched.set(from, { cookies, until: now + TOUCHED_REUSE_MS });
    }
    return cookies;
  }

  private readonly touched = new Map<string, { cookies: string[]; until: number }>();

  /** Set-Cookie headers deleting every chunk of the session, with the same attributes it was set with. */
  async destroy(req: IncomingMessage, s?: SessionData): Promise<string[]> {
    if (this.redis) {
      // Without the session (a fresh login replacing one), the cookie still names the stored one: it must not outlive its cookie.
      const sid = s?.sid ?? (await this.cookiePayload(req))?.sid;
      if (typeof sid === 'string') await this.redisCall(() => this.redis!.del(this.redisKey(sid)));
    }
    const names = new Set([this.cookieName]);
    for (const name of parseCookies(req.headers.cookie).keys()) if (this.isSessionCookie(name)) names.add(name);
    return [...names].map((n) => serializeCookie(n, '', { ...this.attributes, maxAge: 0 }));
  }

  /** The decrypted content of the session cookie (all chunks reassembled), or undefined. */
  private async cookiePayload(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const value = this.cookieValue(req);
    return value === undefined ? undefined : this.openCached(value);
  }

  /** The sealed session cookie as sent (all chunks reassembled), or undefined when absent or incomplete. */
  private cookieValue(req: IncomingMessage): string | undefined {
    const cookies = parseCookies(req.headers.cookie);
    const first = cookies.get(this.cookieName);
    if (!first) return undefined;
    let value = first;
    const m = CHUNK_COUNT.exec(first);
    if (m) {
      const count = Number(m[1]);
      value = first.slice(m[0].length);
      for (let i = 2; i <= count; i++) {
        const part = cookies.get(`${this.cookieName}_${i}`);
        if (part === undefined) return undefined;
        value += part;
      }
    }
    return value;
  }

  /**
   * Decrypting the cookie on every request of a browser session costs more than
   * the rest of the request; the same sealed value always decrypts to the same
   * payload, so decrypted payloads are kept briefly, keyed by the whole sealed
   * value (timeouts are still checked on every use). Copies are handed out, so a
   * caller's changes never leak into the cache.
   */
  private async openCached(value: string): Promise<Record<string, unknown> | undefined> {
    const now = Date.now();
    const hit = this.opened.get(value);
    if (hit && hit.until > now) return { ...hit.payload };
    const payload = await this.open(value);
    if (!payload) return undefined;
    if (this.opened.size >= OPENED_CACHE_MAX) this.opened.delete(this.opened.keys().next().value!);
    this.opened.set(value, { payload, until: now + OPENED_CACHE_MS });
    return { ...payload };
  }

  private readonly opened = new Map<string, { payload: Record<string, unknown>; until: number }>();

  private cookieMaxAge(s: SessionData, now = epoch()): number {
    const c = this.config;
    const limits = [
      c.session_absolute_timeout > 0 ? s.created + c.session_absolute_timeout - now : Infinity,
      c.session_rolling_timeout > 0 ? s.renewed + c.session_rolling_timeout - now : Infinity,
      c.session_idling_timeout > 0 ? s.seen + c.session_idling_timeout - now : Infinity,
    ];
    const left = Math.min(...limits);
    return Number.isFinite(left) ? Math.max(0, Math.floor(left)) : 86_400;
  }

  /** True when sessions live in Redis, shared by every gateway instance. */
  get shared(): boolean {
    return this.redis !== undefined;
  }

  /**
   * A short cross-instance lock (Redis SET NX PX) so that only one gateway
   * refreshes a session's tokens; the others wait for its result. Returns false
   * when another instance holds it. Without Redis there is nothing to share: true.
   */
  async acquireRefreshLock(sid: string, ttlMs: number): Promise<boolean> {
    if (!this.redis) return true;
    const ok = await this.redisCall(() => this.redis!.set(`${this.redisKey(sid)}:refresh`, '1', 'PX', ttlMs, 'NX'));
    return ok === 'OK';
  }

  async releaseRefreshLock(sid: string): Promise<void> {
    if (this.redis) await this.redisCall(() => this.redis!.del(`${this.redisKey(sid)}:refresh`));
  }

  /** The session as stored now (Redis only), to pick up what another instance wrote. */
  async reload(req: IncomingMessage): Promise<SessionData | undefined> {
    return this.redis ? this.read(req) : undefined;
  }

  private redisKey(sid: string) {
    return `${this.config.session_redis_prefix}${sid}`;
  }

  private async redisCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      if (this.redis!.status === 'wait') await this.redis!.connect().catch(() => undefined);
      return await fn();
    } catch (err) {
      // Without the store, no session can be trusted or saved: fail closed, retry later.
      throw new SessionStoreUnavailableError('session store unavailable', err);
    }
  }

  seal(payload: Record<string, unknown>): Promise<string> {
    return sealJwe(payload, this.key);
  }

  open(value: string): Promise<Record<string, unknown> | undefined> {
    return openJwe(value, this.key);
  }

  async close() {
    if (this.redis) this.redis.disconnect();
  }
}

/** A decrypted payload is a session only with every field a timeout check relies on (a missing time would never expire). */
function isSessionData(d: unknown): d is SessionData {
  if (!d || typeof d !== 'object') return false;
  const s = d as Record<string, unknown>;
  return (
    typeof s.sid === 'string' &&
    typeof s.iss === 'string' &&
    typeof s.sub === 'string' &&
    typeof s.access_token === 'string' &&
    Number.isFinite(s.created) &&
    Number.isFinite(s.renewed) &&
    Number.isFinite(s.seen)
  );
}

/** Encrypted and authenticated (JWE, `dir` + A256GCM): the one sealing used for sessions and login transactions. */
export function sealJwe(payload: object, key: Uint8Array): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(key);
}

/** The payload of a value sealJwe made with `key`; undefined for anything else (tampered, foreign, not JSON). */
export async function openJwe(value: string, key: Uint8Array): Promise<Record<string, unknown> | undefined> {
  try {
    const { plaintext } = await compactDecrypt(value, key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
    const parsed = JSON.parse(new TextDecoder().decode(plaintext)) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function deriveKey(secret: string, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, 'gatehouse', info, 32));
}

export function epoch(): number {
  return Math.floor(Date.now() / 1000);
}
