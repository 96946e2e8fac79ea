/** Who turned readiness to draining: a signal, `POST /status/ready`, or another worker of the same gateway. */
export type DrainOrigin = 'signal' | 'status-api' | 'cluster';

/**
 * The lifecycle load balancers see: serving, then draining for good. Draining
 * is one-way (as Kong's `kong drain`: only a restart makes a node ready again)
 * because it is the first step of a shutdown; requests are still served while
 * draining, and readiness answers 503 `{"message":"draining"}` so Kubernetes
 * endpoints and load balancers stop sending new ones.
 */
export class ReadinessState {
  private since: Date | undefined;
  private readonly listeners: ((origin: DrainOrigin) => void)[] = [];

  get draining(): boolean {
    return this.since !== undefined;
  }

  get drainingSince(): Date | undefined {
    return this.since;
  }

  /** Returns false when already draining (listeners run once). */
  startDraining(origin: DrainOrigin): boolean {
    if (this.since) return false;
    this.since = new Date();
    for (const listener of this.listeners) listener(origin);
    return true;
  }

  onDraining(listener: (origin: DrainOrigin) => void): void {
    this.listeners.push(listener);
  }
}
