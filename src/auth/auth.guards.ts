import type { CanActivate, Type } from '@nestjs/common';
import { OpenIdConnectGuard } from './openid-connect.guard.js';
import { ScopesGuard } from './scopes.guard.js';

/** Guards that run on the proxy path after the route is matched, in order: who are you, then may you. */
export const AUTH_GUARDS: Type<CanActivate>[] = [OpenIdConnectGuard, ScopesGuard];
