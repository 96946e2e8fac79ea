import { Controller, Get, Header } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { GatewayConfig } from '../config/gateway-config.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';

/**
 * Served on the status listener only (GATEHOUSE_STATUS_LISTEN), so no proxied
 * route can shadow these paths and no credentials are needed.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly discovery: OidcDiscoveryHealthIndicator,
    private readonly config: GatewayConfig,
  ) {}

  /** Liveness: no I/O at all; if this answers, the event loop is turning. */
  @Get('live')
  @Header('cache-control', 'no-store')
  live() {
    return { status: 'ok' };
  }

  @Get('ready')
  @Header('cache-control', 'no-store')
  @HealthCheck()
  ready() {
    const issuers = this.config.issuers;
    return this.health.check([
      () => ({ config: { status: 'up' as const, source: this.config.source, demo: this.config.demo } }),
      ...issuers.map((issuer, i) => () => this.discovery.check(issuers.length === 1 ? 'issuer' : `issuer_${i}`, issuer)),
    ]);
  }
}
