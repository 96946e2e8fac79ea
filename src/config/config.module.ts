import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import { GatewayConfig } from './gateway-config.js';

/** Provides the already-validated config (and the process logger) to every module. */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: GatewayConfig, logger: Logger): DynamicModule {
    return {
      module: ConfigModule,
      providers: [
        { provide: GatewayConfig, useValue: config },
        { provide: LOGGER, useValue: logger },
      ],
      exports: [GatewayConfig, LOGGER],
    };
  }
}
