/**
 * A Map with a size bound and a lifetime per entry: the one cache shape the
 * auth code needs (introspection results, userinfo, refreshed sessions,
 * decrypted cookies). When full, the oldest insertion goes first; an expired
 * entry is never returned and is dropped when met. Nothing runs on a timer, so
 * an idle gateway holds no work for it.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {
    if (!(maxEntries > 0)) throw new RangeError('maxEntries must be positive');
  }

  get(key: K, now = Date.now()): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Keeps `value` for `ttlMs` (nothing is stored for a lifetime of zero or less). */
  set(key: K, value: V, ttlMs: number, now = Date.now()): void {
    this.entries.delete(key);
    if (!(ttlMs > 0)) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, { value, expiresAt: now + ttlMs });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
