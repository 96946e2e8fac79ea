import { type DynamicModule, Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { GatewayConfigModule } from './config/gateway-config.module.js';
import type { GatewayConfig } from './config/gateway-config.js';
import type { GatewayStateOptions } from './health/gateway-state.module.js';
import { HealthModule } from './health/health.module.js';
import { ProxyModule } from './proxy/proxy.module.js';

export interface AppModuleOptions {
  config: GatewayConfig;
  logger: Logger;
  /** @nestjs/config's module holding the validated GATEHOUSE_* settings (loadGatewaySettings). */
  settingsModule?: DynamicModule;
  state: GatewayStateOptions;
}

/**
 * The gateway's one Nest container: the config, the proxy (route table,
 * plugins, upstream pools, the catch-all handler) and the status endpoints
 * (health, Kong's /status, metrics). The proxy listeners are raw Node servers
 * calling ProxyHandler (proxy/proxy.server.ts); the status endpoints are this
 * application's Fastify routes. The Admin API is a second application
 * (admin/admin.server.ts): a Nest application has one HTTP adapter and mounts
 * every controller of its container on it, so controllers for another port
 * need a container of their own.
 */
@Module({})
export class AppModule {
  static register(options: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [GatewayConfigModule.forRoot(options.config, options.logger, options.settingsModule), ProxyModule, HealthModule.register(options.state)],
    };
  }
}
