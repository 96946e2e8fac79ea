import { type DynamicModule, Module } from '@nestjs/common';
import { createLogger, LOGGER } from '../common/logger.js';
import { GatewayConfig } from '../config/gateway-config.js';
import { IntrospectionClient } from './introspection.client.js';
import { IssuerRegistry } from './issuer.registry.js';
import { LoginFlow } from './login.flow.js';
import { LogoutFlow } from './logout.flow.js';
import { OpenIdConnectService } from './openid-connect.service.js';
import { OpenIdConnectAuthGuard } from './openid-connect-auth.guard.js';
import { compileOpenIdConnectAuthOptions, OPENID_CONNECT_AUTH_CONFIG, type OpenIdConnectAuthModuleOptions } from './openid-connect-auth.options.js';
import { ScopesGuard } from './scopes.guard.js';
import { SessionAuthenticator } from './session.authenticator.js';
import { TokenAuthenticator } from './token.authenticator.js';
import { TokenRefresher } from './token-refresher.js';
import { UpstreamIdentity } from './upstream-identity.js';

/**
 * The openid-connect plugin: the issuer registry, one provider per
 * authentication step (token, session, refresh, login, logout, introspection,
 * upstream identity), the service that orders them, and the ScopesGuard.
 *
 * Imported as it is by the gateway (its GatewayConfig and LOGGER come from
 * GatewayConfigModule); `AuthModule.forRoot(options)` is the same for an
 * application of its own, without a Kong file.
 */
@Module({
  providers: [
    IssuerRegistry,
    IntrospectionClient,
    TokenAuthenticator,
    TokenRefresher,
    SessionAuthenticator,
    UpstreamIdentity,
    LoginFlow,
    LogoutFlow,
    OpenIdConnectService,
    ScopesGuard,
  ],
  exports: [IssuerRegistry, OpenIdConnectService, ScopesGuard],
})
export class AuthModule {
  /**
   * For a team's own Nest application (Express or Fastify): the openid-connect
   * parameters that matter for bearer tokens and sessions, checked by the
   * plugin's schema (every problem thrown at once, as a ConfigError), and
   * OpenIdConnectAuthGuard for `@UseGuards`, with `@RequireScopes`/`@RequireRoles`.
   * Global, so every module's controllers can use the guard.
   */
  static forRoot(options: OpenIdConnectAuthModuleOptions): DynamicModule {
    const { config, gatewayConfig } = compileOpenIdConnectAuthOptions(options);
    return {
      module: AuthModule,
      global: true,
      providers: [
        { provide: GatewayConfig, useValue: gatewayConfig },
        { provide: LOGGER, useValue: options.logger ?? createLogger('info') },
        { provide: OPENID_CONNECT_AUTH_CONFIG, useValue: config },
        OpenIdConnectAuthGuard,
      ],
      exports: [OpenIdConnectAuthGuard, ScopesGuard, OpenIdConnectService, IssuerRegistry, OPENID_CONNECT_AUTH_CONFIG, LOGGER],
    };
  }
}
