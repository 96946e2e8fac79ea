import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { gatewayMetrics } from './gateway-metrics.js';

/**
 * `/metrics` for the whole gateway when it runs as several workers
 * (GATEHOUSE_WORKERS > 1). Every worker counts in its own registry, and the
 * status port is served by whichever worker the primary hands the connection
 * to; a scrape answered from that worker alone would jump between workers'
 * counts (and counters would appear to go backwards).
 *
 * So the worker that takes the scrape asks the primary, the primary asks every
 * worker that has started for its registry (`getMetricsAsJSON()`), and merges
 * them with prom-client's `AggregatorRegistry.aggregate` (counters and
 * histograms summed; gauges by their own aggregator: `min` for reachability,
 * `max` for node info). prom-client's own `clusterMetrics()` asks every
 * connected worker, including one still starting that has no listener yet,
 * and would wait 5 s for it; here only started workers are asked, and a worker
 * that does not answer in COLLECT_TIMEOUT_MS is left out of that scrape.
 */

const COLLECT_TIMEOUT_MS = 2_000;
/** How long a worker waits for the primary's merged answer. */
const SCRAPE_TIMEOUT_MS = COLLECT_TIMEOUT_MS + 1_000;

type Message =
  | { type: 'gatehouse:metrics-scrape'; id: number }
  | { type: 'gatehouse:metrics-scraped'; id: number; text?: string; error?: string }
  | { type: 'gatehouse:metrics-collect'; id: number }
  | { type: 'gatehouse:metrics-collected'; id: number; metrics?: unknown[]; error?: string };

let nextId = 0;
const pendingScrapes = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
let workerListening = false;

/**
 * In a worker: answers the primary's collection requests with this worker's
 * registry, and receives merged scrapes. Called once the worker has started.
 */
export function answerMetricsCollection(): void {
  if (workerListening || !cluster.isWorker) return;
  workerListening = true;
  process.on('message', (m: Message) => {
    if (m?.type === 'gatehouse:metrics-collect') {
      gatewayMetrics.registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: 'gatehouse:metrics-collected', id: m.id, metrics } satisfies Message),
        (err: Error) => process.send?.({ type: 'gatehouse:metrics-collected', id: m.id, error: err.message } satisfies Message),
      );
    } else if (m?.type === 'gatehouse:metrics-scraped') {
      const p = pendingScrapes.get(m.id);
      if (!p) return;
      pendingScrapes.delete(m.id);
      clearTimeout(p.timer);
      if (m.text !== undefined) p.resolve(m.text);
      else p.reject(new Error(m.error ?? 'metrics aggregation failed'));
    }
  });
}

/** The exposition text `/metrics` answers with: this process's registry, or in a worker, every worker's merged by the primary. */
export function scrapeMetrics(): Promise<string> {
  if (!cluster.isWorker || !process.send) return gatewayMetrics.render();
  answerMetricsCollection();
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => {
      pendingScrapes.delete(id);
      reject(new Error('the primary did not answer the metrics scrape in time'));
    }, SCRAPE_TIMEOUT_MS);
    pendingScrapes.set(id, { resolve, reject, timer });
    process.send!({ type: 'gatehouse:metrics-scrape', id } satisfies Message);
  });
}

/**
 * In the primary: merges the started workers' registries for a worker that
 * was scraped. `started(worker)` when a worker reports its start, `detach` when
 * it exits.
 */
export class MetricsAggregator {
  private readonly workers = new Set<Worker>();
  private readonly collections = new Map<number, { expect: Set<Worker>; results: unknown[][]; done: () => void }>();
  private nextCollection = 0;

  attach(worker: Worker): void {
    worker.on('message', (m: Message) => {
      if (m?.type === 'gatehouse:metrics-scrape') void this.scrape(worker, m.id);
      else if (m?.type === 'gatehouse:metrics-collected') this.collected(worker, m.id, m.metrics);
    });
  }

  started(worker: Worker): void {
    this.workers.add(worker);
  }

  detach(worker: Worker): void {
    this.workers.delete(worker);
    for (const c of this.collections.values()) {
      if (c.expect.delete(worker) && c.expect.size === 0) c.done();
    }
  }

  private async scrape(requester: Worker, id: number): Promise<void> {
    let reply: Message;
    try {
      reply = { type: 'gatehouse:metrics-scraped', id, text: await this.collect() };
    } catch (err) {
      reply = { type: 'gatehouse:metrics-scraped', id, error: err instanceof Error ? err.message : String(err) };
    }
    if (requester.isConnected()) requester.send(reply);
  }

  /** Every started worker's registry, merged; a worker that does not answer in time is left out. */
  collect(): Promise<string> {
    const id = this.nextCollection++;
    const expect = new Set([...this.workers].filter((w) => w.isConnected()));
    const results: unknown[][] = [];
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => finish(), COLLECT_TIMEOUT_MS);
      const finish = () => {
        clearTimeout(timer);
        if (!this.collections.delete(id)) return;
        try {
          resolve(AggregatorRegistry.aggregate(results as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics());
        } catch (err) {
          reject(err as Error);
        }
      };
      this.collections.set(id, { expect, results, done: finish });
      if (expect.size === 0) return finish();
      for (const w of expect) w.send({ type: 'gatehouse:metrics-collect', id } satisfies Message);
    });
  }

  private collected(worker: Worker, id: number, metrics: unknown[] | undefined): void {
    const c = this.collections.get(id);
    if (!c || !c.expect.delete(worker)) return;
    if (metrics) c.results.push(metrics);
    if (c.expect.size === 0) c.done();
  }
}
