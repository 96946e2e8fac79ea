import { randomUUID } from 'node:crypto';
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { closeLogs } from './common/logger.js';
import { withNodeFlags } from './node-flags.js';
import { RefreshBroker } from './auth/refresh-coordinator.js';
import { answerMetricsCollection, MetricsAggregator } from './metrics/metrics.cluster.js';

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
 * - SIGTERM/SIGINT are forwarded to the workers (each drains its in-flight
 *   requests as a single process would); the primary exits when they have.
 * - A worker that dies unexpectedly is replaced after a backoff that doubles
 *   on consecutive quick deaths. A worker that dies before the gateway has
 *   started at all means the start itself fails (port taken, bad file), so the
 *   primary stops the others and exits non-zero instead of retrying forever.
 */

interface WorkerStarted {
  type: 'gatehouse:worker-started';
  fields: Record<string, unknown>;
}

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

export function runPrimary(workers: number, logger: Logger, shutdownTimeoutMs: number): Promise<number> {
  // Workers get the command-line V8 flags the gateway needs even when the primary was started without them.
  cluster.setupPrimary({ execArgv: withNodeFlags(process.execArgv) });
  return new Promise((resolveExit) => {
    const slots = new Map<Worker, { slot: number; forkedAt: number }>();
    const quickDeaths = new Array<number>(workers).fill(0);
    const pendingRestarts = new Set<NodeJS.Timeout>();
    const startedSlots = new Set<number>();
    let started = false;
    let stopping = false;
    let exitCode = 0;

    const refreshes = new RefreshBroker();
    // /metrics answers for the whole gateway: the workers' registries merged here, under one Kong node_id.
    const metrics = new MetricsAggregator();
    const nodeId = process.env.GATEHOUSE_NODE_ID || randomUUID();
    const fork = (slot: number) => {
      const worker = cluster.fork({ GATEHOUSE_WORKER_SLOT: String(slot), GATEHOUSE_NODE_ID: nodeId });
      slots.set(worker, { slot, forkedAt: Date.now() });
      refreshes.attach(worker);
      metrics.attach(worker);
      worker.on('message', (msg: WorkerStarted) => {
        if (msg?.type === 'gatehouse:worker-started') metrics.started(worker);
        if (msg?.type !== 'gatehouse:worker-started' || started) return;
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

    const stop = (signal: NodeJS.Signals, code: number) => {
      if (stopping) return;
      stopping = true;
      exitCode = Math.max(exitCode, code);
      for (const t of pendingRestarts) clearTimeout(t);
      pendingRestarts.clear();
      logger.info({ signal, workers: slots.size }, 'stopping workers');
      for (const worker of slots.keys()) worker.process.kill(signal);
      const force = setTimeout(() => {
        logger.warn({ workers: slots.size }, 'workers did not exit in time, killing them');
        for (const worker of slots.keys()) worker.process.kill('SIGKILL');
      }, shutdownTimeoutMs + SHUTDOWN_GRACE_MS);
      force.unref();
      finish();
    };

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

    process.on('SIGTERM', () => stop('SIGTERM', 0));
    process.on('SIGINT', () => stop('SIGINT', 0));

    for (let slot = 0; slot < workers; slot++) fork(slot);
  });
}
