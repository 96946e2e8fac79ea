import { Global, Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import { GatewayConfig } from './gateway-config.js';
import { readGatewaySettings, type GatewaySettings } from './gateway-settings.js';

/** The ConfigService key under which the validated GATEHOUSE_* settings live: `config.get<GatewaySettings>(GATEWAY_SETTINGS)`. */
export const GATEWAY_SETTINGS = 'gatehouse';

export interface LoadedSettings {
  settings: GatewaySettings;
  /** @nestjs/config's module holding them, for every Nest application of the process. */
  module: DynamicModule;
}

/**
 * Reads the GATEHOUSE_* environment through @nestjs/config's
 * `ConfigModule.forRoot({ validate })`, with readGatewaySettings as the
 * validator: every problem is collected and thrown as one SettingsError,
 * worded exactly as before. No `.env` file is read (settings come from the
 * environment, as a container's do) and nothing is written back to
 * `process.env`; ConfigService serves the validated, typed settings only.
 */
export async function loadGatewaySettings(argv: readonly string[] = []): Promise<LoadedSettings> {
  let settings: GatewaySettings | undefined;
  const module = await ConfigModule.forRoot({
    isGlobal: true,
    ignoreEnvFile: true,
    skipProcessEnv: true,
    cache: true,
    validate: (env) => {
      settings = readGatewaySettings(env as NodeJS.ProcessEnv, argv);
      return { [GATEWAY_SETTINGS]: settings };
    },
  });
  return { settings: settings!, module };
}

/** @nestjs/config's module for settings validated elsewhere (tests that build a GatewayConfig by hand). */
function settingsModuleOf(settings: GatewaySettings): Promise<DynamicModule> {
  return ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, ignoreEnvVars: true, skipProcessEnv: true, load: [() => ({ [GATEWAY_SETTINGS]: settings })] });
}

/**
 * Provides the already-validated declarative config (GatewayConfig), the
 * process logger and @nestjs/config's ConfigService to every module. Named
 * apart from @nestjs/config's ConfigModule, which it imports.
 */
@Global()
@Module({})
export class GatewayConfigModule {
  static forRoot(config: GatewayConfig, logger: Logger, settingsModule?: DynamicModule): DynamicModule {
    return {
      module: GatewayConfigModule,
      imports: [settingsModule ?? settingsModuleOf(config.settings)],
      providers: [
        { provide: GatewayConfig, useValue: config },
        { provide: LOGGER, useValue: logger },
      ],
      exports: [GatewayConfig, LOGGER],
    };
  }
}
