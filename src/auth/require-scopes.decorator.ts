import { compileRequirement, type Requirement } from './requirements.js';

export const REQUIREMENTS_KEY = 'gatehouse:requirements';

/**
 * Adds requirements to a handler or controller instead of replacing them:
 * every requirement must be met (AND), so stacked decorators and a class-level
 * decorator plus a handler-level one add up. (Nest's SetMetadata would let the
 * last one win, silently dropping a requirement.)
 */
function addRequirements(requirements: Requirement[]): ClassDecorator & MethodDecorator {
  return ((target: object, _key?: string | symbol, descriptor?: PropertyDescriptor) => {
    const where = descriptor ? (descriptor.value as object) : target;
    const existing = (Reflect.getMetadata(REQUIREMENTS_KEY, where) as Requirement[] | undefined) ?? [];
    Reflect.defineMetadata(REQUIREMENTS_KEY, [...existing, ...requirements], where);
    return descriptor ?? target;
  }) as ClassDecorator & MethodDecorator;
}

/**
 * Requirements for one of the gateway's own handlers, in Kong's notation:
 * `@RequireScopes('admin')`, `@RequireScopes('read write', 'admin')` = (read AND write) OR admin.
 * Evaluated by the ScopesGuard with the same function as proxied routes.
 */
export const RequireScopes = (...scopes: string[]) => addRequirements([compileRequirement('scopes', ['scope'], scopes)].filter(Boolean) as Requirement[]);

export const RequireRoles = (claim: string[], ...roles: string[]) => addRequirements([compileRequirement('roles', claim, roles)].filter(Boolean) as Requirement[]);

/** The requirements of a handler: its controller's, then its own (all must be met). */
export function requirementsOf(handler: object, controller: object): Requirement[] {
  const own = (Reflect.getMetadata(REQUIREMENTS_KEY, handler) as Requirement[] | undefined) ?? [];
  const inherited = (Reflect.getMetadata(REQUIREMENTS_KEY, controller) as Requirement[] | undefined) ?? [];
  return [...inherited, ...own];
}
