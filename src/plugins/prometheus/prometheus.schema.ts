import { z } from 'zod';

/**
 * Kong's `prometheus` parameters (Kong 3.x names and defaults: every metric
 * group off until asked for). What each group records is in
 * docs/plugins/prometheus.md.
 */
export const prometheusConfigSchema = z.strictObject({
  /** `kong_http_requests_total{service,route,code,source,workspace,consumer}`. */
  status_code_metrics: z.boolean().default(false),
  /** `kong_request_latency_ms`, `kong_upstream_latency_ms`, `kong_kong_latency_ms`. */
  latency_metrics: z.boolean().default(false),
  /** `kong_bandwidth_bytes{direction}`. */
  bandwidth_metrics: z.boolean().default(false),
  /**
   * Kong's `kong_upstream_target_health` needs Kong's upstream and target
   * entities (active/passive health checks), which Gatehouse does not have:
   * accepted so a Kong file loads, exports nothing.
   */
  upstream_health_metrics: z.boolean().default(false),
  /**
   * Fills the `consumer` label of `kong_http_requests_total` and
   * `kong_bandwidth_bytes` with the caller's identity (openid-connect's
   * `credential_claim`, default `sub`): one series per caller, so off by default.
   */
  per_consumer: z.boolean().default(false),
  /** Kong's AI gateway metrics: accepted so a Kong file loads; Gatehouse has no AI plugins, nothing is exported. */
  ai_metrics: z.boolean().default(false),
});

export type PrometheusConfig = z.output<typeof prometheusConfigSchema>;
