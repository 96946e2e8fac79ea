import type { Registry } from 'prom-client';

/**
 * Counters and histograms for the request path, as pre-bound cells.
 *
 * prom-client's own `counter.labels(...).inc()` builds a label hash string and
 * validates every label on each call (prom-client 15, lib/counter.js), which is
 * an allocation and a loop per increment. Here every label combination a
 * request can hit is a cell created once (at load, per route, or the first
 * time a status code or caller shows up), and a request only adds to a number
 * in it. The families implement prom-client's metric interface (`get()` in the
 * shape `getMetricsAsJSON()` returns), so they sit in a prom-client Registry,
 * render through it and aggregate across workers with its AggregatorRegistry.
 */

export type Labels = Readonly<Record<string, string>>;
/** How the cluster aggregation combines a series from several workers (prom-client's aggregators). */
export type Aggregator = 'sum' | 'max' | 'min' | 'first' | 'average' | 'omit';

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

export interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: MetricValue[];
  aggregator: Aggregator;
}

/** One counter series. */
export class CounterCell {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(by = 1): void {
    this.value += by;
  }
}

/** One histogram series: per-bucket counts (not cumulative until exported), sum and count. */
export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const bounds = this.bounds;
    let i = 0;
    // Linear: most observations land in the first few buckets, and there are at most ~26.
    while (i < bounds.length && v > bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

abstract class Family<C extends { labels: Labels }> {
  /** Cells by their label values (as a JSON array: unambiguous whatever the values hold), looked up at load or on a series' first use, never per request. */
  private readonly cells = new Map<string, C>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly aggregator: Aggregator = 'sum',
  ) {}

  protected abstract create(labels: Labels): C;

  /** The cell for these label values (created on first use). Call at load and keep it. */
  cell(labels: Labels): C {
    const values: string[] = [];
    for (const n of this.labelNames) {
      const v = labels[n];
      if (v === undefined) throw new Error(`${this.name}: label "${n}" missing`);
      values.push(v);
    }
    const key = JSON.stringify(values);
    let c = this.cells.get(key);
    if (!c) {
      const own: Record<string, string> = {};
      for (const n of this.labelNames) own[n] = labels[n];
      this.cells.set(key, (c = this.create(Object.freeze(own))));
    }
    return c;
  }

  protected all(): IterableIterator<C> {
    return this.cells.values();
  }

  /** Forgets every series (tests; a process keeps its series for its lifetime, as counters must). */
  reset(): void {
    this.cells.clear();
  }

  register(registry: Registry): this {
    registry.registerMetric(this as never);
    return this;
  }
}

export class CounterFamily extends Family<CounterCell> {
  readonly type = 'counter';
  protected create(labels: Labels) {
    return new CounterCell(labels);
  }
  get(): MetricJson {
    const values: MetricValue[] = [];
    for (const c of this.all()) values.push({ value: c.value, labels: { ...c.labels } });
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: this.aggregator };
  }
}

export class HistogramFamily extends Family<HistogramCell> {
  readonly type = 'histogram';
  constructor(name: string, help: string, labelNames: readonly string[], readonly buckets: readonly number[]) {
    super(name, help, labelNames);
  }
  protected create(labels: Labels) {
    return new HistogramCell(labels, this.buckets);
  }
  get(): MetricJson {
    const values: MetricValue[] = [];
    for (const c of this.all()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += c.counts[i];
        values.push({ value: cumulative, labels: { ...c.labels, le: this.buckets[i] }, metricName: `${this.name}_bucket` });
      }
      values.push({ value: c.count, labels: { ...c.labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: c.sum, labels: { ...c.labels }, metricName: `${this.name}_sum` });
      values.push({ value: c.count, labels: { ...c.labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: this.aggregator };
  }
}

/** A gauge whose series are computed when scraped (sizes, open connections, memory). */
export class CollectedGauge {
  readonly type = 'gauge';
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => Iterable<{ labels: Labels; value: number }>,
    readonly aggregator: Aggregator = 'sum',
  ) {}
  get(): MetricJson {
    const values: MetricValue[] = [];
    for (const v of this.read()) values.push({ value: v.value, labels: { ...v.labels } });
    return { name: this.name, help: this.help, type: 'gauge', values, aggregator: this.aggregator };
  }
  register(registry: Registry): this {
    registry.registerMetric(this as never);
    return this;
  }
}
