import { Controller, Get, Header } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { GatewayConfig } from '../config/gateway-config.js';
import { pluginInstances } from '../config/config-warnings.js';
import type { DeclarativeConfig } from '../config/declarative.schema.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { ProxyConfigRuntime } from '../proxy/proxy-config.runtime.js';
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
    private readonly runtime: ProxyConfigRuntime,
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
    const applied = this.runtime.current;
    const issuers = issuersOf(applied.declarative);
    const rejected = this.runtime.lastRejection;
    return this.health.check([
      // A rejected reload leaves the running config serving: still up, with the refusal shown for the operator.
      () => ({
        config: {
          status: 'up' as const,
          source: applied.source,
          demo: this.config.demo,
          hash: applied.hash,
          version: applied.version,
          ...(rejected && { rejected: { at: rejected.at.toISOString(), source: rejected.source, problems: rejected.problems.length } }),
        },
      }),
      ...issuers.map((issuer, i) => () => this.discovery.check(issuers.length === 1 ? 'issuer' : `issuer_${i}`, issuer)),
    ]);
  }
}

/** Every distinct issuer the applied config's enabled openid-connect plugins name. */
function issuersOf(declarative: DeclarativeConfig): string[] {
  const issuers = pluginInstances(declarative).flatMap(({ plugin }) => (plugin.name === 'openid-connect' ? [(plugin.config as OpenIdConnectConfig).issuer] : []));
  return [...new Set(issuers)];
}
