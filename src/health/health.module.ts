import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { IssuerRegistry } from '../auth/issuer.registry.js';
import { ProxyConfigRuntime } from '../proxy/proxy-config.runtime.js';
import { HealthController } from './health.controller.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';

@Module({})
export class HealthModule {
  /** `issuers` and `runtime` are the proxy application's: readiness reports on the very state that routes and verifies tokens. */
  static register(issuers: IssuerRegistry, runtime: ProxyConfigRuntime): DynamicModule {
    return {
      module: HealthModule,
      imports: [TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' })],
      controllers: [HealthController],
      providers: [
        OidcDiscoveryHealthIndicator,
        { provide: IssuerRegistry, useValue: issuers },
        { provide: ProxyConfigRuntime, useValue: runtime },
      ],
    };
  }
}
