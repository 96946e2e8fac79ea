import { Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../../common/request-context.js';
import { bytesReadSince, bytesWrittenSince, gatewayMetrics, type GatewayMetrics } from '../../metrics/gateway-metrics.js';
import type { CompiledPlugin, GatewayPlugin, PluginScope } from '../plugin.js';
import type { PrometheusConfig } from './prometheus.schema.js';

/** nginx's status for a request whose client went away before a response was sent (Kong logs it too). */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * Kong's `prometheus` (PRIORITY 13): records each request in its log phase,
 * after the response, into the route's series bound at load (RouteSeries).
 * Nothing is looked up or allocated per request except, with `per_consumer`,
 * the series of a caller seen for the first time.
 *
 * - status: the code sent (499 when the client left before any), `source`
 *   `service` when the upstream answered, `kong` when the gateway did (errors,
 *   refusals, preflights, cache hits), as Kong's `kong.response.get_source()`.
 * - latencies (ms): request = arrival to log phase; upstream = request sent to
 *   response headers (Kong's `latencies.proxy`, the upstream's time to first
 *   byte); kong = arrival to the request being sent upstream, or the whole
 *   request when the gateway answered itself.
 * - bandwidth: bytes read and written on the client connection for this
 *   request, headers included (nginx's `$request_length` and `$bytes_sent`).
 */
@Injectable()
export class PrometheusPlugin implements GatewayPlugin<PrometheusConfig> {
  readonly name = 'prometheus';
  readonly priority = 13;
  private readonly metrics: GatewayMetrics = gatewayMetrics;

  compile(config: PrometheusConfig, scope: PluginScope): CompiledPlugin {
    const series = this.metrics.route(scope.service, scope.route);
    const metrics = this.metrics;
    const { status_code_metrics: status, latency_metrics: latency, bandwidth_metrics: bandwidth, per_consumer: perConsumer } = config;
    const plugin: CompiledPlugin = { name: this.name, priority: this.priority };
    if (!status && !latency && !bandwidth) return plugin;
    return {
      ...plugin,
      log(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
        try {
          const caller = perConsumer ? series.caller(ctx.caller) : series.anyone;
          const fromService = ctx.upstreamLatencyMs !== undefined;
          if (status) caller.statusCell(res.headersSent ? res.statusCode : CLIENT_CLOSED_REQUEST, fromService).value++;
          if (latency) {
            const total = performance.now() - ctx.startedAt;
            series.requestLatency.observe(total);
            if (fromService) {
              series.upstreamLatency.observe(ctx.upstreamLatencyMs!);
              series.kongLatency.observe(ctx.upstreamStartedAt - ctx.startedAt);
            } else {
              series.kongLatency.observe(total);
            }
          }
          if (bandwidth) {
            const socket = req.socket;
            const read = bytesReadSince(socket);
            const written = bytesWrittenSince(socket);
            if (read > 0) caller.ingress.value += read;
            if (written > 0) caller.egress.value += written;
          }
        } catch {
          metrics.metricError();
        }
      },
    };
  }
}
