import type { WindowName } from './rate-limiting.schema.js';

/**
 * Kong's fixed windows, in UTC: a window starts on the second, minute, hour,
 * day, calendar month or calendar year, and every request in it counts
 * against the same counter, which starts from zero in the next. A caller can
 * therefore spend up to twice a limit across a boundary (the end of one window
 * and the start of the next) — Kong's behaviour, and what makes one counter
 * (one Redis key) per window enough.
 */

const FIXED_MS: Partial<Record<WindowName, number>> = {
  second: 1_000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/** Start of the window containing `now` (ms since the epoch). */
export function windowStart(window: WindowName, now: number): number {
  const size = FIXED_MS[window];
  if (size !== undefined) return now - (now % size);
  const d = new Date(now);
  return window === 'month' ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) : Date.UTC(d.getUTCFullYear(), 0, 1);
}

/** End (exclusive) of the window that starts at `start`. */
export function windowEnd(window: WindowName, start: number): number {
  const size = FIXED_MS[window];
  if (size !== undefined) return start + size;
  const d = new Date(start);
  return window === 'month' ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) : Date.UTC(d.getUTCFullYear() + 1, 0, 1);
}
