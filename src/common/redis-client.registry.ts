import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';

/**
 * How long any one Redis call may take, connecting included, before its user
 * (session store, rate limiter, cache) counts Redis as down. A healthy Redis
 * answers O(1) commands in well under a millisecond, a few across zones; its
 * own stalls (fork for a snapshot, a slow fsync) last tens to hundreds of
 * milliseconds. A second is far above both, yet short enough that a hung,
 * overloaded or unreachable Redis turns into a prompt 503 instead of requests
 * piling up until the client or its load balancer gives up (typically 30–60 s).
 * A session request makes at most three calls in a row.
 */
export const REDIS_TIMEOUT_MS = 1_000;

/** Reconnect delay: 50 ms doubling, at most this much, for ever; Redis coming back is noticed within it. */
const MAX_RECONNECT_DELAY_MS = 1_000;

export interface RedisServerOptions {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
}

/** One user's share of a client (a session store, a rate-limiting policy, a cache). */
export interface RedisLease {
  /** Runs `fn` once the client is connected; rejects when not connected, or not answered, within REDIS_TIMEOUT_MS. */
  run<T>(fn: (client: Redis) => Promise<T>): Promise<T>;
  /** Ends this use; the client closes with its last user. Safe to call twice. */
  release(): void;
}

interface Entry {
  client: Redis;
  users: number;
  /** Resolves at the client's next `ready`, shared by every caller waiting for it. */
  ready?: Promise<void>;
}

/**
 * One Redis client per server, database and credentials, shared by every
 * plugin instance that names them (sessions, rate-limiting counters, cache) (reference-counted), rather than one
 * connection per route: a gateway with many routes would otherwise hold as
 * many connections, each paying its own reconnects.
 *
 * Every call is bounded (REDIS_TIMEOUT_MS): a Redis that does not answer is
 * down, not merely slow. The client does not queue commands while
 * disconnected (a queued command would still run after its caller got 503),
 * does not resend commands cut off by a lost connection, drops a connection on
 * which a command got no byte back within the timeout (a partition leaves TCP
 * open for minutes), and reconnects by itself.
 */
export class RedisClientRegistry {
  private readonly entries = new Map<string, Entry>();

  acquire(server: RedisServerOptions): RedisLease {
    const key = registryKey(server);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { client: createClient(server), users: 0 };
      this.entries.set(key, entry);
    }
    entry.users++;
    const e = entry;
    let released = false;
    return {
      run: (fn) => this.run(e, fn),
      release: () => {
        if (released) return;
        released = true;
        if (--e.users > 0) return;
        this.entries.delete(key);
        e.client.disconnect();
      },
    };
  }

  /** Clients open now (one per distinct server, database and credentials). */
  get size(): number {
    return this.entries.size;
  }

  private async run<T>(e: Entry, fn: (client: Redis) => Promise<T>): Promise<T> {
    if (e.client.status !== 'ready') await this.connected(e);
    return fn(e.client);
  }

  private connected(e: Entry): Promise<void> {
    const client = e.client;
    if (client.status === 'wait' || client.status === 'end') client.connect().catch(() => undefined);
    e.ready ??= new Promise<void>((resolve) =>
      client.once('ready', () => {
        e.ready = undefined;
        resolve();
      }),
    );
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no connection to Redis within ${REDIS_TIMEOUT_MS} ms (${client.status})`)), REDIS_TIMEOUT_MS);
    });
    return Promise.race([e.ready, timeout]).finally(() => clearTimeout(timer));
  }
}

/** The process's registry: every session store uses it. */
export const redisClients = new RedisClientRegistry();

/** The password only as a digest: keys may end up in a debugger or a heap dump. */
function registryKey(s: RedisServerOptions): string {
  const password = s.password === undefined ? '' : createHash('sha256').update(s.password).digest('base64url');
  return JSON.stringify([s.host, s.port, s.db, s.username ?? '', password]);
}

function createClient(s: RedisServerOptions): Redis {
  const client = new Redis({
    host: s.host,
    port: s.port,
    username: s.username,
    password: s.password,
    db: s.db,
    connectionName: 'gatehouse-sessions',
    lazyConnect: true,
    connectTimeout: REDIS_TIMEOUT_MS,
    commandTimeout: REDIS_TIMEOUT_MS,
    socketTimeout: REDIS_TIMEOUT_MS,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 10), MAX_RECONNECT_DELAY_MS),
  });
  client.on('error', () => undefined); // reported per request as 503
  return client;
}
