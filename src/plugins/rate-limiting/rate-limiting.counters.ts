import type { Redis } from 'ioredis';
import type { RedisLease } from '../../common/redis-client.registry.js';
import type { WindowName } from './rate-limiting.schema.js';
import { windowEnd, windowStart } from './rate-limiting.windows.js';

/** One limited window of a budget, with everything the headers need precomputed at load. */
export interface LimitWindow {
  readonly name: WindowName;
  readonly limit: number;
  readonly limitText: string;
  readonly limitHeader: string;
  readonly remainingHeader: string;
}

/**
 * What one request did to its budget: `counts[i]` is window i's count after
 * this request when it passed, or the count that refused it (not increased:
 * as in Kong, a refused request consumes nothing).
 */
export interface Take {
  passed: boolean;
  counts: number[];
}

/**
 * Most distinct callers one local window remembers. At ~100 bytes an entry
 * this is ~10 MB per window and plugin instance; past it the caller seen
 * longest ago in this window is forgotten (its count starts again), which
 * favours that caller rather than refusing anyone or growing without bound.
 */
export const LOCAL_MAX_CALLERS = 100_000;

interface LocalWindowState {
  start: number;
  end: number;
  counts: Map<string, number>;
}

/**
 * `policy: local`: counters in this process, decided synchronously. Each
 * window holds one map for its current period; when the period ends the whole
 * map is dropped (expired windows cost nothing to clean up).
 */
export class LocalCounters {
  private readonly states: LocalWindowState[];

  constructor(private readonly windows: readonly LimitWindow[]) {
    this.states = windows.map(() => ({ start: 0, end: 0, counts: new Map() }));
  }

  take(id: string, now: number): Take {
    const { windows, states } = this;
    const counts = new Array<number>(windows.length);
    let passed = true;
    for (let i = 0; i < windows.length; i++) {
      const s = states[i];
      if (now >= s.end) {
        s.start = windowStart(windows[i].name, now);
        s.end = windowEnd(windows[i].name, s.start);
        s.counts.clear();
      }
      const c = s.counts.get(id) ?? 0;
      counts[i] = c;
      if (c >= windows[i].limit) passed = false;
    }
    if (!passed) return { passed, counts };
    for (let i = 0; i < windows.length; i++) {
      const m = states[i].counts;
      const c = counts[i] + 1;
      if (c === 1 && m.size >= LOCAL_MAX_CALLERS) m.delete(m.keys().next().value!);
      m.set(id, c);
      counts[i] = c;
    }
    return { passed, counts };
  }
}

/**
 * One round trip for a batch of requests, atomic in Redis. For each request in
 * turn (KEYS: its n window counters): if any window is already at its limit
 * nothing is counted (Kong: a refused request consumes nothing); otherwise
 * every window is INCRemented, and a counter created by this request gets its
 * PEXPIRE. Redis runs one script at a time and the script takes the requests
 * in order, so concurrent requests from any number of gateways see distinct
 * counts: exactly `limit` pass per window.
 *
 * ARGV: n, the n limits, the n times to live (ms). Returns, per request,
 * passed (1|0) then its n counts.
 */
const TAKE_SCRIPT = `
local n = tonumber(ARGV[1])
local out = {}
local k = 0
for r = 0, #KEYS / n - 1 do
  local base = r * n
  local passed = 1
  for i = 1, n do
    local c = tonumber(redis.call('GET', KEYS[base + i]) or '0')
    out[k + 1 + i] = c
    if c >= tonumber(ARGV[1 + i]) then passed = 0 end
  end
  if passed == 1 then
    for i = 1, n do
      local c = redis.call('INCR', KEYS[base + i])
      if c == 1 then redis.call('PEXPIRE', KEYS[base + i], ARGV[1 + n + i]) end
      out[k + 1 + i] = c
    end
  end
  out[k + 1] = passed
  k = k + 1 + n
end
return out
`;

/**
 * Kept after its window ends, so a gateway whose clock is a little behind
 * still finds the counter others filled instead of starting a fresh one.
 */
const CLOCK_SKEW_MS = 1_000;

/**
 * Requests per script call at most: a script blocks Redis while it runs
 * (~1 µs per command), so a batch stays well under a millisecond.
 */
const MAX_BATCH = 256;

type ScriptClient = Redis & { gatehouseRateLimit?(numKeys: number, ...args: (string | number)[]): Promise<number[]> };

interface Pending {
  id: string;
  resolve(take: Take): void;
  reject(err: unknown): void;
}

/**
 * `policy: redis`: counters shared by every gateway using the same Redis.
 * Requests that arrive in the same turn of the event loop (everything read in
 * one I/O poll) go to Redis in one script call, counted one after the other:
 * exact as one call per request, at a fraction of the round trips and of the
 * client's per-command cost (measured in bench case 10-rl-redis).
 */
export class RedisCounters {
  private queue: Pending[] = [];

  constructor(
    private readonly lease: RedisLease,
    private readonly windows: readonly LimitWindow[],
    /** Names this plugin instance and budget, so instances and tiers never share counters. */
    private readonly prefix: string,
  ) {}

  take(id: string): Promise<Take> {
    return new Promise<Take>((resolve, reject) => {
      if (this.queue.push({ id, resolve, reject }) === 1) setImmediate(this.flush);
    });
  }

  /** Which window each count belongs to is decided here, for the whole batch (the requests arrived within this turn). */
  private readonly flush = (): void => {
    const queue = this.queue;
    this.queue = [];
    const now = Date.now();
    const { windows, prefix } = this;
    const n = windows.length;
    const keyParts: string[] = new Array(n);
    const args: (string | number)[] = [n];
    for (let i = 0; i < n; i++) {
      const start = windowStart(windows[i].name, now);
      keyParts[i] = `${prefix}${windows[i].name}:${start}:`;
      args.push(windows[i].limit);
    }
    for (let i = 0; i < n; i++) {
      const start = windowStart(windows[i].name, now);
      args.push(windowEnd(windows[i].name, start) - now + CLOCK_SKEW_MS);
    }
    for (let from = 0; from < queue.length; from += MAX_BATCH) {
      const batch = queue.slice(from, from + MAX_BATCH);
      const keys: string[] = new Array(batch.length * n);
      for (let r = 0; r < batch.length; r++) for (let i = 0; i < n; i++) keys[r * n + i] = keyParts[i] + batch[r].id;
      this.lease
        .run((client: ScriptClient) => {
          if (!client.gatehouseRateLimit) client.defineCommand('gatehouseRateLimit', { lua: TAKE_SCRIPT });
          return client.gatehouseRateLimit!(keys.length, ...keys, ...args);
        })
        .then(
          (out) => {
            for (let r = 0; r < batch.length; r++) {
              const at = r * (n + 1);
              batch[r].resolve({ passed: out[at] === 1, counts: out.slice(at + 1, at + 1 + n) });
            }
          },
          (err: unknown) => {
            for (const p of batch) p.reject(err);
          },
        );
    }
  };

  release(): void {
    this.lease.release();
  }
}
