import { randomUUID } from 'node:crypto';
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { closeLogs } from '../common/logger.js';
import { withNodeFlags } from './node-flags.js';
import { RefreshBroker } from '../auth/refresh-coordinator.js';
import type { ProcessStatus } from '../health/process-status.js';
import type { ReadinessState } from '../health/readiness.state.js';
import { answerMetricsCollection, MetricsAggregator } from '../metrics/metrics.cluster.js';

/**
 * Multi-worker mode (GATEHOUSE_WORKERS > 1): the primary process serves no
 * requests. It forks N workers that each run the normal start path; Node's
 * cluster module binds each listen address once in the primary and hands
 * connections to the workers (round-robin), so every worker serves the same
 * proxy and status ports — even with port 0, where the first bind picks the
 * port and the other workers receive the same one.
 *
 * - "gatehouse started" is logged once, by the primary, when every worker is
 *   listening (each worker logs "gatehouse worker started").
 * - SIGTERM/SIGINT are forwarded to the workers over IPC (each runs the
 *   shutdown sequence a single process would: readiness 503, the shutdown
 *   delay, then drain); a second signal is forwarded too and skips the delay.
 *   Workers ignore signals sent to them directly while the primary is there
 *   (Ctrl-C signals the whole process group: each worker would see it twice).
 *   The primary exits when every worker has.
 * - Draining (a signal, or `POST /status/ready` answered by any one worker) is
 *   relayed to every worker, and `GET /status` sums every worker's counters:
 *   the listeners are one gateway to whoever probes them.
 * - A worker that dies unexpectedly is replaced after a backoff that doubles
 *   on consecutive quick deaths. A worker that dies before the gateway has
 *   started at all means the start itself fails (port taken, bad file), so the
 *   primary stops the others and exits non-zero instead of retrying forever.
 */

interface WorkerStarted {
  type: 'gatehouse:worker-started';
  fields: Record<string, unknown>;
}

/** Lifecycle and status messages between the primary and its workers. */
type ToPrimary =
  | WorkerStarted
  | { type: 'gatehouse:drain' }
  | { type: 'gatehouse:status-request'; id: number }
  | { type: 'gatehouse:status-report'; id: number; status: ProcessStatus };
type ToWorker =
  | { type: 'gatehouse:signal'; signal: NodeJS.Signals }
  | { type: 'gatehouse:drain' }
  | { type: 'gatehouse:status-collect'; id: number }
  | { type: 'gatehouse:status-reply'; id: number; statuses: ProcessStatus[] };

/** How long `GET /status` waits for the other workers' counters before answering with those it has. */
const STATUS_COLLECT_TIMEOUT_MS = 1_000;

const RESTART_BASE_DELAY_MS = 500;
const RESTART_MAX_DELAY_MS = 30_000;
/** A worker that lived this long before dying resets its slot's backoff. */
const HEALTHY_UPTIME_MS = 10_000;
/** Extra time after GATEHOUSE_SHUTDOWN_TIMEOUT before workers still alive are killed. */
const SHUTDOWN_GRACE_MS = 5_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** Called by a worker instead of logging "gatehouse started": the primary announces the start once. */
export function reportWorkerStarted(logger: Logger, fields: Record<string, unknown>): void {
  logger.info({ ...fields, worker: cluster.worker?.id, pid: process.pid }, 'gatehouse worker started');
  // From now on the primary may ask this worker for its metrics (it asks started workers only).
  answerMetricsCollection();
  const message: WorkerStarted = { type: 'gatehouse:worker-started', fields };
  // The log is buffered (logger.ts), so this line may reach stdout after the primary's
  // "gatehouse started"; its `time` is still earlier, and that is what tells the order.
  process.send?.(message);
}

/**
 * Calls `onSignal` for SIGTERM and SIGINT, every time (the shutdown sequence
 * tells the first from the next). In a worker the signals come from the
 * primary over IPC; a signal sent to the worker directly counts only once the
 * primary is gone.
 */
export function onShutdownSignal(onSignal: (signal: NodeJS.Signals) => void): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (!cluster.isWorker || !process.connected) onSignal(signal);
    });
  }
  if (cluster.isWorker) {
    process.on('message', (m: ToWorker) => {
      if (m?.type === 'gatehouse:signal') onSignal(m.signal);
    });
  }
}

/**
 * A worker's side of the shared state: draining started here is announced to
 * the others (through the primary) and theirs is adopted here; the returned
 * source gives every worker's status. In a single process: this process only.
 */
export function joinClusterState(readiness: ReadinessState, local: () => ProcessStatus): () => Promise<ProcessStatus[]> {
  if (!cluster.isWorker) return async () => [local()];
  const pending = new Map<number, (statuses: ProcessStatus[]) => void>();
  let nextId = 0;
  const send = (m: ToPrimary) => {
    if (process.connected) process.send!(m);
  };
  readiness.onDraining((origin) => {
    if (origin !== 'cluster') send({ type: 'gatehouse:drain' });
  });
  process.on('message', (m: ToWorker) => {
    if (m?.type === 'gatehouse:drain') readiness.startDraining('cluster');
    else if (m?.type === 'gatehouse:status-collect') send({ type: 'gatehouse:status-report', id: m.id, status: local() });
    else if (m?.type === 'gatehouse:status-reply') pending.get(m.id)?.(m.statuses);
  });
  return () =>
    new Promise((resolve) => {
      if (!process.connected) return resolve([local()]);
      const id = nextId++;
      // The primary answers within its own collect timeout; this one only covers a primary that is gone.
      const timer = setTimeout(() => finish([local()]), STATUS_COLLECT_TIMEOUT_MS * 2);
      const finish = (statuses: ProcessStatus[]) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve(statuses);
      };
      pending.set(id, finish);
      send({ type: 'gatehouse:status-request', id });
    });
}

export function runPrimary(workers: number, logger: Logger, shutdownTimeoutMs: number, shutdownDelayMs = 0): Promise<number> {
  // Workers get the command-line V8 flags the gateway needs even when the primary was started without them.
  cluster.setupPrimary({ execArgv: withNodeFlags(process.execArgv) });
  return new Promise((resolveExit) => {
    const slots = new Map<Worker, { slot: number; forkedAt: number }>();
    const quickDeaths = new Array<number>(workers).fill(0);
    const pendingRestarts = new Set<NodeJS.Timeout>();
    const startedSlots = new Set<number>();
    let started = false;
    let stopping = false;
    let draining = false;
    let exitCode = 0;
    let nextCollect = 0;

    const send = (worker: Worker, m: ToWorker) => {
      if (worker.isConnected()) worker.send(m);
    };
    /** Every live worker's status for one `GET /status`, answered to the worker that was asked. */
    const collectStatus = (asker: Worker, id: number) => {
      const id2 = nextCollect++;
      const reports: ProcessStatus[] = [];
      const expected = [...slots.keys()].filter((w) => w.isConnected());
      const listeners = new Map<Worker, (m: ToPrimary) => void>();
      const reply = () => {
        clearTimeout(timer);
        for (const [w, l] of listeners) w.off('message', l);
        send(asker, { type: 'gatehouse:status-reply', id, statuses: reports.sort((a, b) => a.pid - b.pid) });
      };
      const timer = setTimeout(reply, STATUS_COLLECT_TIMEOUT_MS);
      for (const w of expected) {
        const l = (m: ToPrimary) => {
          if (m?.type !== 'gatehouse:status-report' || m.id !== id2) return;
          w.off('message', l);
          listeners.delete(w);
          reports.push(m.status);
          if (listeners.size === 0) reply();
        };
        listeners.set(w, l);
        w.on('message', l);
        send(w, { type: 'gatehouse:status-collect', id: id2 });
      }
      if (expected.length === 0) reply();
    };

    const refreshes = new RefreshBroker();
    // /metrics answers for the whole gateway: the workers' registries merged here, under one Kong node_id.
    const metrics = new MetricsAggregator();
    const nodeId = process.env.GATEHOUSE_NODE_ID || randomUUID();
    const fork = (slot: number) => {
      const worker = cluster.fork({ GATEHOUSE_WORKER_SLOT: String(slot), GATEHOUSE_NODE_ID: nodeId });
      slots.set(worker, { slot, forkedAt: Date.now() });
      refreshes.attach(worker);
      metrics.attach(worker);
      worker.on('message', (msg: ToPrimary) => {
        if (msg?.type === 'gatehouse:drain') {
          draining = true;
          for (const w of slots.keys()) if (w !== worker) send(w, { type: 'gatehouse:drain' });
          return;
        }
        if (msg?.type === 'gatehouse:status-request') return collectStatus(worker, msg.id);
        if (msg?.type !== 'gatehouse:worker-started') return;
        metrics.started(worker);
        // A worker replacing a crashed one joins a gateway that is already draining.
        if (draining) send(worker, { type: 'gatehouse:drain' });
        if (started) return;
        startedSlots.add(slot);
        if (startedSlots.size === workers) {
          started = true;
          logger.info({ ...msg.fields, workers, pid: process.pid }, 'gatehouse started');
        }
      });
    };

    const finish = () => {
      if (slots.size > 0 || pendingRestarts.size > 0) return;
      logger.info({ exit_code: exitCode }, 'all workers exited');
      void closeLogs(logger).then(() => resolveExit(exitCode));
    };

    /**
     * Over IPC for a worker that is serving (it ignores the signal itself while the primary is
     * there), and the signal too, for a worker still starting: it has no handler yet and just ends.
     */
    const signalWorker = (worker: Worker, signal: NodeJS.Signals) => {
      send(worker, { type: 'gatehouse:signal', signal });
      worker.process.kill(signal);
    };

    let force: NodeJS.Timeout | undefined;
    const killAfter = (ms: number) => {
      clearTimeout(force);
      force = setTimeout(() => {
        logger.warn({ workers: slots.size }, 'workers did not exit in time, killing them');
        for (const worker of slots.keys()) worker.process.kill('SIGKILL');
      }, ms);
      force.unref();
    };

    const stop = (signal: NodeJS.Signals, code: number) => {
      if (stopping) return;
      stopping = true;
      exitCode = Math.max(exitCode, code);
      for (const t of pendingRestarts) clearTimeout(t);
      pendingRestarts.clear();
      logger.info({ signal, workers: slots.size }, 'stopping workers');
      for (const worker of slots.keys()) signalWorker(worker, signal);
      killAfter(shutdownDelayMs + shutdownTimeoutMs + SHUTDOWN_GRACE_MS);
      finish();
    };

    /** A signal while stopping: forwarded, so the workers skip what is left of their shutdown delay. */
    const hurry = (signal: NodeJS.Signals) => {
      logger.info({ signal, workers: slots.size }, 'stopping workers now: the rest of the shutdown delay is skipped');
      for (const worker of slots.keys()) signalWorker(worker, signal);
      killAfter(shutdownTimeoutMs + SHUTDOWN_GRACE_MS);
    };
    const onSignal = (signal: NodeJS.Signals) => (stopping ? hurry(signal) : stop(signal, 0));

    cluster.on('exit', (worker, code, signal) => {
      const info = slots.get(worker);
      slots.delete(worker);
      refreshes.detach(worker);
      metrics.detach(worker);
      if (!info) return;
      if (stopping) {
        if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGINT') exitCode = 1;
        return finish();
      }
      logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker exited unexpectedly');
      if (!started) {
        // Nothing is serving yet: this is a failed start, not a crash to recover from.
        logger.error('a worker failed during start-up; stopping the others');
        return stop('SIGTERM', 1);
      }
      const lived = Date.now() - info.forkedAt;
      quickDeaths[info.slot] = lived >= HEALTHY_UPTIME_MS ? 0 : quickDeaths[info.slot] + 1;
      const delay = Math.min(RESTART_MAX_DELAY_MS, RESTART_BASE_DELAY_MS * 2 ** Math.max(0, quickDeaths[info.slot] - 1));
      logger.warn({ slot: info.slot, delay_ms: delay }, 'restarting worker');
      const t = setTimeout(() => {
        pendingRestarts.delete(t);
        if (!stopping) fork(info.slot);
      }, delay);
      pendingRestarts.add(t);
    });

    // Each worker reads its declarative config again (FileConfigStore.reload).
    process.on('SIGHUP', () => {
      for (const worker of slots.keys()) worker.process.kill('SIGHUP');
    });
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));

    for (let slot = 0; slot < workers; slot++) fork(slot);
  });
}
