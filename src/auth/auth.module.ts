import { Module } from '@nestjs/common';
import { IntrospectionClient } from './introspection.client.js';
import { IssuerRegistry } from './issuer.registry.js';
import { LoginFlow } from './login.flow.js';
import { LogoutFlow } from './logout.flow.js';
import { OpenIdConnectService } from './openid-connect.service.js';
import { ScopesGuard } from './scopes.guard.js';
import { SessionAuthenticator } from './session.authenticator.js';
import { TokenAuthenticator } from './token.authenticator.js';
import { TokenRefresher } from './token-refresher.js';
import { UpstreamIdentity } from './upstream-identity.js';

/**
 * The openid-connect plugin: the issuer registry, one provider per
 * authentication step (token, session, refresh, login, logout, introspection,
 * upstream identity), the service that orders them, and the ScopesGuard.
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
export class AuthModule {}
