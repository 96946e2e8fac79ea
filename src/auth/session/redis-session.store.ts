import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Redis } from 'ioredis';
import type { OpenIdConnectConfig } from '../../config/openid-connect.schema.js';
import { SessionStoreUnavailableError } from '../auth.errors.js';
import { BaseSessionStore } from './base-session.store.js';
import { redisClients, type RedisClientRegistry, type RedisLease } from '../../common/redis-client.registry.js';
import { isSessionData, type SessionData } from './session-data.js';
import type { SessionStoreOptions, WriteOptions } from './session-store.js';

/**
 * Replaces a stored session only if it still holds exactly what the caller read
 * (compared by SHA-1 of the sealed value: the sealing's random IV makes every
 * write unique). 1: written; 0: gone (destroyed or expired); -1: changed since.
 */
const UPDATE_IF_UNCHANGED = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if redis.sha1hex(current) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
`;

type ScriptedRedis = Redis & { gatehouseSessionUpdateIfUnchanged(key: string, sha1: string, value: string, ttl: number): Promise<number> };

/**
 * The session, sealed, in Redis under its id; the cookie holds only the sealed
 * id. Every instance using the same Redis shares the session, and a logout
 * anywhere ends it everywhere.
 *
 * A logout must stay a logout: a request that read the session before it and
 * writes after it (a touch, a refresh) must not store it again. So only a
 * login creates a session (SET NX); an update happens only while the session
 * exists (SET XX), and a touch only while the session is exactly what was read
 * (UPDATE_IF_UNCHANGED), which also keeps a late touch from overwriting tokens
 * a refresh stored meanwhile.
 */
export class RedisSessionStore extends BaseSessionStore {
  readonly shared = true;
  private readonly redis: RedisLease;

  constructor(config: OpenIdConnectConfig, secure: boolean, options: SessionStoreOptions = {}, registry: RedisClientRegistry = redisClients) {
    super(config, secure, options);
    this.redis = registry.acquire({
      host: config.redis.host,
      port: config.redis.port,
      db: config.redis.database,
      username: config.redis.username,
      password: config.redis.password,
    });
  }

  async read(req: IncomingMessage, now?: number): Promise<SessionData | undefined> {
    const ref = await this.cookiePayload(req);
    if (typeof ref?.sid !== 'string') return undefined;
    const sid = ref.sid;
    const stored = await this.call((r) => r.get(this.redisKey(sid)));
    if (!stored) return undefined;
    const data = await this.openCached(stored);
    if (!isSessionData(data) || data.sid !== sid || !this.alive(data, now)) return undefined;
    this.remember(data, stored);
    return data;
  }

  async reload(req: IncomingMessage): Promise<SessionData | undefined> {
    return this.read(req);
  }

  async write(s: SessionData, req: IncomingMessage, options?: WriteOptions): Promise<string[]> {
    const create = this.isCreate(s, options);
    const { cookies, sealed, ttl } = await this.prepare(s, req);
    if (create) {
      const ok = await this.call((r) => r.set(this.redisKey(s.sid), sealed, 'EX', ttl, 'NX'));
      // 192 random bits never collide: an existing id means this session was stored already.
      if (ok !== 'OK') throw new Error('session id already stored');
      return cookies;
    }
    const ok = await this.call((r) => r.set(this.redisKey(s.sid), sealed, 'EX', ttl, 'XX'));
    return ok === 'OK' ? cookies : [];
  }

  /** A touch is dropped when the session changed since it was read: the change is newer, or a logout. */
  protected override async writeTouchedFrom(s: SessionData, req: IncomingMessage, from: string | undefined): Promise<string[]> {
    if (from === undefined) return this.write(s, req);
    const { cookies, sealed, ttl } = await this.prepare(s, req);
    const version = createHash('sha1').update(from).digest('hex');
    const result = await this.call((r) => scripted(r).gatehouseSessionUpdateIfUnchanged(this.redisKey(s.sid), version, sealed, ttl));
    return result === 1 ? cookies : [];
  }

  /** The reference cookie (checked against the size limit before Redis is touched) and the sealed session. */
  private async prepare(s: SessionData, req: IncomingMessage) {
    const maxAge = this.maxAge(s);
    const cookies = this.cookie.serialize(await this.seal({ sid: s.sid }), maxAge, req);
    const sealed = await this.seal(s as unknown as Record<string, unknown>);
    return { cookies, sealed, ttl: Math.max(1, maxAge) };
  }

  async destroy(req: IncomingMessage, s?: SessionData): Promise<string[]> {
    // Without the session (a fresh login replacing one), the cookie still names the stored one: it must not outlive its cookie.
    const sid = s?.sid ?? (await this.cookiePayload(req))?.sid;
    if (typeof sid === 'string') await this.call((r) => r.del(this.redisKey(sid)));
    return this.cookie.clear(req);
  }

  /**
   * A short cross-instance lock (SET NX PX) so that only one gateway refreshes
   * a session's tokens; the others wait for its result. False when another
   * instance holds it.
   */
  async acquireRefreshLock(sid: string, ttlMs: number): Promise<boolean> {
    const ok = await this.call((r) => r.set(`${this.redisKey(sid)}:refresh`, '1', 'PX', ttlMs, 'NX'));
    return ok === 'OK';
  }

  async releaseRefreshLock(sid: string): Promise<void> {
    await this.call((r) => r.del(`${this.redisKey(sid)}:refresh`));
  }

  async close(): Promise<void> {
    this.redis.release();
  }

  private redisKey(sid: string): string {
    return `${this.config.redis.prefix}${sid}`;
  }

  private async call<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    try {
      return await this.redis.run(fn);
    } catch (err) {
      // Without the store, no session can be trusted or saved: fail closed, retry later.
      throw new SessionStoreUnavailableError('session store unavailable', err);
    }
  }
}

/** The client with UPDATE_IF_UNCHANGED as a command (EVALSHA, loaded on first use). */
function scripted(r: Redis): ScriptedRedis {
  const s = r as ScriptedRedis;
  if (typeof s.gatehouseSessionUpdateIfUnchanged !== 'function') r.defineCommand('gatehouseSessionUpdateIfUnchanged', { numberOfKeys: 1, lua: UPDATE_IF_UNCHANGED });
  return s;
}
