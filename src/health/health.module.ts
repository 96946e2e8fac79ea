import { HttpModule } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { HealthController } from './health.controller.js';
import { IssuerDiscoveryHealthIndicator } from './issuer-discovery.health.js';
import { DISCOVERY_CHECK_TIMEOUT_MS } from './oidc-discovery.health.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';
import { ReadinessService } from './readiness.service.js';
import { StatusController } from './status.controller.js';

/**
 * Gatehouse's `/health/*` and Kong's `/status*` on the status listener. What
 * the checks read comes from the modules that own it: the IdP over HTTP through
 * the HttpModule, the proxy's issuer registry and lifecycle through
 * GatewayStateModule (global in the status application), the config through
 * GatewayConfigModule.
 */
@Module({
  imports: [
    TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' }),
    HttpModule.register({ timeout: DISCOVERY_CHECK_TIMEOUT_MS, maxRedirects: 0 }),
  ],
  controllers: [HealthController, StatusController],
  providers: [OidcDiscoveryHealthIndicator, IssuerDiscoveryHealthIndicator, ReadinessService],
})
export class HealthModule {}
