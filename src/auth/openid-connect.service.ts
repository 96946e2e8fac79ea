import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../common/request-context.js';
import { GatewayConfig } from '../config/gateway-config.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { isBrowserNavigation, withoutCallbackParams } from './auth-http.js';
import { UnauthorizedError } from './auth.errors.js';
import { hideCredentials, presentedToken } from './bearer-token.js';
import { IssuerRegistry } from './issuer.registry.js';
import { LoginFlow } from './login.flow.js';
import { LogoutFlow } from './logout.flow.js';
import { OpenIdConnectInstance } from './openid-connect.instance.js';
import { OwnedCookies } from './owned-cookies.js';
import type { Principal } from './principal.js';
import { SessionAuthenticator } from './session.authenticator.js';
import { sessionCookieBudget, type SessionStoreOptions } from './session.store.js';
import { TokenAuthenticator } from './token.authenticator.js';
import { UpstreamIdentity } from './upstream-identity.js';

export { headerSafe } from './upstream-identity.js';
export { isBrowserNavigation, safeReturnPath } from './auth-http.js';

/** What authenticate() decided. `responded`: the plugin answered itself (redirect to login, callback, logout). */
export type AuthOutcome = 'proceed' | 'responded';

/**
 * The openid-connect plugin's authentication: who the caller is, in the order
 * Kong's plugin decides it. Each step lives in its own authenticator or flow;
 * this only orders them. Authorization (requirements) is the ScopesGuard's job.
 *
 * 1. a CORS preflight passes untouched when `run_on_preflight` is off;
 * 2. logout, then the login callback, answer themselves;
 * 3. a presented access token (`bearer`, `introspection`) decides alone;
 * 4. otherwise the session cookie (`session`);
 * 5. nobody: a browser navigation is sent to log in (`authorization_code`),
 *    anything else gets 401.
 */
@Injectable()
export class OpenIdConnectService implements OnModuleDestroy {
  private readonly instances = new Map<OpenIdConnectConfig, OpenIdConnectInstance>();
  /** Policy ids are never reused: they key caches (introspection results) that outlive a reload. */
  private instanceCount = 0;
  /** Every cookie the gateway sets, whatever route set it: none ever reaches an upstream. */
  readonly ownedCookies: OwnedCookies;
  private readonly sessionOptions: SessionStoreOptions;

  constructor(
    private readonly issuers: IssuerRegistry,
    private readonly tokens: TokenAuthenticator,
    private readonly sessions: SessionAuthenticator,
    private readonly login: LoginFlow,
    private readonly logoutFlow: LogoutFlow,
    private readonly identity: UpstreamIdentity,
    config: GatewayConfig,
  ) {
    this.ownedCookies = new OwnedCookies(config.openIdConnectConfigs.filter((c) => c.session_secret).map((c) => c.session_cookie_name));
    // Cookie sessions must fit under the gateway's own request-header limit, or their browser gets 431 forever.
    this.sessionOptions = { maxCookieBytes: sessionCookieBudget(config.settings.maxHeaderSize) };
  }

  /** The compiled openid-connect plugin instance: built once, at load, when the route table is compiled. */
  instance(config: OpenIdConnectConfig): OpenIdConnectInstance {
    let p = this.instances.get(config);
    if (!p) {
      if (config.session_secret) this.ownedCookies.add([config.session_cookie_name]);
      p = new OpenIdConnectInstance(config, this.issuers.get(config), ++this.instanceCount, this.ownedCookies, this.sessionOptions);
      this.instances.set(config, p);
    }
    return p;
  }

  /**
   * After a new route table is swapped in: the instances it no longer uses are
   * forgotten, and their session stores closed once requests still running on
   * the old table are done with them.
   */
  retain(live: ReadonlySet<OpenIdConnectInstance>, graceMs = 30_000): void {
    for (const [config, p] of this.instances) {
      if (live.has(p)) continue;
      this.instances.delete(config);
      if (p.sessions) setTimeout(() => void p.sessions?.close(), graceMs).unref();
    }
  }

  /**
   * The common case without a single await: a bearer JWT this plugin instance already
   * verified, or one signed by a key already known. False whenever anything
   * else applies (no token, keys to fetch, logout, callback, userinfo); the
   * caller then takes authenticate().
   */
  authenticateCached(req: IncomingMessage, ctx: RequestContext, instance: OpenIdConnectInstance): boolean {
    const config = instance.config;
    if (!instance.bearerWithoutAwait || instance.callbackPaths.has(ctx.path)) return false;
    if (req.method === 'OPTIONS' && !config.run_on_preflight) return false;
    if (this.logoutFlow.matches(req, ctx, config)) return false;
    const presented = presentedToken(req, ctx, config);
    if (!presented) return false;
    const verified = this.tokens.verifyCached(presented.token, instance, req);
    if (!verified) return false;
    if (config.hide_credentials) hideCredentials(req, ctx, config, instance.cookiesHidingCredential);
    void this.identity.establish(req, ctx, instance, { via: 'bearer', claims: verified.claims, accessToken: presented.token, memo: verified });
    return true;
  }

  async authenticate(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, instance: OpenIdConnectInstance): Promise<AuthOutcome> {
    const config = instance.config;
    const methods = instance.methods;

    if (!config.run_on_preflight && req.method === 'OPTIONS' && req.headers.origin && req.headers['access-control-request-method']) {
      return 'proceed';
    }
    if (this.logoutFlow.matches(req, ctx, config)) {
      await this.logoutFlow.logout(req, res, ctx, instance);
      return 'responded';
    }
    if (methods.has('authorization_code') && instance.callbackPaths.has(ctx.path) && req.method === 'GET') {
      const q = new URLSearchParams(ctx.query.slice(1));
      if (q.has('state') && (q.has('code') || q.has('error'))) {
        const outcome = await this.login.callback(req, res, ctx, instance, q);
        if (outcome !== 'replayed') return outcome;
        // A reload of the callback URL after a completed login (login_action: upstream leaves it in the
        // address bar): the code is spent, but the session it created is good. Serve it without the parameters.
        ctx.query = withoutCallbackParams(ctx.query);
        ctx.responseHeaders = { ...ctx.responseHeaders, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };
      }
    }

    // Only `bearer` and `introspection` accept a presented token (Kong's meaning): a session-only route ignores one.
    const presented = methods.has('bearer') || methods.has('introspection') ? presentedToken(req, ctx, config) : undefined;
    let principal: Principal | undefined;
    if (presented) {
      principal = await this.tokens.principal(presented.token, instance);
      if (config.hide_credentials) hideCredentials(req, ctx, config, instance.cookiesHidingCredential);
    } else if (instance.sessions && methods.has('session')) {
      principal = await this.sessions.principal(req, ctx, instance);
    }

    if (!principal) {
      if (methods.has('authorization_code') && instance.sessions && isBrowserNavigation(req)) {
        await this.login.start(req, res, ctx, instance);
        return 'responded';
      }
      throw UnauthorizedError.missingCredentials(config.unauthorized_error_message, 'no credentials');
    }
    const pending = this.identity.establish(req, ctx, instance, principal);
    if (pending) await pending;
    return 'proceed';
  }

  onModuleDestroy() {
    for (const p of this.instances.values()) void p.sessions?.close();
  }
}
