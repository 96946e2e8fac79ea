import type { IncomingMessage } from 'node:http';
import type { CookieAttributes } from '../cookies.js';
import type { SessionData } from './session-data.js';

export interface SessionStoreOptions {
  /**
   * Bytes the session's cookies may take in a request's Cookie header; a write
   * that needs more throws SessionTooLargeError. Derive it from the gateway's
   * header limit with sessionCookieBudget(). Default: DEFAULT_MAX_COOKIE_BYTES.
   */
  maxCookieBytes?: number;
}

export interface WriteOptions {
  /**
   * True for a login's first write: the session is created, never replaces one.
   * False: the session is updated only while it still exists, so a write that
   * raced a logout does not bring it back. Default: true exactly for the
   * session create() returned (by id), until its first write.
   */
  create?: boolean;
}

/**
 * Where browser sessions live: in the cookie itself (CookieSessionStore) or in
 * Redis behind a sealed reference (RedisSessionStore). Both speak cookies the
 * same way (SessionCookie). A session that cannot be read (tampered, foreign,
 * expired, destroyed) is no session, never an error; a store that cannot be
 * reached is SessionStoreUnavailableError (503).
 */
export interface SessionStore {
  /** The first (or only) cookie's name, `__Host-` prefixed where allowed. */
  readonly cookieName: string;
  readonly attributes: CookieAttributes;
  /** True when sessions live in Redis, shared by every gateway instance. */
  readonly shared: boolean;
  /** Names of every cookie this store may have set on the request (all chunks). A property: usable as a filter as is. */
  readonly isSessionCookie: (name: string) => boolean;

  /** Reads and validates the session; undefined when absent, unreadable, timed out or destroyed. */
  read(req: IncomingMessage, now?: number): Promise<SessionData | undefined>;
  /** The session as stored now (shared stores only, else undefined), to pick up what another instance wrote. */
  reload(req: IncomingMessage): Promise<SessionData | undefined>;
  alive(s: SessionData, now?: number): boolean;
  /** Marks the session used; true when it changed enough to be written again. */
  touch(s: SessionData, now?: number): boolean;
  /** A brand-new session for a fresh login (new sid: never reuse one a client presented). */
  create(fields: Omit<SessionData, 'sid' | 'created' | 'renewed' | 'seen'>, now?: number): SessionData;
  /** Stores the session; Set-Cookie headers for the response (none when an update found the session gone). */
  write(s: SessionData, req: IncomingMessage, options?: WriteOptions): Promise<string[]>;
  /** write() for a session changed only by touch(): one rewrite is shared by the requests presenting the same session. */
  writeTouched(s: SessionData, req: IncomingMessage): Promise<string[]>;
  /** Ends the session (the one given, else the one the cookie names); Set-Cookie headers deleting every chunk. */
  destroy(req: IncomingMessage, s?: SessionData): Promise<string[]>;

  /** A short cross-instance lock so that only one gateway refreshes a session's tokens; true when acquired (always, unshared). */
  acquireRefreshLock(sid: string, ttlMs: number): Promise<boolean>;
  releaseRefreshLock(sid: string): Promise<void>;

  seal(payload: Record<string, unknown>): Promise<string>;
  open(value: string): Promise<Record<string, unknown> | undefined>;
  close(): Promise<void>;
}
