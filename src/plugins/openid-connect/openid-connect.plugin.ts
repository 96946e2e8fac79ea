import { Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { attemptedMethod, authResultOf } from '../../auth/auth-outcome.js';
import type { OpenIdConnectInstance } from '../../auth/openid-connect.instance.js';
import { OpenIdConnectService } from '../../auth/openid-connect.service.js';
import { ScopesGuard } from '../../auth/scopes.guard.js';
import type { RequestContext } from '../../common/request-context.js';
import type { OpenIdConnectConfig } from '../../config/openid-connect.schema.js';
import { gatewayMetrics } from '../../metrics/gateway-metrics.js';
import { RESPONDED, type AccessResult, type CompiledPlugin, type GatewayPlugin, type PluginScope } from '../plugin.js';

/** The openid-connect plugin compiled for a route: its instance, and the access step that authenticates and authorizes. */
export interface OpenIdConnectStep extends CompiledPlugin {
  readonly instance: OpenIdConnectInstance;
}

/**
 * Kong's `openid-connect` (PRIORITY 1050): who the caller is (OpenIdConnectService)
 * and whether the IdP granted what the route requires (ScopesGuard). A repeat
 * bearer token is decided without a promise; anything that needs I/O (keys,
 * introspection, sessions, login) takes the asynchronous path.
 */
@Injectable()
export class OpenIdConnectPlugin implements GatewayPlugin<OpenIdConnectConfig> {
  readonly name = 'openid-connect';
  readonly priority = 1050;

  constructor(
    private readonly oidc: OpenIdConnectService,
    private readonly scopes: ScopesGuard,
  ) {}

  compile(config: OpenIdConnectConfig, scope?: PluginScope): OpenIdConnectStep {
    const instance = this.oidc.instance(config);
    const { oidc, scopes } = this;
    // gatehouse_auth_total for this route; login redirects, callbacks and logouts (RESPONDED) are flow steps, not decisions.
    const outcomes = gatewayMetrics.authOutcomesFor(scope?.route ?? '');
    const refused = (req: IncomingMessage, ctx: RequestContext, err: unknown): never => {
      outcomes.record(attemptedMethod(req, ctx, instance), authResultOf(err));
      throw err;
    };
    return {
      name: this.name,
      priority: this.priority,
      instance,
      access(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): AccessResult {
        try {
          if (oidc.authenticateCached(req, ctx, instance)) {
            scopes.authorizeRoute(ctx, instance, req.method!);
            outcomes.record(ctx.principal?.via ?? 'bearer', 'allowed');
            return;
          }
        } catch (err) {
          refused(req, ctx, err);
        }
        return oidc.authenticate(req, res, ctx, instance).then(
          (outcome) => {
            if (outcome === 'responded') return RESPONDED;
            try {
              scopes.authorizeRoute(ctx, instance, req.method!);
            } catch (err) {
              refused(req, ctx, err);
            }
            outcomes.record(ctx.principal?.via ?? 'none', 'allowed');
          },
          (err: unknown) => refused(req, ctx, err),
        );
      },
    };
  }
}
