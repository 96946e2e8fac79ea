import { type DynamicModule, Module } from '@nestjs/common';
import type { INestApplicationContext } from '@nestjs/common';
import { IssuerRegistry } from '../auth/issuer.registry.js';
import { ProxyConfigRuntime } from '../proxy/proxy-config.runtime.js';
import { ConfigStoreHealth } from './config-store.health.js';
import { type ProcessStatus } from './process-status.js';
import { ReadinessState } from './readiness.state.js';

/** `() => string`: Kong's `configuration_hash` of the configuration the proxy routes with now. */
export const CONFIGURATION_HASH = Symbol('CONFIGURATION_HASH');
/** `() => Promise<ProcessStatus[]>`: every process serving the listeners (one, or each worker of GATEHOUSE_WORKERS). */
export const PROCESS_STATUSES = Symbol('PROCESS_STATUSES');

export type ConfigurationHashSource = () => string;
export type ProcessStatusSource = () => Promise<ProcessStatus[]>;

export interface GatewayStateOptions {
  /** The proxy listener's application: readiness reports on the very state that verifies tokens. */
  proxy: INestApplicationContext;
  readiness: ReadinessState;
  configurationHash: ConfigurationHashSource;
  processStatuses: ProcessStatusSource;
}

/**
 * The live state of the proxy side, as the status listener's application sees
 * it. The two listeners are separate Nest applications (the proxy's hot path
 * stays off Nest's router), so what the status endpoints check — the issuer
 * registry the proxy verifies tokens with, the applied configuration, the lifecycle, the counters — is
 * exported here by token, and HealthModule imports this module rather than
 * being handed values one by one.
 */
@Module({})
export class GatewayStateModule {
  static forRoot(options: GatewayStateOptions): DynamicModule {
    return {
      module: GatewayStateModule,
      global: true,
      providers: [
        { provide: IssuerRegistry, useFactory: () => options.proxy.get(IssuerRegistry) },
        { provide: ProxyConfigRuntime, useFactory: () => options.proxy.get(ProxyConfigRuntime) },
        { provide: ReadinessState, useValue: options.readiness },
        { provide: CONFIGURATION_HASH, useValue: options.configurationHash },
        { provide: PROCESS_STATUSES, useValue: options.processStatuses },
        // Filled in by followConfigStore once the process follows its store (main.ts gets it from the status app).
        { provide: ConfigStoreHealth, useValue: new ConfigStoreHealth() },
      ],
      exports: [IssuerRegistry, ProxyConfigRuntime, ReadinessState, CONFIGURATION_HASH, PROCESS_STATUSES, ConfigStoreHealth],
    };
  }
}
