import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { OpenIdConnectConfig } from '../../config/openid-connect.schema.js';
import type { CookieAttributes } from '../cookies.js';
import { deriveKey, openJwe, sealJwe } from './jwe.js';
import { SessionCookie } from './session-cookie.js';
import { epoch, type SessionData } from './session-data.js';
import type { SessionStore, SessionStoreOptions, WriteOptions } from './session-store.js';
import { BoundedCache } from '../bounded-cache.js';

/** Decrypted payloads kept this long, at most this many (see openCached). */
const OPENED_CACHE_MS = 60_000;
const OPENED_CACHE_MAX = 10_000;
/** A touch-only rewrite is handed again, for this long, to requests presenting the same sealed session (see writeTouched). */
const TOUCHED_REUSE_MS = 10_000;
const TOUCHED_REUSE_MAX = 2_000;
/** A login writes its new session right after create(): ids not written by then are forgotten. */
const CREATED_MS = 10 * 60_000;
const CREATED_MAX = 10_000;

/**
 * What every session store shares: the cookie (SessionCookie), sealing and the
 * cache of opened payloads, the three timeouts, and the reuse of touch-only
 * rewrites. A store adds where the session lives: read, write, destroy.
 */
export abstract class BaseSessionStore implements SessionStore {
  readonly cookieName: string;
  readonly isSessionCookie: (name: string) => boolean;
  abstract readonly shared: boolean;
  protected readonly cookie: SessionCookie;
  private readonly sealingKey: Uint8Array;

  constructor(
    protected readonly config: OpenIdConnectConfig,
    secure: boolean,
    options: SessionStoreOptions = {},
  ) {
    this.cookie = new SessionCookie(config, secure, options.maxCookieBytes);
    this.cookieName = this.cookie.name;
    this.isSessionCookie = this.cookie.isSessionCookie;
    // A key per purpose and cookie name: a cookie minted for another purpose or route does not decrypt here.
    this.sealingKey = deriveKey(config.session_secret!, `gatehouse session ${config.session_cookie_name}`);
  }

  get attributes(): CookieAttributes {
    return this.cookie.attributes;
  }

  abstract read(req: IncomingMessage, now?: number): Promise<SessionData | undefined>;
  abstract write(s: SessionData, req: IncomingMessage, options?: WriteOptions): Promise<string[]>;
  abstract destroy(req: IncomingMessage, s?: SessionData): Promise<string[]>;
  abstract acquireRefreshLock(sid: string, ttlMs: number): Promise<boolean>;
  abstract releaseRefreshLock(sid: string): Promise<void>;
  abstract reload(req: IncomingMessage): Promise<SessionData | undefined>;
  abstract close(): Promise<void>;

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

  create(fields: Omit<SessionData, 'sid' | 'created' | 'renewed' | 'seen'>, now = epoch()): SessionData {
    const s = { sid: randomBytes(24).toString('base64url'), created: now, renewed: now, seen: now, ...fields };
    if (this.unwritten.size >= CREATED_MAX) this.unwritten.delete(this.unwritten.keys().next().value!);
    this.unwritten.set(s.sid, Date.now() + CREATED_MS);
    return s;
  }

  /**
   * Ids create() handed out and not yet written, by sid rather than object: a
   * caller may copy the session before writing it. A login that fails between
   * create() and write() leaves its id here until it is pushed out.
   */
  private readonly unwritten = new Map<string, number>();

  /** Whether this write creates the session (see WriteOptions.create); an id is created once. */
  protected isCreate(s: SessionData, options?: WriteOptions): boolean {
    const until = this.unwritten.get(s.sid);
    if (until !== undefined) this.unwritten.delete(s.sid);
    return options?.create ?? (until !== undefined && until > Date.now());
  }

  /**
   * write() for a session changed only by touch(). Every request that presents
   * the same sealed session finds it equally stale: a page's parallel requests
   * sent before the browser saw the first rewrite, or a client that ignores
   * Set-Cookie. Each would otherwise pay a JWE (and, with Redis, a write) and get
   * a different cookie. The first rewrite is handed to the others for
   * TOUCHED_REUSE_MS, keyed by the sealed value the session was read from (the
   * exact content, never just its sid); that only delays `seen` by at most the
   * window, and touch() advances it in steps anyway.
   */
  async writeTouched(s: SessionData, req: IncomingMessage): Promise<string[]> {
    const from = this.readFrom.get(s);
    const now = Date.now();
    if (from !== undefined) {
      const hit = this.touched.get(from, now);
      if (hit) return hit;
    }
    const cookies = await this.writeTouchedFrom(s, req, from);
    if (from !== undefined) this.touched.set(from, cookies, TOUCHED_REUSE_MS, now);
    return cookies;
  }

  /** Writes a touched session; `from` is the sealed value read() opened it from, if it came from read(). */
  protected writeTouchedFrom(s: SessionData, req: IncomingMessage, _from: string | undefined): Promise<string[]> {
    return this.write(s, req);
  }

  private readonly touched = new BoundedCache<string, string[]>(TOUCHED_REUSE_MAX);

  /** Records the sealed value a session handed out by read() was opened from. */
  protected remember(s: SessionData, sealed: string): void {
    this.readFrom.set(s, sealed);
  }

  private readonly readFrom = new WeakMap<SessionData, string>();

  /** Seconds until the nearest timeout: the cookie's Max-Age (and the stored copy's lifetime). */
  protected maxAge(s: SessionData, now = epoch()): number {
    const c = this.config;
    const limits = [
      c.session_absolute_timeout > 0 ? s.created + c.session_absolute_timeout - now : Infinity,
      c.session_rolling_timeout > 0 ? s.renewed + c.session_rolling_timeout - now : Infinity,
      c.session_idling_timeout > 0 ? s.seen + c.session_idling_timeout - now : Infinity,
    ];
    const left = Math.min(...limits);
    return Number.isFinite(left) ? Math.max(0, Math.floor(left)) : 86_400;
  }

  /** The decrypted content of the session cookie (all chunks reassembled), or undefined. */
  protected async cookiePayload(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const value = this.cookie.value(req);
    return value === undefined ? undefined : this.openCached(value);
  }

  /**
   * Decrypting the cookie on every request of a browser session costs more than
   * the rest of the request; the same sealed value always decrypts to the same
   * payload, so decrypted payloads are kept briefly, keyed by the whole sealed
   * value (timeouts are still checked on every use). Copies are handed out, so a
   * caller's changes never leak into the cache.
   */
  protected async openCached(value: string): Promise<Record<string, unknown> | undefined> {
    const hit = this.opened.get(value);
    if (hit) return { ...hit };
    const payload = await this.open(value);
    if (!payload) return undefined;
    this.opened.set(value, payload, OPENED_CACHE_MS);
    return { ...payload };
  }

  private readonly opened = new BoundedCache<string, Record<string, unknown>>(OPENED_CACHE_MAX);

  seal(payload: Record<string, unknown>): Promise<string> {
    return sealJwe(payload, this.sealingKey);
  }

  open(value: string): Promise<Record<string, unknown> | undefined> {
    return openJwe(value, this.sealingKey);
  }
}
