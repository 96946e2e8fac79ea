import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/), the part every
 * request needs whether or not spans are recorded: reading an incoming
 * `traceparent`, and making ids for a trace the gateway starts. Pure functions
 * over strings; the OpenTelemetry SDK is never loaded for this.
 */

/** A valid incoming `traceparent`, as its three fields (lower-case hex). */
export interface TraceParent {
  traceId: string;
  parentId: string;
  /** The two hex digits of trace-flags (bit 0: sampled). */
  flags: string;
}

const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';

/** Lower-case hex only (§3.2.2: upper-case is invalid, not to be normalised). */
function isHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * Parses `traceparent` (§3.2). Version 00 must be exactly 55 characters; a
 * later version is read by its first four fields when what follows them
 * starts with `-` (§4.3, "versioning of traceparent"); `ff` is never valid.
 * An all-zero trace-id or parent-id is invalid. Anything invalid is
 * undefined: the gateway then starts a new trace and drops `tracestate`
 * (§3.3.1.3 ties tracestate to a traceparent it could parse).
 * Node joins repeated headers with ", ", so two `traceparent` fields are
 * invalid too, as §3.2 requires.
 */
export function parseTraceparent(value: string | undefined): TraceParent | undefined {
  if (value === undefined || value.length < 55) return undefined;
  if (value.charCodeAt(2) !== 0x2d || value.charCodeAt(35) !== 0x2d || value.charCodeAt(52) !== 0x2d) return undefined;
  if (!isHex(value, 0, 2) || !isHex(value, 3, 35) || !isHex(value, 36, 52) || !isHex(value, 53, 55)) return undefined;
  const version = value.slice(0, 2);
  if (version === 'ff') return undefined;
  if (version === '00' ? value.length !== 55 : value.length > 55 && value.charCodeAt(55) !== 0x2d) return undefined;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_SPAN_ID) return undefined;
  return { traceId, parentId, flags: value.slice(53, 55) };
}

/** `00-<trace-id>-<parent-id>-<flags>`: always version 00, the version this gateway speaks (§4.3). */
export function formatTraceparent(traceId: string, spanId: string, flags: string): string {
  return `00-${traceId}-${spanId}-${flags}`;
}

const TRACESTATE_MAX = 512;
/** One list-member (§3.3.1.3): a key (simple or tenant@system) and a value of printable ASCII but `,` and `=`, not ending in a space. */
const MEMBER = /^[ \t]*(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e][ \t]*$/;

/**
 * The incoming `tracestate` to pass on, or undefined when it is absent or
 * malformed (§3.3.1.5 lets a vendor drop a tracestate it cannot parse rather
 * than forward garbage). At most 32 members and 512 characters, as §3.3.1.1
 * and §3.3.1.5 allow a vendor to enforce; empty members are allowed.
 */
export function validTracestate(value: string | undefined): string | undefined {
  if (!value || value.length > TRACESTATE_MAX) return undefined;
  const members = value.split(',');
  if (members.length > 32) return undefined;
  for (const m of members) if (m.trim() !== '' && !MEMBER.test(m)) return undefined;
  return value;
}

/**
 * Random ids from a pooled buffer refilled 4 KiB at a time: one
 * `randomFillSync` per ~170 new traces instead of one per id. §3.2.2.3 asks
 * for random trace-ids (the W3C "random" flag level 2 relies on it);
 * crypto-quality randomness costs nothing extra here.
 */
const POOL = Buffer.allocUnsafe(4096);
let poolOffset = POOL.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const hex = POOL.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

export function newTraceId(): string {
  const id = randomHex(16);
  return id === ZERO_TRACE_ID ? newTraceId() : id;
}

export function newSpanId(): string {
  const id = randomHex(8);
  return id === ZERO_SPAN_ID ? newSpanId() : id;
}
