import { Module } from '@nestjs/common';
import { GatewayMetrics, gatewayMetrics } from './gateway-metrics.js';
import { MetricsController } from './metrics.controller.js';

/**
 * The status listener's `GET /metrics`, and the process's GatewayMetrics as a
 * provider. There is one GatewayMetrics per process (`gatewayMetrics`): the
 * proxy listeners count into it and the status listener renders it.
 */
@Module({
  controllers: [MetricsController],
  providers: [{ provide: GatewayMetrics, useValue: gatewayMetrics }],
  exports: [GatewayMetrics],
})
export class MetricsModule {}
