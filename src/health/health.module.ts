import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { IssuerRegistry } from '../auth/issuer.registry.js';
import { MetricsModule } from '../metrics/metrics.module.js';
import { HealthController } from './health.controller.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';

@Module({})
export class HealthModule {
  static register(issuers: IssuerRegistry): DynamicModule {
    return {
      module: HealthModule,
      imports: [TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' }), MetricsModule],
      controllers: [HealthController],
      providers: [OidcDiscoveryHealthIndicator, { provide: IssuerRegistry, useValue: issuers }],
    };
  }
}
