import { Controller, Get, Header } from '@nestjs/common';
import { Registry } from 'prom-client';
import { ServiceUnavailableError } from '../common/gateway.error.js';
import { scrapeMetrics } from './metrics.cluster.js';

/**
 * Kong's `GET /metrics` (Prometheus text format), on the status listener only
 * (GATEHOUSE_STATUS_LISTEN), so no proxied route can shadow it and no
 * credentials travel with a scrape. With several workers it answers for all of
 * them (metrics.cluster.ts).
 */
@Controller()
export class MetricsController {
  @Get('metrics')
  @Header('content-type', Registry.PROMETHEUS_CONTENT_TYPE)
  @Header('cache-control', 'no-store')
  async metrics(): Promise<string> {
    try {
      return await scrapeMetrics();
    } catch (err) {
      throw new ServiceUnavailableError('Metrics are unavailable', `metrics scrape failed: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  }
}
