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
 * One round trip for all of a budget's windows, atomic in Redis: if any
 * window is already at its limit nothing is counted (Kong: a refused request
 * consumes nothing); otherwise every window is INCRemented, and a counter
 * created by this request gets its PEXPIRE. Because Redis runs scripts one at
 * a time, concurrent requests from any number of gateways see distinct counts:
 * exactly `limit` pass per window. Returns [passed (1|0), count₁, …].
 *
 * KEYS: one per window. ARGV: the limits, then each key's time to live (ms).
 */
const TAKE_SCRIPT = `
local n = #KEYS
local counts = {}
for i = 1, n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i + 1] = c
  if c >= tonumber(ARGV[i]) then
    counts[1] = 0
  end
end
if counts[1] == 0 then return counts end
counts[1] = 1
for i = 1, n do
  local c = redis.call('INCR', KEYS[i])
  if c == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + i]) end
  counts[i + 1] = c
end
return counts
`;

/**
 * Kept after its window ends, so a gateway whose clock is a little behind
 * still finds the counter others filled instead of starting a fresh one.
 */
const CLOCK_SKEW_MS = 1_000;

type ScriptClient = Redis & { gatehouseRateLimit?(numKeys: number, ...args: (string | number)[]): Promise<number[]> };

/** `policy: redis`: counters shared by every gateway using the same Redis. */
export class RedisCounters {
  constructor(
    private readonly lease: RedisLease,
    private readonly windows: readonly LimitWindow[],
    /** Names this plugin instance and budget, so instances and tiers never share counters. */
    private readonly prefix: string,
  ) {}

  take(id: string, now: number): Promise<Take> {
    const { windows, prefix } = this;
    const n = windows.length;
    const args: (string | number)[] = new Array(n * 3);
    for (let i = 0; i < n; i++) {
      const start = windowStart(windows[i].name, now);
      args[i] = `${prefix}${windows[i].name}:${start}:${id}`;
      args[n + i] = windows[i].limit;
      args[2 * n + i] = windowEnd(windows[i].name, start) - now + CLOCK_SKEW_MS;
    }
    return this.lease.run((client: ScriptClient) => {
      if (!client.gatehouseRateLimit) client.defineCommand('gatehouseRateLimit', { lua: TAKE_SCRIPT });
      return client.gatehouseRateLimit!(n, ...args);
    }).then((r) => ({ passed: r[0] === 1, counts: r.slice(1) }));
  }

  release(): void {
    this.lease.release();
  }
}
