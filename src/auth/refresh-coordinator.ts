import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import type { SessionData } from './session.store.js';

/**
 * Makes a session's token refresh happen once across the worker processes of
 * one gateway (GATEHOUSE_WORKERS > 1) when sessions live in cookies. A
 * browser's parallel requests arrive on several connections, and the cluster
 * hands connections to different workers; each worker coalesces its own
 * requests, but without this every worker would refresh the same session with
 * the same refresh token — and an IdP that rotates refresh tokens sees the
 * second use as token theft (RFC 9700 §4.14.2) and revokes the whole grant.
 *
 * The cluster primary is the broker: the first worker to ask for a session's
 * refresh does it; the others wait and receive its result over the IPC
 * channel (a pipe between processes of the same gateway), which the primary
 * also keeps for a short while for requests still carrying the old cookie.
 * Redis sessions do not need this: a Redis lock does the same across
 * instances (TokenRefresher).
 */
export interface RefreshCoordinator {
  /**
   * Runs `refresh` unless another process is already refreshing `key`, in which case its result is returned.
   * A result `settled` says is not final (the IdP could not be reached, the old tokens still serve) is not
   * handed to anyone else: the next one waiting tries for itself.
   */
  once(key: string, refresh: () => Promise<SessionData | undefined>, settled: (s: SessionData | undefined) => boolean): Promise<SessionData | undefined>;
}

/** One process: the caller's in-process coalescing is all there is to do. */
const IN_PROCESS: RefreshCoordinator = { once: (_key, refresh) => refresh() };

/** How long a worker waits for the primary's answer before refreshing by itself (a lost primary must not block logins). */
const BROKER_WAIT_MS = 10_000;
/** How long the primary hands out a finished refresh to latecomers still presenting the old cookie. */
const RESULT_REUSE_MS = 30_000;

type ToPrimary = { type: 'gatehouse:refresh-begin'; id: string; key: string } | { type: 'gatehouse:refresh-end'; key: string; session: SessionData | null; failed: boolean };
type ToWorker = { type: 'gatehouse:refresh-go'; id: string } | { type: 'gatehouse:refresh-result'; id: string; session: SessionData | null };

export function refreshCoordinator(): RefreshCoordinator {
  return cluster.isWorker && process.send ? new WorkerRefreshCoordinator() : IN_PROCESS;
}

class WorkerRefreshCoordinator implements RefreshCoordinator {
  private readonly waiting = new Map<string, (m: ToWorker | undefined) => void>();

  constructor() {
    process.on('message', (m: ToWorker) => {
      if (m?.type !== 'gatehouse:refresh-go' && m?.type !== 'gatehouse:refresh-result') return;
      this.waiting.get(m.id)?.(m);
    });
  }

  async once(key: string, refresh: () => Promise<SessionData | undefined>, settled: (s: SessionData | undefined) => boolean): Promise<SessionData | undefined> {
    const id = randomUUID();
    const answer = await new Promise<ToWorker | undefined>((resolve) => {
      const timer = setTimeout(() => done(undefined), BROKER_WAIT_MS);
      const done = (m: ToWorker | undefined) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(m);
      };
      this.waiting.set(id, done);
      process.send!({ type: 'gatehouse:refresh-begin', id, key } satisfies ToPrimary);
    });
    if (answer?.type === 'gatehouse:refresh-result') return answer.session ?? undefined;
    let session: SessionData | undefined;
    try {
      session = await refresh();
    } catch (err) {
      process.send!({ type: 'gatehouse:refresh-end', key, session: null, failed: true } satisfies ToPrimary);
      throw err;
    }
    process.send!({ type: 'gatehouse:refresh-end', key, session: session ?? null, failed: !settled(session) } satisfies ToPrimary);
    return session;
  }
}

/** The primary's side: one holder per session key, the others wait for its result. */
export class RefreshBroker {
  private readonly inFlight = new Map<string, { holder: Worker; waiters: { worker: Worker; id: string }[] }>();
  private readonly results = new Map<string, { session: SessionData | null; until: number }>();

  attach(worker: Worker): void {
    worker.on('message', (m: ToPrimary) => {
      if (m?.type === 'gatehouse:refresh-begin') this.begin(worker, m.id, m.key);
      else if (m?.type === 'gatehouse:refresh-end') this.end(worker, m.key, m.session, m.failed);
    });
  }

  private begin(worker: Worker, id: string, key: string) {
    const now = Date.now();
    const done = this.results.get(key);
    if (done && done.until > now) return send(worker, { type: 'gatehouse:refresh-result', id, session: done.session });
    const flight = this.inFlight.get(key);
    if (flight) return void flight.waiters.push({ worker, id });
    this.inFlight.set(key, { holder: worker, waiters: [] });
    send(worker, { type: 'gatehouse:refresh-go', id });
  }

  private end(worker: Worker, key: string, session: SessionData | null, failed: boolean) {
    const flight = this.inFlight.get(key);
    if (!flight || flight.holder !== worker) return;
    this.inFlight.delete(key);
    if (failed) return this.handOver(key, flight.waiters);
    const now = Date.now();
    for (const [k, r] of this.results) if (r.until <= now) this.results.delete(k);
    this.results.set(key, { session, until: now + RESULT_REUSE_MS });
    for (const w of flight.waiters) send(w.worker, { type: 'gatehouse:refresh-result', id: w.id, session });
  }

  /** The holder failed (the IdP was down) or died: the next waiter tries. */
  private handOver(key: string, waiters: { worker: Worker; id: string }[]) {
    const live = waiters.filter((w) => w.worker.isConnected());
    const next = live.shift();
    if (!next) return;
    this.inFlight.set(key, { holder: next.worker, waiters: live });
    send(next.worker, { type: 'gatehouse:refresh-go', id: next.id });
  }

  /** A worker exited: whatever it was refreshing passes to a waiter. */
  detach(worker: Worker): void {
    for (const [key, flight] of this.inFlight) {
      if (flight.holder === worker) {
        this.inFlight.delete(key);
        this.handOver(key, flight.waiters);
      } else {
        flight.waiters = flight.waiters.filter((w) => w.worker !== worker);
      }
    }
  }
}

function send(worker: Worker, message: ToWorker) {
  if (worker.isConnected()) worker.send(message);
}
