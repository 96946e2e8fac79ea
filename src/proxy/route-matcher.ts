import { Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { BadRequestError, NoRouteError } from '../common/gateway.error.js';
import type { RequestContext } from '../common/request-context.js';
import { normalizePath } from './path-normalizer.js';
import { RouteTable } from './route-table.js';

/**
 * First step on the proxy path: normalises the path once and finds the route.
 * Later steps (authentication, the ScopesGuard) read `ctx.match.route.plugins`.
 */
@Injectable()
export class RouteMatcher {
  constructor(private readonly routes: RouteTable) {}

  resolve(req: IncomingMessage, ctx: RequestContext): void {
    const url = req.url!;
    const q = url.indexOf('?');
    const normalized = normalizePath(q === -1 ? url : url.slice(0, q));
    if (!normalized.ok) throw new BadRequestError(normalized.reason);
    ctx.path = normalized.path;
    ctx.query = q === -1 ? '' : url.slice(q);
    const match = this.routes.match(req.method!, req.headers.host, normalized.path);
    if (!match) throw new NoRouteError();
    ctx.match = match;
  }
}
