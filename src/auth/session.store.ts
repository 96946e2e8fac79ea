import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { CookieSessionStore } from './session/cookie-session.store.js';
import { RedisSessionStore } from './session/redis-session.store.js';
import type { SessionStore as Store, SessionStoreOptions } from './session/session-store.js';

/**
 * Browser sessions: the store an openid-connect plugin's `session_storage`
 * names, behind one interface (src/auth/session/). This file is the entry point.
 */

export { deriveKey, openJwe, sealJwe } from './session/jwe.js';
export { epoch, type SessionData } from './session/session-data.js';
export type { SessionStoreOptions, WriteOptions } from './session/session-store.js';
export {
  cookieSessionCapacity,
  DEFAULT_MAX_COOKIE_BYTES,
  HEADER_RESERVE_BYTES,
  sessionCapacityWarning,
  sessionCookieBudget,
  TYPICAL_TOKEN_BYTES,
} from './session/session-cookie.js';
export { REDIS_TIMEOUT_MS } from '../common/redis-client.registry.js';
export { CookieSessionStore, RedisSessionStore };

export type SessionStore = Store;

export function createSessionStore(config: OpenIdConnectConfig, secure: boolean, options: SessionStoreOptions = {}): SessionStore {
  return config.session_storage === 'redis' ? new RedisSessionStore(config, secure, options) : new CookieSessionStore(config, secure, options);
}

/** `new SessionStore(config, secure)` keeps working: it builds the store createSessionStore() would. */
export const SessionStore = function SessionStore(config: OpenIdConnectConfig, secure: boolean, options?: SessionStoreOptions): SessionStore {
  return createSessionStore(config, secure, options);
} as unknown as new (config: OpenIdConnectConfig, secure: boolean, options?: SessionStoreOptions) => SessionStore;
