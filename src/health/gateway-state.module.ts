import { type DynamicModule, Module } from '@nestjs/common';
import { ProxyConfigRuntime } from '../proxy/proxy-config.runtime.js';
import { ProxyModule } from '../proxy/proxy.module.js';
import { ConfigStoreHealth } from './config-store.health.js';
import { EMPTY_CONFIGURATION_HASH, isEmptyConfiguration } from './configuration-hash.js';
import { type ProcessStatus } from './process-status.js';
import { ReadinessState } from './readiness.state.js';

/** `() => string`: Kong's `configuration_hash` of the configuration the proxy routes with now. */
export const CONFIGURATION_HASH = Symbol('CONFIGURATION_HASH');
/** `() => Promise<ProcessStatus[]>`: every process serving the listeners (one, or each worker of GATEHOUSE_WORKERS). */
export const PROCESS_STATUSES = Symbol('PROCESS_STATUSES');

export type ConfigurationHashSource = () => string;
export type ProcessStatusSource = () => Promise<ProcessStatus[]>;

export interface GatewayStateOptions {
  readiness: ReadinessState;
  processStatuses: ProcessStatusSource;
}

/**
 * The process's lifecycle as the status endpoints see it: readiness (serving
 * or draining), the applied configuration's hash, the counters of every
 * process, and the config store's health. These live outside Nest (the
 * readiness state and counters exist before the container, and with
 * GATEHOUSE_WORKERS they are joined through the cluster primary), so they
 * come in as values.
 */
@Module({})
export class GatewayStateModule {
  static forRoot(options: GatewayStateOptions): DynamicModule {
    return {
      module: GatewayStateModule,
      imports: [ProxyModule],
      providers: [
        { provide: ReadinessState, useValue: options.readiness },
        {
          provide: CONFIGURATION_HASH,
          inject: [ProxyConfigRuntime],
          // The applied configuration's own digest: it follows every reload.
          useFactory: (runtime: ProxyConfigRuntime): ConfigurationHashSource => () =>
            isEmptyConfiguration(runtime.current.declarative) ? EMPTY_CONFIGURATION_HASH : runtime.current.hash,
        },
        { provide: PROCESS_STATUSES, useValue: options.processStatuses },
        // Filled in by followConfigStore once the process follows its store (main.ts gets it from the application).
        { provide: ConfigStoreHealth, useValue: new ConfigStoreHealth() },
      ],
      exports: [ReadinessState, CONFIGURATION_HASH, PROCESS_STATUSES, ConfigStoreHealth],
    };
  }
}
