import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import type { RequestContext } from '../common/request-context.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { respond } from './auth-http.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';

/**
 * Logout (Kong's `logout_uri_suffix` / `logout_query_arg` with `logout_methods`):
 * every session cookie chunk deleted and the stored session removed, the
 * tokens optionally revoked (RFC 7009), then RP-initiated logout at the IdP's
 * `end_session_endpoint` with `id_token_hint` when it has one.
 */
@Injectable()
export class LogoutFlow {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  matches(req: IncomingMessage, ctx: RequestContext, config: OpenIdConnectConfig): boolean {
    if (!config.logout_methods.includes(req.method as 'GET')) return false;
    if (config.logout_uri_suffix && ctx.path.endsWith(config.logout_uri_suffix)) return true;
    if (config.logout_query_arg && ctx.query && new URLSearchParams(ctx.query.slice(1)).has(config.logout_query_arg)) return true;
    return false;
  }

  async logout(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, instance: OpenIdConnectInstance): Promise<void> {
    const config = instance.config;
    const store = instance.sessions;
    const session = store ? await store.read(req) : undefined;
    const cookies = store ? await store.destroy(req, session) : [];
    let location: string | undefined = config.logout_redirect_uri?.[0];
    if (session) {
      try {
        const cfg = await instance.client();
        if (config.logout_revoke && cfg.serverMetadata().revocation_endpoint) {
          for (const t of [session.refresh_token, session.access_token]) if (t) await client.tokenRevocation(cfg, t).catch(() => undefined);
        }
        if (cfg.serverMetadata().end_session_endpoint) {
          const params: Record<string, string> = {};
          if (config.client_id?.[0]) params.client_id = config.client_id[0];
          if (session.id_token) params.id_token_hint = session.id_token;
          if (config.logout_redirect_uri?.[0]) params.post_logout_redirect_uri = config.logout_redirect_uri[0];
          location = client.buildEndSessionUrl(cfg, params).href;
        }
      } catch (err) {
        // The local session is gone either way; the IdP's session may outlive it.
        this.logger.warn({ request_id: ctx.requestId, reason: err instanceof Error ? err.message : String(err) }, 'RP-initiated logout at the identity provider failed');
      }
      this.logger.info({ request_id: ctx.requestId, sub: session.sub }, 'logged out');
    }
    ctx.denial = 'logout';
    if (location) respond(res, 302, { location, 'set-cookie': cookies, 'cache-control': 'no-store', 'x-request-id': ctx.requestId });
    else respond(res, 200, { 'content-type': 'application/json; charset=utf-8', 'set-cookie': cookies, 'cache-control': 'no-store', 'x-request-id': ctx.requestId }, JSON.stringify({ message: 'Logged out' }));
  }
}
