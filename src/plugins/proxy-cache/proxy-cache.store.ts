/** One stored response. */
export interface CachedResponse {
  status: number;
  /** Node's flat `[name, value, …]` list as sent to the client, minus the headers rewritten per hit. */
  headers: string[];
  body: Buffer;
  /** When it was stored (ms since the epoch), minus the Age the upstream reported. */
  storedAt: number;
  /** Seconds it may be served after storedAt. */
  ttl: number;
}

/**
 * An in-process LRU bounded by bytes (bodies, header text, keys). A Map keeps
 * insertion order, so re-inserting on a hit makes it the most recent and the
 * first key is always the least recently used. Entries past their storage
 * lifetime are dropped when met.
 */
export class MemoryStore {
  private readonly entries = new Map<string, { value: CachedResponse; bytes: number; expiresAt: number }>();
  private used = 0;

  constructor(readonly maxBytes: number) {}

  get(key: string, now: number): CachedResponse | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    if (e.expiresAt <= now) {
      this.used -= e.bytes;
      return undefined;
    }
    this.entries.set(key, e);
    return e.value;
  }

  /** Keeps `value` for `storageTtl` seconds; an entry larger than the whole store is not kept. */
  set(key: string, value: CachedResponse, storageTtl: number): void {
    const bytes = sizeOf(key, value);
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.used -= old.bytes;
    }
    if (bytes > this.maxBytes) return;
    this.used += bytes;
    this.entries.set(key, { value, bytes, expiresAt: value.storedAt + storageTtl * 1000 });
    for (const [k, e] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(k);
      this.used -= e.bytes;
    }
  }

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Bytes an entry holds: the body, the header strings (UTF-16 in V8, counted as 2 bytes a character), the key, and a fixed overhead. */
function sizeOf(key: string, v: CachedResponse): number {
  let chars = key.length;
  for (const h of v.headers) chars += h.length;
  return v.body.length + chars * 2 + 200;
}

/**
 * The Redis form of an entry: a 4-byte length, the metadata as JSON, then the
 * body bytes: one GET/SET each, the body never base64-inflated.
 */
export function encodeEntry(v: CachedResponse): Buffer {
  const meta = Buffer.from(JSON.stringify({ s: v.status, h: v.headers, t: v.storedAt, l: v.ttl }));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(meta.length, 0);
  return Buffer.concat([head, meta, v.body]);
}

export function decodeEntry(buf: Buffer): CachedResponse | undefined {
  if (buf.length < 4) return undefined;
  const metaLength = buf.readUInt32BE(0);
  if (4 + metaLength > buf.length) return undefined;
  try {
    const meta = JSON.parse(buf.subarray(4, 4 + metaLength).toString('utf8')) as { s: number; h: string[]; t: number; l: number };
    if (typeof meta.s !== 'number' || !Array.isArray(meta.h) || typeof meta.t !== 'number' || typeof meta.l !== 'number') return undefined;
    return { status: meta.s, headers: meta.h, storedAt: meta.t, ttl: meta.l, body: buf.subarray(4 + metaLength) };
  } catch {
    return undefined;
  }
}
