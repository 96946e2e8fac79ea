import { HttpModule } from '@nestjs/axios';
import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import type { Logger } from 'pino';
import { ScopesGuard } from '../auth/scopes.guard.js';
import { LOGGER } from '../common/logger.js';
import { ConfigRuntime } from '../config/config-runtime.js';
import type { ConfigStore } from '../config/config-store.js';
import { AdminAuthGuard, AdminBearerStrategy } from './admin-auth.js';
import { AdminService } from './admin.service.js';
import { AdminStatusService, UPSTREAM_CHECK_TIMEOUT_MS } from './admin-status.js';
import { ADMIN_LOGGER, ADMIN_OPTIONS, CONFIG_STORE } from './admin.tokens.js';
import { ConfigController } from './controllers/config.controller.js';
import { InfoController } from './controllers/info.controller.js';
import { PluginsController } from './controllers/plugins.controller.js';
import { RoutesController } from './controllers/routes.controller.js';
import { SchemasController } from './controllers/schemas.controller.js';
import { ServicesController } from './controllers/services.controller.js';

export interface AdminOptions {
  /** Gatehouse's version, shown by `GET /`. */
  version: string;
  /** The gateway's settings as `GET /` shows them (secrets are redacted there). */
  configuration: Record<string, unknown>;
  /** Bearer authentication by the IdP; undefined on a loopback listener without GATEHOUSE_ADMIN_ISSUER. */
  auth?: { issuer: string; audience: string };
}

/**
 * The Admin API: a regular Nest application (controllers per entity, one
 * exception filter) over the proxy's live ConfigRuntime and the store. With
 * auth on, every handler runs Passport's AuthGuard (the admin bearer strategy)
 * and then the ScopesGuard with the controllers' `@RequireScopes`.
 */
@Module({})
export class AdminModule {
  static register(runtime: ConfigRuntime, store: ConfigStore, logger: Logger, options: AdminOptions): DynamicModule {
    const guards: Provider[] = options.auth
      ? [AdminBearerStrategy, { provide: APP_GUARD, useClass: AdminAuthGuard }, { provide: APP_GUARD, useClass: ScopesGuard }]
      : [];
    return {
      module: AdminModule,
      // GET /status probes upstream origins with terminus's HttpHealthIndicator over the HttpModule's axios client.
      imports: [TerminusModule.forRoot({ logger: false }), HttpModule.register({ timeout: UPSTREAM_CHECK_TIMEOUT_MS, maxRedirects: 0 })],
      controllers: [InfoController, ServicesController, RoutesController, PluginsController, SchemasController, ConfigController],
      providers: [
        { provide: ConfigRuntime, useValue: runtime },
        { provide: CONFIG_STORE, useValue: store },
        { provide: ADMIN_LOGGER, useValue: logger },
        { provide: LOGGER, useValue: logger },
        { provide: ADMIN_OPTIONS, useValue: options },
        AdminService,
        AdminStatusService,
        ...guards,
      ],
    };
  }
}
