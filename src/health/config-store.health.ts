import type { DatabaseKind } from '../config/config-store.js';

export const STORE_UNREACHABLE_MESSAGE = 'configuration database unreachable: serving the last good config';

/**
 * Whether the config store a gateway follows can be reached, for readiness
 * details. An unreachable store does not make the gateway unready: it keeps
 * routing with its last applied config, which is exactly what it should do
 * while the database is down (Kong's traditional mode does the same), so a
 * load balancer must not take every instance out at once. The detail tells the
 * operator that changes are not arriving meanwhile.
 */
export class ConfigStoreHealth {
  private followed?: { kind: DatabaseKind; source: string };
  private outage?: { since: Date; error: string };

  /** Called when the process starts following a store. */
  follow(kind: DatabaseKind, source: string): void {
    this.followed = { kind, source };
  }

  lost(err: Error): void {
    if (!this.outage) this.outage = { since: new Date(), error: err.message };
    else this.outage.error = err.message;
  }

  recovered(): void {
    this.outage = undefined;
  }

  get reachable(): boolean {
    return this.outage === undefined;
  }

  /** The readiness detail, or undefined when no store is followed (a plain file at start, the demo without a store). */
  detail(): Record<string, unknown> | undefined {
    if (!this.followed) return undefined;
    const { kind, source } = this.followed;
    if (!this.outage) return { kind, source, reachable: true };
    return { kind, source, reachable: false, since: this.outage.since.toISOString(), error: this.outage.error, message: STORE_UNREACHABLE_MESSAGE };
  }
}
