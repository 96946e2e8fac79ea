import type { Logger } from 'pino';
import type { ReadinessState } from './readiness.state.js';

export interface Stoppable {
  readonly readiness: ReadinessState;
  /** Stop accepting, let in-flight requests finish (bounded by GATEHOUSE_SHUTDOWN_TIMEOUT), close pools. */
  shutdown(): Promise<void>;
}

/**
 * The termination sequence Kubernetes expects of a pod behind a Service or an
 * ingress. On SIGTERM the pod is removed from its endpoints, but kube-proxy,
 * ingress controllers and cloud load balancers learn that a moment later and
 * keep sending until then; a process that stops accepting at once refuses
 * those requests. So:
 *
 * 1. readiness turns to 503 `{"message":"draining"}` at once, and responses
 *    carry `Connection: close` so keep-alive clients reconnect elsewhere;
 * 2. requests are still served for GATEHOUSE_SHUTDOWN_DELAY (the load
 *    balancers' time to stop sending);
 * 3. the listeners stop accepting, in-flight requests finish (bounded by
 *    GATEHOUSE_SHUTDOWN_TIMEOUT), upstream pools close; the process exits 0.
 *
 * A second signal skips what is left of the delay (an operator's second
 * Ctrl-C, or an orchestrator in a hurry); the drain itself stays bounded by
 * the shutdown timeout.
 */
export class ShutdownSequence {
  private done: Promise<void> | undefined;
  private skipDelay: (() => void) | undefined;
  private skipped = false;

  constructor(
    private readonly gateway: Stoppable,
    private readonly delayMs: number,
    private readonly logger: Logger,
  ) {}

  /** The first signal starts the sequence and gets its completion; later ones skip the delay and get undefined. */
  signal(signal: string): Promise<void> | undefined {
    if (this.done) {
      if (!this.skipped && this.skipDelay) {
        this.skipped = true;
        this.logger.info({ signal }, 'shutting down now: the rest of the shutdown delay is skipped');
        this.skipDelay();
      }
      return undefined;
    }
    this.done = this.run(signal);
    return this.done;
  }

  private async run(signal: string): Promise<void> {
    this.gateway.readiness.startDraining('signal');
    if (this.delayMs > 0) {
      this.logger.info(
        { signal, delay_ms: this.delayMs },
        'shutting down: readiness is 503 (draining), still serving until load balancers stop sending; send the signal again to skip the delay',
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.delayMs);
        this.skipDelay = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    await this.gateway.shutdown();
  }
}
