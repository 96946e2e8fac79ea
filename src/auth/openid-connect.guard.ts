import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { OpenIdConnectService } from './openid-connect.service.js';

/**
 * Authentication for proxied routes that carry an openid-connect plugin. A route
 * without one passes untouched. When the plugin answers by itself (login
 * redirect, callback with `login_action: redirect|response`, logout) the request
 * goes no further.
 */
@Injectable()
export class OpenIdConnectGuard implements CanActivate {
  constructor(private readonly oidc: OpenIdConnectService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const ctx = request.raw.gatehouse!;
    const config = ctx.match?.route.plugins['openid-connect'];
    if (!config) return true;
    const reply = http.getResponse<FastifyReply>();
    reply.hijack();
    const outcome = await this.oidc.authenticate(request.raw, reply.raw, ctx, config);
    return outcome === 'proceed';
  }
}
