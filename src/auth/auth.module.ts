import { Module } from '@nestjs/common';
import { IssuerRegistry } from './issuer.registry.js';
import { OpenIdConnectService } from './openid-connect.service.js';
import { ScopesGuard } from './scopes.guard.js';

@Module({
  providers: [IssuerRegistry, OpenIdConnectService, ScopesGuard],
  exports: [IssuerRegistry, OpenIdConnectService, ScopesGuard],
})
export class AuthModule {}
