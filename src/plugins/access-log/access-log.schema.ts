import { z } from 'zod';

/**
 * The `access-log` plugin: how much of the access log a route, service or the
 * whole gateway writes. Gatehouse's own (Kong writes its access log from nginx,
 * for every request, and has no per-route switch); without the plugin every
 * request is logged. The usual use is a health-check route polled every few
 * seconds: `sample_rate: 0` silences its successes, and failures still show.
 */
export const accessLogConfigSchema = z.strictObject({
  /** Share of requests logged, 0 (none) to 1 (all, the default), drawn at random per request. */
  sample_rate: z.number().min(0).max(1).default(1),
  /** Log every response with status ≥ 400, and every aborted one, whatever `sample_rate` says. Default true. */
  always_log_errors: z.boolean().default(true),
});

export type AccessLogConfig = z.output<typeof accessLogConfigSchema>;
