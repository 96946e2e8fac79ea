import { HttpModule } from '@nestjs/axios';
import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule } from '../auth/auth.module.js';
import { MetricsModule } from '../metrics/metrics.module.js';
import { ProxyModule } from '../proxy/proxy.module.js';
import { GatewayStateModule, type GatewayStateOptions } from './gateway-state.module.js';
import { HealthController } from './health.controller.js';
import { IssuerDiscoveryHealthIndicator } from './issuer-discovery.health.js';
import { DISCOVERY_CHECK_TIMEOUT_MS } from './oidc-discovery.health.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';
import { ReadinessService } from './readiness.service.js';
import { StatusController } from './status.controller.js';

/**
 * Gatehouse's `/health/*`, Kong's `/status*` and `/metrics` (MetricsModule) on
 * the status listener. It imports what it checks: the issuer registry the
 * proxy verifies tokens with (AuthModule), the applied configuration
 * (ProxyModule), the lifecycle and counters (GatewayStateModule), and the IdP
 * over HTTP (HttpModule). The config comes from the global GatewayConfigModule.
 */
@Module({})
export class HealthModule {
  static register(state: GatewayStateOptions): DynamicModule {
    return {
      module: HealthModule,
      imports: [
        TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' }),
        HttpModule.register({ timeout: DISCOVERY_CHECK_TIMEOUT_MS, maxRedirects: 0 }),
        AuthModule,
        ProxyModule,
        GatewayStateModule.forRoot(state),
        MetricsModule,
      ],
      controllers: [HealthController, StatusController],
      providers: [OidcDiscoveryHealthIndicator, IssuerDiscoveryHealthIndicator, ReadinessService],
    };
  }
}
