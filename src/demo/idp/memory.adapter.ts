/**
 * oidc-provider adapter backed by one Map shared by every provider instance of
 * this IdP (so key rotation keeps sessions and tokens). Expired entries are
 * dropped when read and swept every 1000 writes.
 */
export class MemoryStorage {
  private readonly entries = new Map<string, { payload: Record<string, any>; expiresAt: number }>();
  /** grantId → keys of the tokens issued under it (for revokeByGrantId). */
  private readonly grants = new Map<string, Set<string>>();
  /** Session uid / device user code → storage key. */
  private readonly index = new Map<string, string>();
  private writes = 0;

  adapter(model: string) {
    const key = (id: string) => `${model}:${id}`;
    return {
      upsert: async (id: string, payload: Record<string, any>, expiresIn?: number) => {
        const k = key(id);
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
        this.entries.set(k, { payload: structuredClone(payload), expiresAt });
        if (payload.grantId) {
          let set = this.grants.get(payload.grantId);
          if (!set) this.grants.set(payload.grantId, (set = new Set()));
          set.add(k);
        }
        if (model === 'Session' && payload.uid) this.index.set(`uid:${payload.uid}`, k);
        if (payload.userCode) this.index.set(`userCode:${payload.userCode}`, k);
        if (++this.writes % 1000 === 0) this.sweep();
      },
      find: async (id: string) => this.get(key(id)),
      findByUid: async (uid: string) => this.get(this.index.get(`uid:${uid}`)),
      findByUserCode: async (code: string) => this.get(this.index.get(`userCode:${code}`)),
      consume: async (id: string) => {
        const e = this.entries.get(key(id));
        if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
      },
      destroy: async (id: string) => {
        this.entries.delete(key(id));
      },
      revokeByGrantId: async (grantId: string) => {
        for (const k of this.grants.get(grantId) ?? []) this.entries.delete(k);
        this.grants.delete(grantId);
      },
    };
  }

  private get(k: string | undefined) {
    if (!k) return undefined;
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.entries.delete(k);
      return undefined;
    }
    return structuredClone(e.payload);
  }

  private sweep() {
    const now = Date.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    for (const [k, v] of this.index) if (!this.entries.has(v)) this.index.delete(k);
    for (const [g, keys] of this.grants) {
      for (const k of keys) if (!this.entries.has(k)) keys.delete(k);
      if (!keys.size) this.grants.delete(g);
    }
  }
}
