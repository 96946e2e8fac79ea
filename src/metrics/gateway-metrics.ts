import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Registry } from 'prom-client';
import type { ServerCountersSnapshot } from '../health/server.counters.js';
import { CollectedGauge, CounterCell, CounterFamily, HistogramCell, HistogramFamily, type Labels } from './metric-cells.js';

/**
 * Kong's histogram buckets (kong/plugins/prometheus/exporter.lua, Kong 3.x):
 * the latency Kong adds, in ms…
 */
export const KONG_LATENCY_BUCKETS = [1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000] as const;
/** …and the upstream's and the whole request's, in ms. */
export const UPSTREAM_LATENCY_BUCKETS = [25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000] as const;
/** Calls to the IdP, in ms: a JWKS or token call answers in a few ms on a LAN, seconds when the IdP struggles. */
export const IDP_LATENCY_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;

/** Kong's `workspace` label: Gatehouse has one. */
const WORKSPACE = 'default';
/** Kong's `subsystem`/`kong_subsystem` label: Gatehouse proxies HTTP only. */
const SUBSYSTEM = 'http';

export type AuthMethod = 'bearer' | 'session' | 'introspection' | 'none';
export type AuthResult = 'allowed' | 'unauthorized' | 'forbidden' | 'idp_unavailable' | 'error';
export type IdpEndpoint = 'discovery' | 'jwks' | 'token' | 'refresh' | 'introspection' | 'userinfo';
export type RateLimitDecision = 'allowed' | 'limited' | 'passed_store_down' | 'refused_store_down';

const AUTH_METHODS: readonly AuthMethod[] = ['bearer', 'session', 'introspection', 'none'];
const AUTH_RESULTS: readonly AuthResult[] = ['allowed', 'unauthorized', 'forbidden', 'idp_unavailable', 'error'];

const LAST_READ = Symbol('gatehouse.metrics.bytesRead');
const LAST_WRITTEN = Symbol('gatehouse.metrics.bytesWritten');
type CountedSocket = Socket & { [LAST_READ]?: number; [LAST_WRITTEN]?: number };

/** Bytes a socket read since the last call for it: the request's share of a keep-alive connection (headers and body, as nginx's `$request_length`). */
export function bytesReadSince(socket: Socket): number {
  const s = socket as CountedSocket;
  const now = s.bytesRead;
  const delta = now - (s[LAST_READ] ?? 0);
  s[LAST_READ] = now;
  return delta;
}

/** Bytes written to a socket since the last call for it: the response with its headers (nginx's `$bytes_sent`). */
export function bytesWrittenSince(socket: Socket): number {
  const s = socket as CountedSocket;
  const now = s.bytesWritten;
  const delta = now - (s[LAST_WRITTEN] ?? 0);
  s[LAST_WRITTEN] = now;
  return delta;
}

/** Kong's per-route series for one caller (`consumer` label): status codes by source, and bandwidth. */
class CallerSeries {
  /** Status cells by `code * 2 + (from service ? 1 : 0)`: created the first time a code is seen. */
  private readonly status = new Map<number, CounterCell>();
  readonly ingress: CounterCell;
  readonly egress: CounterCell;

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly labels: { service: string; route: string; consumer: string },
  ) {
    const bandwidth = metrics.kongBandwidth;
    this.ingress = bandwidth.cell({ ...labels, direction: 'ingress', workspace: WORKSPACE });
    this.egress = bandwidth.cell({ ...labels, direction: 'egress', workspace: WORKSPACE });
  }

  statusCell(code: number, fromService: boolean): CounterCell {
    const key = code * 2 + (fromService ? 1 : 0);
    let cell = this.status.get(key);
    if (!cell) {
      cell = this.metrics.kongHttpRequests.cell({ ...this.labels, code: String(code), source: fromService ? 'service' : 'kong', workspace: WORKSPACE });
      this.status.set(key, cell);
    }
    return cell;
  }
}

/** Every series of one route, bound at load: a request adds to these cells and allocates nothing. */
export class RouteSeries {
  readonly requestLatency: HistogramCell;
  readonly upstreamLatency: HistogramCell;
  readonly kongLatency: HistogramCell;
  /** The series without a caller (`consumer=""`), the only one unless per_consumer. */
  readonly anyone: CallerSeries;
  private readonly callers = new Map<string, CallerSeries>();

  constructor(
    private readonly metrics: GatewayMetrics,
    readonly service: string,
    readonly route: string,
  ) {
    const labels = { service, route, workspace: WORKSPACE };
    this.requestLatency = metrics.kongRequestLatency.cell(labels);
    this.upstreamLatency = metrics.kongUpstreamLatency.cell(labels);
    this.kongLatency = metrics.kongKongLatency.cell(labels);
    this.anyone = new CallerSeries(metrics, { service, route, consumer: '' });
  }

  /** The series of one caller (per_consumer): one set per distinct caller, which is why it is opt-in. */
  caller(consumer: string | undefined): CallerSeries {
    if (consumer === undefined || consumer === '') return this.anyone;
    let s = this.callers.get(consumer);
    if (!s) this.callers.set(consumer, (s = new CallerSeries(this.metrics, { service: this.service, route: this.route, consumer })));
    return s;
  }
}

/** The gatehouse_auth_total cells of one route, by method and result, created on first use. */
export class AuthOutcomeSeries {
  private readonly cells: (CounterCell | undefined)[] = new Array(AUTH_METHODS.length * AUTH_RESULTS.length);
  constructor(
    private readonly family: CounterFamily,
    private readonly route: string,
  ) {}

  record(method: AuthMethod, result: AuthResult): void {
    const i = AUTH_METHODS.indexOf(method) * AUTH_RESULTS.length + AUTH_RESULTS.indexOf(result);
    let cell = this.cells[i];
    if (!cell) this.cells[i] = cell = this.family.cell({ route: this.route, method, result });
    cell.value++;
  }
}

/** gatehouse_rate_limit_decisions_total for one route, bound at load. */
export interface RateLimitSeries {
  readonly allowed: CounterCell;
  readonly limited: CounterCell;
  readonly passedStoreDown: CounterCell;
  readonly refusedStoreDown: CounterCell;
}

/** Something whose entry count /metrics reports (a verified-token cache). */
export interface Sized {
  readonly size: number;
}

function packageVersion(): string {
  try {
    // dist/src/metrics → the project root.
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * Every metric the gateway exports, in one prom-client Registry: Kong's
 * prometheus plugin names and labels (so Kong's Grafana dashboard reads them
 * unchanged) and what only an OIDC gateway can tell (`gatehouse_*`).
 *
 * Code that counts gets its cells once — at load (per route) or on the first
 * occurrence of a series — and per request only adds to a number (see
 * metric-cells.ts). One instance per process (`gatewayMetrics`); the status
 * listener renders it, and in multi-worker mode the primary aggregates every
 * worker's (metrics.cluster.ts).
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  /** Kong's `node_id`: one per gateway (the primary passes its own to its workers), not per worker. */
  readonly nodeId = process.env.GATEHOUSE_NODE_ID || randomUUID();
  readonly version = packageVersion();

  // Kong's prometheus plugin, per service/route.
  readonly kongHttpRequests = new CounterFamily('kong_http_requests_total', 'HTTP status codes per consumer/service/route in Kong', [
    'service',
    'route',
    'code',
    'source',
    'workspace',
    'consumer',
  ]).register(this.registry);
  readonly kongKongLatency = new HistogramFamily(
    'kong_kong_latency_ms',
    'Latency added by Kong and enabled plugins for each service/route in Kong',
    ['service', 'route', 'workspace'],
    KONG_LATENCY_BUCKETS,
  ).register(this.registry);
  readonly kongUpstreamLatency = new HistogramFamily(
    'kong_upstream_latency_ms',
    'Latency added by upstream response for each service/route in Kong',
    ['service', 'route', 'workspace'],
    UPSTREAM_LATENCY_BUCKETS,
  ).register(this.registry);
  readonly kongRequestLatency = new HistogramFamily(
    'kong_request_latency_ms',
    'Total latency incurred during requests for each service/route in Kong',
    ['service', 'route', 'workspace'],
    UPSTREAM_LATENCY_BUCKETS,
  ).register(this.registry);
  readonly kongBandwidth = new CounterFamily('kong_bandwidth_bytes', 'Total bandwidth (ingress/egress) throughput in bytes', [
    'service',
    'route',
    'direction',
    'workspace',
    'consumer',
  ]).register(this.registry);
  /** Kong counts failures to record a metric; here, an exception in the prometheus plugin's log phase. */
  readonly kongMetricErrors = new CounterFamily('kong_nginx_metric_errors_total', 'Number of nginx-lua-prometheus errors', []).register(this.registry);
  private readonly metricErrors = this.kongMetricErrors.cell({});

  // What only an OIDC gateway can tell.
  readonly authOutcomes = new CounterFamily('gatehouse_auth_total', 'Authentication decisions of the openid-connect plugin by route, method and result', [
    'route',
    'method',
    'result',
  ]).register(this.registry);
  readonly idpRequests = new CounterFamily('gatehouse_idp_requests_total', 'Calls to the identity provider by issuer, endpoint and outcome', [
    'issuer',
    'endpoint',
    'outcome',
  ]).register(this.registry);
  readonly idpLatency = new HistogramFamily('gatehouse_idp_request_duration_ms', 'Duration of calls to the identity provider in ms', ['issuer', 'endpoint'], IDP_LATENCY_BUCKETS).register(
    this.registry,
  );
  readonly jwksRefetches = new CounterFamily('gatehouse_jwks_refetches_total', 'Fetches of an issuer key set after the first, by cause', ['issuer', 'cause']).register(this.registry);
  readonly jwksKidMisses = new CounterFamily('gatehouse_jwks_kid_misses_total', 'Tokens naming a key (kid/alg) the cached key set does not have', ['issuer']).register(this.registry);
  readonly tokenCache = new CounterFamily('gatehouse_token_cache_lookups_total', 'Verified-token cache lookups by result (hit: no signature check)', ['result']).register(this.registry);
  readonly tokenCacheHit = this.tokenCache.cell({ result: 'hit' });
  readonly tokenCacheMiss = this.tokenCache.cell({ result: 'miss' });
  readonly configReloads = new CounterFamily('gatehouse_config_reloads_total', 'Declarative configurations offered to the running gateway, by result', ['result']).register(
    this.registry,
  );
  private readonly configApplied = this.configReloads.cell({ result: 'applied' });
  private readonly configRejected = this.configReloads.cell({ result: 'rejected' });
  /** When the running configuration was applied (Unix seconds). */
  configAppliedAt = Date.now() / 1000;
  readonly rateLimitDecisions = new CounterFamily('gatehouse_rate_limit_decisions_total', 'Decisions of the rate-limiting plugin by route', ['route', 'decision']).register(
    this.registry,
  );

  private readonly routeSeries = new Map<string, RouteSeries>();
  private readonly tokenCaches = new Set<WeakRef<Sized>>();
  private serverCounters?: { snapshot(): ServerCountersSnapshot };

  constructor() {
    const node = { node_id: this.nodeId };
    new CollectedGauge('kong_nginx_connections_total', 'Number of connections by subsystem', () => this.connectionStates()).register(this.registry);
    new CollectedGauge('kong_nginx_requests_total', 'Number of requests total', () => {
      const c = this.serverCounters?.snapshot();
      return c ? [{ labels: { ...node, subsystem: SUBSYSTEM }, value: c.total_requests }] : [];
    }).register(
      this.registry,
    );
    // DB-less, as Kong with `database = off` (where this is always 1): the configuration lives in memory.
    new CollectedGauge('kong_datastore_reachable', 'Datastore reachable from Kong, 0 is unreachable', () => [{ labels: {}, value: 1 }], 'min').register(this.registry);
    new CollectedGauge('kong_node_info', 'Kong Node metadata information', () => [{ labels: { ...node, version: this.version }, value: 1 }], 'max').register(this.registry);
    new CollectedGauge('kong_memory_workers_lua_vms_bytes', 'Allocated bytes in worker Lua VM', () => [
      // Each worker's JavaScript heap in use: the counterpart of a worker's Lua VM allocation.
      { labels: { ...node, pid: String(process.pid), kong_subsystem: SUBSYSTEM }, value: process.memoryUsage().heapUsed },
    ]).register(this.registry);
    new CollectedGauge('gatehouse_token_cache_entries', 'Verified access tokens held in the caches', () => [{ labels: {}, value: this.tokenCacheEntries() }]).register(this.registry);
    new CollectedGauge(
      'gatehouse_config_last_applied_timestamp_seconds',
      'When the running configuration was applied (Unix time)',
      () => [{ labels: {}, value: this.configAppliedAt }],
      'max',
    ).register(this.registry);
  }

  /** The pre-bound series of a route (shared by every compile of the same service and route). */
  route(service: string, route: string): RouteSeries {
    const key = `${service}\0${route}`;
    let s = this.routeSeries.get(key);
    if (!s) this.routeSeries.set(key, (s = new RouteSeries(this, service, route)));
    return s;
  }

  authOutcomesFor(route: string): AuthOutcomeSeries {
    return new AuthOutcomeSeries(this.authOutcomes, route);
  }

  rateLimitFor(route: string): RateLimitSeries {
    const f = this.rateLimitDecisions;
    return {
      allowed: f.cell({ route, decision: 'allowed' }),
      limited: f.cell({ route, decision: 'limited' }),
      passedStoreDown: f.cell({ route, decision: 'passed_store_down' }),
      refusedStoreDown: f.cell({ route, decision: 'refused_store_down' }),
    };
  }

  /** One call to the IdP: counted by outcome, timed; resolves or rejects as `call` does. */
  async idpCall<T>(issuer: string, endpoint: IdpEndpoint, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome = 'error';
    try {
      const result = await call();
      outcome = 'ok';
      return result;
    } finally {
      this.idpLatency.cell({ issuer, endpoint }).observe(performance.now() - started);
      this.idpRequests.cell({ issuer, endpoint, outcome }).inc();
    }
  }

  jwksRefetched(issuer: string, cause: 'kid_miss' | 'max_age' | 'rediscovery'): void {
    this.jwksRefetches.cell({ issuer, cause }).inc();
  }

  jwksKidMissed(issuer: string): void {
    this.jwksKidMisses.cell({ issuer }).inc();
  }

  /** Reports a verified-token cache's size when scraped (held weakly: a discarded cache stops counting). */
  trackTokenCache(cache: Sized): void {
    this.tokenCaches.add(new WeakRef(cache));
  }

  private tokenCacheEntries(): number {
    let n = 0;
    for (const ref of this.tokenCaches) {
      const c = ref.deref();
      if (c) n += c.size;
      else this.tokenCaches.delete(ref);
    }
    return n;
  }

  /** For the config runtime: a configuration was swapped in. */
  recordConfigApplied(at = new Date()): void {
    this.configApplied.value++;
    this.configAppliedAt = at.getTime() / 1000;
  }

  /** For the config runtime: a configuration was refused and the running one kept. */
  recordConfigRejected(): void {
    this.configRejected.value++;
  }

  /** The prometheus plugin's log phase failed (Kong's kong_nginx_metric_errors_total). */
  metricError(): void {
    this.metricErrors.value++;
  }

  /**
   * The proxy listener's counters (GET /status reads the same ones): a request
   * pays one increment there, and connection states are derived when scraped.
   */
  useServerCounters(counters: { snapshot(): ServerCountersSnapshot }): void {
    this.serverCounters = counters;
  }

  private connectionStates(): { labels: Labels; value: number }[] {
    const c = this.serverCounters?.snapshot();
    if (!c) return [];
    const labels = (state: string) => ({ node_id: this.nodeId, subsystem: SUBSYSTEM, state });
    return [
      { labels: labels('accepted'), value: c.connections_accepted },
      { labels: labels('handled'), value: c.connections_handled },
      { labels: labels('total'), value: c.total_requests },
      { labels: labels('active'), value: c.connections_active },
      { labels: labels('reading'), value: c.connections_reading },
      { labels: labels('writing'), value: c.connections_writing },
      { labels: labels('waiting'), value: c.connections_waiting },
    ];
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The process's metrics: one registry per process, which the status listener renders and the cluster primary aggregates. */
export const gatewayMetrics = new GatewayMetrics();

export type { HistogramCell, CounterCell };
