import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { authResultOf } from '../../src/auth/auth-outcome.js';
import { ForbiddenError, IdentityProviderUnavailableError, InvalidRequestError, UnauthorizedError } from '../../src/auth/auth.errors.js';
import { BadGatewayError } from '../../src/common/gateway.error.js';
import { RequestContext } from '../../src/common/request-context.js';
import { ConfigError, parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { GatewayMetrics, gatewayMetrics } from '../../src/metrics/gateway-metrics.js';
import { CounterFamily, HistogramFamily } from '../../src/metrics/metric-cells.js';
import { PrometheusPlugin } from '../../src/plugins/prometheus/prometheus.plugin.js';
import { prometheusConfigSchema } from '../../src/plugins/prometheus/prometheus.schema.js';
import { parseExposition, total, type Sample } from '../helpers/exposition.js';

async function samplesOf(registry: { metrics(): Promise<string> }): Promise<Sample[]> {
  return parseExposition(await registry.metrics());
}

describe('metric cells', () => {
  it('a histogram cell exports cumulative buckets, +Inf, sum and count through a prom-client registry', async () => {
    const registry = new Registry();
    const h = new HistogramFamily('t_latency_ms', 'test', ['route'], [1, 5, 10]).register(registry);
    const cell = h.cell({ route: 'a' });
    for (const v of [0.5, 1, 3, 7, 50]) cell.observe(v);
    const s = await samplesOf(registry);
    const bucket = (le: string) => total(s, 't_latency_ms_bucket', { route: 'a', le });
    assert.deepEqual([bucket('1'), bucket('5'), bucket('10'), bucket('+Inf')], [2, 3, 4, 5], 'le is inclusive, as Prometheus defines it');
    assert.equal(total(s, 't_latency_ms_sum'), 61.5);
    assert.equal(total(s, 't_latency_ms_count'), 5);
  });

  it('one cell per label set, created once; a missing label is a programming error', () => {
    const c = new CounterFamily('t_total', 'test', ['route', 'code']);
    const a = c.cell({ route: 'r', code: '200' });
    assert.equal(c.cell({ route: 'r', code: '200' }), a);
    assert.notEqual(c.cell({ route: 'r', code: '404' }), a);
    // Values containing the separator of another label set do not collide.
    assert.notEqual(c.cell({ route: 'a\0b', code: 'c' }), c.cell({ route: 'a', code: 'b\0c' }));
    assert.throws(() => c.cell({ route: 'r' }), /label "code" missing/);
  });

  it("merges two workers' registries as the primary does: counters and histograms summed, reachability min, node info max", async () => {
    const workers = [new GatewayMetrics(), new GatewayMetrics()];
    workers.forEach((m, i) => {
      const route = m.route('svc', 'r');
      route.anyone.statusCell(200, true).value += 2 + i;
      route.requestLatency.observe(30);
      m.authOutcomesFor('r').record('bearer', 'allowed');
    });
    const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((m) => m.registry.getMetricsAsJSON())));
    const s = await samplesOf(merged);
    assert.equal(total(s, 'kong_http_requests_total', { route: 'r', code: '200', source: 'service' }), 5);
    assert.equal(total(s, 'kong_request_latency_ms_bucket', { route: 'r', le: '50' }), 2);
    assert.equal(total(s, 'kong_request_latency_ms_bucket', { route: 'r', le: '25' }), 0);
    assert.equal(total(s, 'gatehouse_auth_total', { route: 'r', method: 'bearer', result: 'allowed' }), 2);
    assert.equal(total(s, 'kong_datastore_reachable'), 1);
    assert.equal(s.filter((x) => x.name === 'kong_node_info').length, 2, 'two processes with their own node ids here');
  });

  it('config reloads and rejections are counted for the config runtime', async () => {
    const m = new GatewayMetrics();
    m.recordConfigApplied(new Date(1_700_000_000_000));
    m.recordConfigApplied(new Date(1_700_000_100_000));
    m.recordConfigRejected();
    const s = await samplesOf(m.registry);
    assert.equal(total(s, 'gatehouse_config_reloads_total', { result: 'applied' }), 2);
    assert.equal(total(s, 'gatehouse_config_reloads_total', { result: 'rejected' }), 1);
    assert.equal(total(s, 'gatehouse_config_last_applied_timestamp_seconds'), 1_700_000_100);
  });

  it('IdP calls are timed and counted by outcome, and the call’s own result or error passes through', async () => {
    const m = new GatewayMetrics();
    assert.equal(await m.idpCall('https://idp', 'token', async () => 42), 42);
    await assert.rejects(
      m.idpCall('https://idp', 'token', async () => {
        throw new Error('down');
      }),
      /down/,
    );
    const s = await samplesOf(m.registry);
    assert.equal(total(s, 'gatehouse_idp_requests_total', { issuer: 'https://idp', endpoint: 'token', outcome: 'ok' }), 1);
    assert.equal(total(s, 'gatehouse_idp_requests_total', { endpoint: 'token', outcome: 'error' }), 1);
    assert.equal(total(s, 'gatehouse_idp_request_duration_ms_count', { endpoint: 'token' }), 2);
  });
});

describe('gatehouse_auth_total results', () => {
  it('maps refusals to results', () => {
    assert.equal(authResultOf(UnauthorizedError.invalidToken('Unauthorized', 'x')), 'unauthorized');
    assert.equal(authResultOf(new InvalidRequestError('two tokens')), 'unauthorized');
    assert.equal(authResultOf(new ForbiddenError('Forbidden', 'x')), 'forbidden');
    assert.equal(authResultOf(new IdentityProviderUnavailableError('down')), 'idp_unavailable');
    assert.equal(authResultOf(new BadGatewayError('x')), 'error');
    assert.equal(authResultOf(new Error('bug')), 'error');
  });
});

describe('prometheus plugin', () => {
  function problems(config: unknown): string[] {
    const file = JSON.stringify({ _format_version: '3.0', services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: 'r', paths: ['/'] }] }], plugins: [{ name: 'prometheus', config }] });
    try {
      parseDeclarativeConfig(file, 'kong.json', {});
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
    return [];
  }

  it("Kong's parameters and defaults: every metric group off until asked for", () => {
    const none = { status_code_metrics: false, latency_metrics: false, bandwidth_metrics: false, per_consumer: false };
    assert.deepEqual(prometheusConfigSchema.parse({}), none);
    // Kong's dumps spell unset fields as null: the default applies.
    assert.deepEqual(prometheusConfigSchema.parse({ status_code_metrics: null, per_consumer: null }), none);
    // Kong's upstream_health_metrics and ai_metrics describe entities Gatehouse has none of: accepted, inert.
    assert.deepEqual(prometheusConfigSchema.parse({ upstream_health_metrics: true, ai_metrics: true }), none);
    assert.deepEqual(problems({ status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, upstream_health_metrics: true, per_consumer: true }), []);
    const bad = problems({ status_code_metric: true, per_consumer: 'yes' });
    assert.equal(bad.length, 2, bad.join('\n'));
    assert.ok(bad.some((p) => p.startsWith('plugins[0].config.per_consumer:')));
    assert.ok(bad.some((p) => p.includes('status_code_metric')));
  });

  it('has Kong’s priority, and no log phase (no cost) when nothing is enabled', () => {
    const plugin = new PrometheusPlugin();
    assert.equal(plugin.priority, 13);
    assert.equal(plugin.compile(prometheusConfigSchema.parse({}), { service: 's', route: 'unit-none' }).log, undefined);
  });

  function exchange(opts: { headersSent: boolean; status: number; upstream?: number; caller?: string }) {
    const ctx = new RequestContext('id', false);
    if (opts.upstream !== undefined) {
      ctx.upstreamStartedAt = ctx.startedAt + 1;
      ctx.upstreamLatencyMs = opts.upstream;
    }
    ctx.caller = opts.caller;
    const socket = { bytesRead: 120, bytesWritten: 480 };
    const req = { socket } as unknown as IncomingMessage;
    const res = { headersSent: opts.headersSent, statusCode: opts.status } as unknown as ServerResponse;
    return { req, res, ctx };
  }

  it('records status with its source, 499 for a client gone before a response, latencies and bandwidth', async () => {
    const route = 'unit-log';
    const log = new PrometheusPlugin().compile(prometheusConfigSchema.parse({ status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true }), { service: 's', route }).log!;
    for (const e of [
      exchange({ headersSent: true, status: 200, upstream: 30 }),
      exchange({ headersSent: true, status: 401 }),
      exchange({ headersSent: false, status: 200 }),
    ]) log(e.req, e.res, e.ctx);
    const s = await samplesOf(gatewayMetrics.registry);
    const requests = (labels: Record<string, string>) => total(s, 'kong_http_requests_total', { route, ...labels });
    assert.equal(requests({ code: '200', source: 'service' }), 1);
    assert.equal(requests({ code: '401', source: 'kong' }), 1);
    assert.equal(requests({ code: '499', source: 'kong' }), 1);
    assert.equal(total(s, 'kong_upstream_latency_ms_count', { route }), 1);
    assert.equal(total(s, 'kong_upstream_latency_ms_bucket', { route, le: '25' }), 0);
    assert.equal(total(s, 'kong_upstream_latency_ms_bucket', { route, le: '50' }), 1);
    assert.equal(total(s, 'kong_kong_latency_ms_count', { route }), 3);
    assert.equal(total(s, 'kong_request_latency_ms_count', { route }), 3);
    // Each fake exchange is a fresh connection: all its bytes belong to its request.
    assert.equal(total(s, 'kong_bandwidth_bytes', { route, direction: 'ingress' }), 360);
    assert.equal(total(s, 'kong_bandwidth_bytes', { route, direction: 'egress' }), 1440);
  });

  it('per_consumer: a series per caller; without it, the consumer label stays empty', async () => {
    const route = 'unit-consumer';
    const perConsumer = new PrometheusPlugin().compile(prometheusConfigSchema.parse({ status_code_metrics: true, per_consumer: true }), { service: 's', route }).log!;
    const anonymous = new PrometheusPlugin().compile(prometheusConfigSchema.parse({ status_code_metrics: true }), { service: 's', route: `${route}-off` }).log!;
    for (const caller of ['alice', 'alice', 'bob', undefined]) {
      const e = exchange({ headersSent: true, status: 200, upstream: 1, caller });
      perConsumer(e.req, e.res, e.ctx);
      anonymous(e.req, e.res, e.ctx);
    }
    const s = await samplesOf(gatewayMetrics.registry);
    assert.equal(total(s, 'kong_http_requests_total', { route, consumer: 'alice' }), 2);
    assert.equal(total(s, 'kong_http_requests_total', { route, consumer: 'bob' }), 1);
    assert.equal(total(s, 'kong_http_requests_total', { route, consumer: '' }), 1);
    assert.equal(total(s, 'kong_http_requests_total', { route: `${route}-off`, consumer: '' }), 4);
  });
});
