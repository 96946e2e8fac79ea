import type { IncomingMessage } from 'node:http';
import { BaseSessionStore } from './base-session.store.js';
import { isSessionData, type SessionData } from './session-data.js';

/**
 * The whole session, sealed, in the cookie (chunked when large). Nothing is
 * kept server-side, so nothing is shared between instances and a logout cannot
 * revoke a copy of the cookie: it only asks the browser to delete it.
 */
export class CookieSessionStore extends BaseSessionStore {
  readonly shared = false;

  async read(req: IncomingMessage, now?: number): Promise<SessionData | undefined> {
    const sealed = this.cookie.value(req);
    if (sealed === undefined) return undefined;
    const data = await this.openCached(sealed);
    if (!isSessionData(data) || !this.alive(data, now)) return undefined;
    this.remember(data, sealed);
    return data;
  }

  async write(s: SessionData, req: IncomingMessage): Promise<string[]> {
    this.isCreate(s); // a cookie is its own storage: creating and updating are the same
    return this.cookie.serialize(await this.seal(s as unknown as Record<string, unknown>), this.maxAge(s), req);
  }

  async destroy(req: IncomingMessage): Promise<string[]> {
    return this.cookie.clear(req);
  }

  async acquireRefreshLock(): Promise<boolean> {
    return true;
  }

  async releaseRefreshLock(): Promise<void> {}

  async reload(): Promise<SessionData | undefined> {
    return undefined;
  }

  async close(): Promise<void> {}
}
