import { Controller, Get, Header } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { ReadinessService } from './readiness.service.js';

/**
 * Served on the status listener only (GATEHOUSE_STATUS_LISTEN), so no proxied
 * route can shadow these paths and no credentials are needed.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly readiness: ReadinessService,
  ) {}

  /** Liveness: no I/O at all; if this answers, the event loop is turning (also while draining). */
  @Get('live')
  @Header('cache-control', 'no-store')
  live() {
    return { status: 'ok' };
  }

  /** Readiness with every check's detail: lifecycle (draining), config, and per issuer its discovery document and keys. */
  @Get('ready')
  @Header('cache-control', 'no-store')
  @HealthCheck()
  ready() {
    return this.health.check(this.readiness.indicators());
  }
}
