import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import type { IncomingMessage } from 'node:http';
import type { RequestContext } from '../common/request-context.js';
import { ForbiddenError, UnauthorizedError } from './auth.errors.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
import type { Principal } from './principal.js';
import { requirementsOf } from './require-scopes.decorator.js';
import { challengeScope, describeFailure, evaluateRequirements, type Requirement, type RequirementFailure } from './requirements.js';

/**
 * Authorization: scopes, audience, roles and groups, from a decorator on one of
 * the gateway's own handlers or from the matched route's openid-connect config.
 * Both go through evaluateRequirements(); the IdP's claims decide, the gateway
 * only compares.
 */
@Injectable()
export class ScopesGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Nest's entry: requirements from `@RequireScopes`/`@RequireRoles` on one of
   * the gateway's own handlers and its controller (they add up). The caller is
   * the proxy's request context or, on a Nest application, the principal a
   * Passport guard put on `req.user`; Express and Fastify requests alike.
   */
  canActivate(context: ExecutionContext): boolean {
    const decorated = requirementsOf(context.getHandler(), context.getClass());
    if (!decorated.length) return true;
    const req = context.switchToHttp().getRequest<{ raw?: IncomingMessage; user?: unknown; id?: unknown; headers?: Record<string, unknown> }>();
    const raw = (req.raw ?? req) as IncomingMessage;
    const principal = raw.gatehouse?.principal ?? asPrincipal(req.user);
    if (!principal) throw UnauthorizedError.missingCredentials('Unauthorized', 'no authenticated caller');
    const ctx = raw.gatehouse ?? ({ requestId: String(req.id ?? ''), principal, caller: principal.claims.sub } as unknown as RequestContext);
    ctx.principal ??= principal;
    this.authorize(ctx, decorated, decorated, 'Forbidden');
    return true;
  }

  /** The proxy's entry: requirements of the matched route's compiled openid-connect instance. */
  authorizeRoute(ctx: RequestContext, instance: OpenIdConnectInstance, method: string): void {
    if (!instance.requirements.length) return;
    const config = instance.config;
    if (!ctx.principal) {
      // Only a CORS preflight passes authentication without a principal (run_on_preflight: false).
      if (!config.run_on_preflight && method === 'OPTIONS') return;
      throw UnauthorizedError.missingCredentials(config.unauthorized_error_message, 'no authenticated caller');
    }
    this.authorize(ctx, instance.requirements, instance, config.forbidden_error_message);
  }

  private authorize(ctx: RequestContext, requirements: readonly Requirement[], key: object, forbiddenMessage: string): void {
    const principal = ctx.principal!;
    // A repeated token under the same requirements reuses the decision made for it.
    const memo = principal.memo;
    let failure: RequirementFailure | undefined;
    if (memo && memo.decidedFor === key) failure = memo.decision as RequirementFailure | undefined;
    else {
      failure = evaluateRequirements(principal.claims, requirements);
      if (memo) {
        memo.decidedFor = key;
        memo.decision = failure;
      }
    }
    if (!failure) return;
    const reason = describeFailure(failure);
    this.logger.warn({ request_id: ctx.requestId, route: ctx.match?.route.name, caller: ctx.caller, via: principal.via }, reason);
    throw new ForbiddenError(forbiddenMessage, reason, challengeScope(failure));
  }
}

function asPrincipal(user: unknown): Principal | undefined {
  const p = user as Principal | undefined;
  return p && typeof p === 'object' && p.claims && typeof p.claims === 'object' ? p : undefined;
}
