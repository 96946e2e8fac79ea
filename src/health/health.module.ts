import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { HealthController } from './health.controller.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';

@Module({
  imports: [TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' })],
  controllers: [HealthController],
  providers: [OidcDiscoveryHealthIndicator],
})
export class HealthModule {}
