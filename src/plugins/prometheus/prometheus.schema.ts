import { z } from 'zod';
import { anyValue, inertShape, kongEntity } from '../../config/kong-fields.js';

/**
 * Kong's `prometheus` parameters (Kong 3.x names and defaults: every metric
 * group off until asked for). What each group records is in
 * docs/plugins/prometheus.md.
 */
const prometheusObject = z.strictObject({
  /** `kong_http_requests_total{service,route,code,source,workspace,consumer}`. */
  status_code_metrics: z.boolean().default(false),
  /** `kong_request_latency_ms`, `kong_upstream_latency_ms`, `kong_kong_latency_ms`. */
  latency_metrics: z.boolean().default(false),
  /** `kong_bandwidth_bytes{direction}`. */
  bandwidth_metrics: z.boolean().default(false),
  /**
   * Fills the `consumer` label of `kong_http_requests_total` and
   * `kong_bandwidth_bytes` with the caller's identity (openid-connect's
   * `credential_claim`, default `sub`): one series per caller, so off by default.
   */
  per_consumer: z.boolean().default(false),
  ...inertShape(INERT()),
});

/**
 * Accepted with any value, changing nothing, as in a Kong without the
 * entities they describe: `upstream_health_metrics` exports
 * `kong_upstream_target_health` for Kong's upstream and target entities
 * (Gatehouse has none), `ai_metrics` the AI plugins' metrics (none here).
 */
function INERT() {
  return { upstream_health_metrics: anyValue(), ai_metrics: anyValue() };
}

export const prometheusConfigSchema = kongEntity('prometheus', prometheusObject, INERT());

export type PrometheusConfig = z.output<typeof prometheusConfigSchema>;
