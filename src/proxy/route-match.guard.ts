import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { BadRequestError, NoRouteError } from '../common/gateway.error.js';
import { normalizePath } from './path-normalizer.js';
import { RouteTable } from './route-table.js';

/**
 * First guard on the proxy path: normalises the path once and finds the route.
 * Later guards (authentication, ScopesGuard) read `ctx.match.route.plugins`.
 */
@Injectable()
export class RouteMatchGuard implements CanActivate {
  constructor(private readonly routes: RouteTable) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<FastifyRequest>().raw;
    const ctx = req.gatehouse!;
    const url = req.url!;
    const q = url.indexOf('?');
    const normalized = normalizePath(q === -1 ? url : url.slice(0, q));
    if (!normalized.ok) throw new BadRequestError(normalized.reason);
    ctx.path = normalized.path;
    ctx.query = q === -1 ? '' : url.slice(q);
    const match = this.routes.match(req.method!, req.headers.host, normalized.path);
    if (!match) throw new NoRouteError();
    ctx.match = match;
    return true;
  }
}
