import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { GatewayError, NoRouteError } from '../common/gateway.error.js';
import type { RequestContext } from '../common/request-context.js';
import { normalizePath } from './path-normalizer.js';
import type { RouteTable } from './route-table.js';

/**
 * 400 for a path the gateway will not route. The reason goes into the JSON body
 * as well as the log: it is one of the normaliser's fixed phrases, never a piece
 * of the request, and a client whose path was refused needs to know which rule
 * it broke (upstreams disagree on these paths, so the gateway cannot guess).
 */
export class UnsafePathError extends GatewayError {
  constructor(reason: string) {
    super(400, 'Bad request', { reason, body: { reason } });
  }
}

/** Whatever holds the route table requests are matched against (ProxyConfigRuntime). */
export const ROUTE_TABLE_SOURCE = Symbol('ROUTE_TABLE_SOURCE');

const UNSAFE_JOIN = 'the part of the path left after strip_path would be a dot segment upstream';

/**
 * First step on the proxy path: normalises the path once and finds the route.
 * The route is chosen for the normalised path and the upstream path is built
 * from that same string, never from `req.url`, so the upstream is asked for the
 * resource the route (and its plugins) were chosen for. Later steps
 * (authentication, the ScopesGuard) read `ctx.match.route.plugins`.
 */
@Injectable()
export class RouteMatcher {
  /** The live table: ProxyConfigRuntime's, or a fixed one (tests). */
  constructor(@Inject(ROUTE_TABLE_SOURCE) private readonly source: { readonly routeTable: RouteTable }) {}

  resolve(req: IncomingMessage, ctx: RequestContext): void {
    const url = req.url!;
    const q = url.indexOf('?');
    const normalized = normalizePath(q === -1 ? url : url.slice(0, q));
    if (!normalized.ok) throw new UnsafePathError(normalized.reason);
    ctx.path = normalized.path;
    ctx.query = q === -1 ? '' : url.slice(q);
    const match = this.source.routeTable.match(req.method!, req.headers.host, normalized.path);
    if (!match) throw new NoRouteError();
    if (match.upstreamPath === undefined) throw new UnsafePathError(UNSAFE_JOIN);
    ctx.match = match;
  }
}
