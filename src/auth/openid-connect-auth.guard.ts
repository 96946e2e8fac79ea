import { type CanActivate, type ExecutionContext, HttpException, Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { GatewayError } from '../common/gateway.error.js';
import { LOGGER } from '../common/logger.js';
import { RequestContext, requestIdFor } from '../common/request-context.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { OPENID_CONNECT_AUTH_CONFIG } from './openid-connect-auth.options.js';
import { OpenIdConnectService } from './openid-connect.service.js';
import { ScopesGuard } from './scopes.guard.js';

/** What both adapters' requests and responses are: Fastify wraps the Node objects (`raw`), Express extends them. */
interface AnyRequest {
  raw?: IncomingMessage;
  user?: unknown;
}
interface AnyResponse {
  raw?: ServerResponse;
}

/**
 * Authentication and authorization for an application's own Nest handlers
 * (`AuthModule.forRoot(options)` then `@UseGuards(OpenIdConnectAuthGuard)`), with the
 * openid-connect plugin's own steps: a bearer token (RFC 6750 §2.1; verified
 * JWT or introspection), else the gateway's session cookie. Never a login
 * redirect: a caller without credentials gets 401 `{"message":"Unauthorized"}`
 * with `WWW-Authenticate: Bearer realm="gatehouse"` (RFC 6750 §3; with
 * `error="invalid_token"` when one was presented), a caller lacking what is
 * required 403 with `error="insufficient_scope"`.
 *
 * What is required: the options' `scopes_required`/`audience_required`/
 * `roles_required`/`groups_required`, and the handler's and controller's
 * `@RequireScopes`/`@RequireRoles` (they all add up). The principal is left on
 * `req.user` (as Passport does) for handlers and later guards. Express and
 * Fastify alike: the guard works on the Node request and response underneath.
 */
@Injectable()
export class OpenIdConnectAuthGuard implements CanActivate {
  constructor(
    private readonly oidc: OpenIdConnectService,
    private readonly scopes: ScopesGuard,
    @Inject(OPENID_CONNECT_AUTH_CONFIG) private readonly config: OpenIdConnectConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<AnyRequest>();
    const res = http.getResponse<AnyResponse>();
    const raw = (req.raw ?? req) as IncomingMessage;
    const rawRes = (res.raw ?? res) as ServerResponse;
    // Compiled once and kept by the service (keyed by the config object).
    const instance = this.oidc.instance(this.config);
    const ctx = raw.gatehouse ?? new RequestContext(requestIdFor(raw, false), false);
    raw.gatehouse = ctx;
    const url = raw.url ?? '/';
    const q = url.indexOf('?');
    ctx.path = q < 0 ? url : url.slice(0, q);
    ctx.query = q < 0 ? '' : url.slice(q);
    try {
      await this.oidc.authenticate(raw, rawRes, ctx, instance);
      // A session renewed or refreshed on the way: its new cookies go out with whatever the handler answers.
      if (ctx.responseHeaders && !rawRes.headersSent) for (const [name, value] of Object.entries(ctx.responseHeaders)) rawRes.setHeader(name, value);
      if (ctx.principal) req.user = ctx.principal;
      this.scopes.authorizeRoute(ctx, instance, raw.method ?? 'GET');
      return this.scopes.canActivate(context);
    } catch (err) {
      throw this.answer(err, rawRes, ctx);
    }
  }

  /**
   * A GatewayError as an HttpException, so the application's own exception
   * filter (Nest's default, or the team's) writes it: the body is Kong's
   * `{"message": …}`; the RFC 6750 challenge goes on the Node response now,
   * where either adapter's reply keeps it.
   */
  private answer(err: unknown, res: ServerResponse, ctx: RequestContext): unknown {
    if (!(err instanceof GatewayError)) return err;
    for (const [name, value] of Object.entries(err.headers ?? {})) if (!res.headersSent) res.setHeader(name, value);
    if (err.status >= 500) this.logger.error({ request_id: ctx.requestId, err: err.message }, 'authentication failed');
    else if (err.status === 401) this.logger.debug({ request_id: ctx.requestId, reason: err.message }, 'unauthenticated');
    return new HttpException({ message: err.publicMessage, ...err.body }, err.status, { cause: err });
  }
}
