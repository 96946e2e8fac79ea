import { SetMetadata } from '@nestjs/common';
import { compileRequirement, type Requirement } from './requirements.js';

export const REQUIREMENTS_KEY = 'gatehouse:requirements';

/**
 * Requirements for one of the gateway's own handlers, in Kong's notation:
 * `@RequireScopes('admin')`, `@RequireScopes('read write', 'admin')` = (read AND write) OR admin.
 * Evaluated by the ScopesGuard with the same function as proxied routes.
 */
export const RequireScopes = (...scopes: string[]) =>
  SetMetadata(REQUIREMENTS_KEY, [compileRequirement('scopes', ['scope'], scopes)].filter(Boolean) as Requirement[]);

export const RequireRoles = (claim: string[], ...roles: string[]) =>
  SetMetadata(REQUIREMENTS_KEY, [compileRequirement('roles', claim, roles)].filter(Boolean) as Requirement[]);
