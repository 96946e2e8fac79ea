import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import { ForbiddenError, UnauthorizedError } from './auth.errors.js';
import { OpenIdConnectService } from './openid-connect.service.js';
import { REQUIREMENTS_KEY } from './require-scopes.decorator.js';
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
    private readonly oidc: OpenIdConnectService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<FastifyRequest>().raw;
    const ctx = req.gatehouse!;
    const decorated = this.reflector.getAllAndOverride<Requirement[] | undefined>(REQUIREMENTS_KEY, [context.getHandler(), context.getClass()]);
    const config = ctx.match?.route.plugins['openid-connect'];
    const policy = config ? this.oidc.policy(config) : undefined;
    const requirements = decorated ?? policy?.requirements;
    if (!requirements?.length) return true;

    const principal = ctx.principal;
    if (!principal) {
      // Only a CORS preflight passed authentication without a principal (run_on_preflight: false).
      if (config && !config.run_on_preflight && req.method === 'OPTIONS') return true;
      throw new UnauthorizedError(config?.unauthorized_error_message ?? 'Unauthorized', 'no authenticated caller', false);
    }

    // A repeated token on the same policy reuses the decision made for it.
    const memo = principal.memo;
    const key = decorated ?? policy!;
    let failure: RequirementFailure | undefined;
    if (memo && memo.decidedFor === key) failure = memo.decision as RequirementFailure | undefined;
    else {
      failure = evaluateRequirements(principal.claims, requirements);
      if (memo) {
        memo.decidedFor = key;
        memo.decision = failure;
      }
    }
    if (!failure) return true;

    const reason = describeFailure(failure);
    this.logger.warn({ request_id: ctx.requestId, route: ctx.match?.route.name, caller: ctx.caller, via: principal.via }, reason);
    throw new ForbiddenError(config?.forbidden_error_message ?? 'Forbidden', reason, challengeScope(failure));
  }
}
