import { Module } from '@nestjs/common';
import { IssuerRegistry } from './issuer.registry.js';
import { OpenIdConnectGuard } from './openid-connect.guard.js';
import { OpenIdConnectService } from './openid-connect.service.js';
import { ScopesGuard } from './scopes.guard.js';

@Module({
  providers: [IssuerRegistry, OpenIdConnectService, OpenIdConnectGuard, ScopesGuard],
  exports: [IssuerRegistry, OpenIdConnectService, OpenIdConnectGuard, ScopesGuard],
})
export class AuthModule {}
