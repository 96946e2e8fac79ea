import type { ConfigRuntime } from '../config/config-runtime.js';
import { gatewayMetrics, type GatewayMetrics } from './gateway-metrics.js';

/**
 * gatehouse_config_reloads_total{result} and
 * gatehouse_config_last_applied_timestamp_seconds follow a config runtime:
 * every swap and every refused document is counted. Call once where the
 * runtime is created.
 */
export function countConfigChanges(runtime: Pick<ConfigRuntime, 'current' | 'onApplied' | 'onRejected'>, metrics: GatewayMetrics = gatewayMetrics): void {
  // The start-up configuration is applied before anyone can listen: its time, not a reload.
  metrics.configAppliedAt = runtime.current.appliedAt.getTime() / 1000;
  runtime.onApplied((config) => metrics.recordConfigApplied(config.appliedAt));
  runtime.onRejected(() => metrics.recordConfigRejected());
}
