import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import { GatewayError } from '../common/gateway.error.js';
import { LOGGER } from '../common/logger.js';
import type { RequestContext } from '../common/request-context.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { AccessTokenVerifier, InvalidTokenError } from './access-token.verifier.js';
import { IdentityProviderUnavailableError, UnauthorizedError } from './auth.errors.js';
import { cookieHeaderWithout, parseCookies, serializeCookie } from './cookies.js';
import { IssuerRegistry } from './issuer.registry.js';
import { OidcPolicy } from './oidc-policy.js';
import type { Principal } from './principal.js';
import { epoch, openJwe, sealJwe, type SessionData } from './session.store.js';
import { claimValues } from './requirements.js';

const TRANSACTION_COOKIE_PREFIX = 'gatehouse_auth_';
const TRANSACTION_TTL_S = 600;
/** Refresh this long before the access token expires, so no request carries an expired token upstream. */
const REFRESH_SKEW_S = 30;
/** A refreshed session is reused for requests that still carry the old cookie (their browser has not seen the new one yet). */
const REFRESHED_REUSE_MS = 30_000;
/** How long one instance may hold the cross-instance refresh lock (Redis sessions). */
const REFRESH_LOCK_MS = 5_000;
const INTROSPECTION_CACHE_MAX_MS = 5 * 60_000;
const CALLBACK_PARAMS = ['code', 'state', 'iss', 'session_state', 'error', 'error_description', 'error_uri'];

/** What authenticate() decided. `responded`: the plugin answered itself (redirect to login, callback, logout). */
export type AuthOutcome = 'proceed' | 'responded';

interface LoginTransaction {
  /** openid-client's state data (code_verifier, nonce, state, max_age). */
  oidc: Record<string, unknown>;
  /** Same-origin path (+query) to return to. */
  return_to: string;
  exp: number;
}

/**
 * The openid-connect plugin's request handling: login (authorization code +
 * PKCE through openid-client's Passport strategy), sessions, bearer JWTs,
 * introspection, refresh and logout. Authorization (requirements) is the
 * ScopesGuard's job; this only establishes who the caller is.
 */
@Injectable()
export class OpenIdConnectService implements OnModuleDestroy {
  private readonly policies = new Map<OpenIdConnectConfig, OidcPolicy>();
  private readonly verifiers = new Map<string, AccessTokenVerifier>();
  private readonly introspected = new Map<string, { claims: Record<string, unknown>; expiresAt: number }>();
  private readonly refreshing = new Map<string, Promise<SessionData | undefined>>();
  private readonly refreshed = new Map<string, { session: SessionData; until: number }>();

  constructor(
    private readonly issuers: IssuerRegistry,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  policy(config: OpenIdConnectConfig): OidcPolicy {
    let p = this.policies.get(config);
    if (!p) {
      if (!config.verify_signature) this.logger.warn({ issuer: config.issuer }, 'SECURITY: verify_signature is false: access token signatures are NOT checked on this route');
      p = new OidcPolicy(config, this.issuers.get(config.issuer, config.timeout, config.extra_jwks_uris, config.rediscovery_lifetime * 1000), this.policies.size + 1);
      this.policies.set(config, p);
    }
    return p;
  }

  /**
   * The common case without a single await: a bearer JWT this policy already
   * verified (the cache holds it until `exp`). Returns false whenever anything
   * else applies (no token, a miss, logout, callback, userinfo), and the caller
   * then takes the full authenticate() path.
   */
  authenticateCached(req: IncomingMessage, ctx: RequestContext, config: OpenIdConnectConfig): boolean {
    const policy = this.policy(config);
    if (config.upstream_user_info_header || policy.callbackPaths.has(ctx.path) || this.isLogout(req, ctx, config)) return false;
    if (!config.run_on_preflight && req.method === 'OPTIONS') return false;
    if (!(policy.methods.has('bearer') || policy.methods.has('session'))) return false;
    if (policy.methods.has('introspection') && config.introspect_jwt_tokens) return false;
    const presented = this.bearerToken(req, ctx, config);
    if (!presented || !isCompactJws(presented.token)) return false;
    // A repeat token is a cache hit; a new one signed by a key already known is verified right here.
    let verified;
    try {
      verified = this.verifierFor(policy).verifyOnConnection(presented.token, policy.tokenVerification, req.socket);
    } catch (err) {
      throw invalidTokenError(config, err);
    }
    if (!verified) return false;
    if (config.hide_credentials) this.hideCredential(ctx, presented.from, config);
    this.establish(req, ctx, policy, { via: 'bearer', claims: verified.claims, accessToken: presented.token, memo: verified });
    return true;
  }

  /** Records who the caller is and what the upstream will be told; a promise only when userinfo must be fetched. */
  private establish(req: IncomingMessage, ctx: RequestContext, policy: OidcPolicy, principal: Principal): void | Promise<void> {
    ctx.principal = principal;
    const sub = claimValues(principal.claims, policy.config.credential_claim)[0];
    ctx.caller = sub ?? (typeof principal.claims.sub === 'string' ? principal.claims.sub : undefined);
    return this.upstreamIdentity(req, ctx, policy, principal);
  }

  async authenticate(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, config: OpenIdConnectConfig): Promise<AuthOutcome> {
    const policy = this.policy(config);
    const methods = policy.methods;

    if (!config.run_on_preflight && req.method === 'OPTIONS' && req.headers.origin && req.headers['access-control-request-method']) {
      return 'proceed';
    }
    if (this.isLogout(req, ctx, config)) {
      await this.logout(req, res, ctx, policy);
      return 'responded';
    }
    if (methods.has('authorization_code') && policy.callbackPaths.has(ctx.path) && req.method === 'GET') {
      const q = new URLSearchParams(ctx.query.slice(1));
      if (q.has('state') && (q.has('code') || q.has('error'))) {
        const outcome = await this.callback(req, res, ctx, policy, q);
        if (outcome !== 'replayed') return outcome;
        // A reload of the callback URL after a completed login (login_action: upstream leaves it in the
        // address bar): the code is spent, but the session it created is good. Serve it without the parameters.
        stripCallbackParams(ctx);
        ctx.responseHeaders = { ...ctx.responseHeaders, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };
      }
    }

    const presented = this.bearerToken(req, ctx, config);
    let principal: Principal | undefined;
    if (presented) {
      principal = await this.tokenPrincipal(presented.token, policy);
      if (config.hide_credentials) this.hideCredential(ctx, presented.from, config);
    } else if (policy.sessions && methods.has('session')) {
      principal = await this.sessionPrincipal(req, ctx, policy);
    }

    if (!principal) {
      if (methods.has('authorization_code') && policy.sessions && isBrowserNavigation(req)) {
        await this.startLogin(req, res, ctx, policy);
        return 'responded';
      }
      throw new UnauthorizedError(config.unauthorized_error_message, 'no credentials', false);
    }
    const pending = this.establish(req, ctx, policy, principal);
    if (pending) await pending;
    return 'proceed';
  }

  // ---------------------------------------------------------------- bearer & introspection

  /** RFC 6750 §2: the header always; query and cookie only when bearer_token_param_type says so. */
  private bearerToken(req: IncomingMessage, ctx: RequestContext, config: OpenIdConnectConfig): { token: string; from: 'header' | 'query' | 'cookie' } | undefined {
    const where = config.bearer_token_param_type;
    const auth = req.headers.authorization;
    if (auth && where.includes('header')) {
      const space = auth.indexOf(' ');
      if (space > 0 && auth.slice(0, space).toLowerCase() === 'bearer') {
        const token = auth.slice(space + 1).trim();
        if (token) return { token, from: 'header' };
      }
    }
    if (where.includes('query') && ctx.query.includes('access_token=')) {
      const token = new URLSearchParams(ctx.query.slice(1)).get('access_token');
      if (token) return { token, from: 'query' };
    }
    if (where.includes('cookie') && config.bearer_token_cookie_name) {
      const token = parseCookies(req.headers.cookie).get(config.bearer_token_cookie_name);
      if (token) return { token, from: 'cookie' };
    }
    return undefined;
  }

  /** A presented token: JWTs verified locally (cached), opaque ones introspected (cached). */
  private async tokenPrincipal(token: string, policy: OidcPolicy): Promise<Principal> {
    const config = policy.config;
    const isJwt = isCompactJws(token);
    const canBearer = policy.methods.has('bearer') || policy.methods.has('session');
    const canIntrospect = policy.methods.has('introspection');
    try {
      if (isJwt && canBearer && !(canIntrospect && config.introspect_jwt_tokens)) {
        const verified = await this.verifyJwt(token, policy);
        return { via: 'bearer', claims: verified.claims, accessToken: token, memo: verified };
      }
      if (canIntrospect) {
        const claims = await this.introspect(token, policy);
        return { via: 'introspection', claims, accessToken: token, introspection: claims };
      }
    } catch (err) {
      throw invalidTokenError(config, err);
    }
    throw new UnauthorizedError(config.unauthorized_error_message, isJwt ? 'bearer tokens not accepted on this route' : 'opaque token and introspection not enabled', true);
  }

  private verifierFor(policy: OidcPolicy): AccessTokenVerifier {
    let verifier = this.verifiers.get(policy.verificationProfile);
    if (!verifier) this.verifiers.set(policy.verificationProfile, (verifier = new AccessTokenVerifier()));
    return verifier;
  }

  verifyJwt(token: string, policy: OidcPolicy) {
    return this.verifierFor(policy).verify(token, policy.tokenVerification);
  }

  /** RFC 7662, with client authentication; only `active: true` (the boolean) passes. */
  private async introspect(token: string, policy: OidcPolicy): Promise<Record<string, unknown>> {
    const key = `${policy.id}:${AccessTokenVerifier.cacheKey(token)}`;
    const now = Date.now();
    const hit = this.introspected.get(key);
    if (hit && hit.expiresAt > now) return hit.claims;
    const cfg = await policy.client();
    if (policy.config.introspection_endpoint) (cfg.serverMetadata() as { introspection_endpoint?: string }).introspection_endpoint ??= policy.config.introspection_endpoint;
    let result: Record<string, unknown>;
    try {
      result = (await client.tokenIntrospection(cfg, token)) as Record<string, unknown>;
    } catch (err) {
      throw new IdentityProviderUnavailableError(`introspection at ${policy.config.issuer} failed`, err);
    }
    if (result.active !== true) throw new InvalidTokenError('token is not active');
    if (typeof result.iss === 'string' && result.iss !== policy.issuer.metadata?.issuer) throw new InvalidTokenError('introspected token is from another issuer');
    const exp = typeof result.exp === 'number' ? result.exp * 1000 : now + INTROSPECTION_CACHE_MAX_MS;
    if (this.introspected.size > 50_000) this.introspected.clear();
    // Never cached beyond the token's own life, and not for long: revocation must show.
    this.introspected.set(key, { claims: result, expiresAt: Math.min(exp, now + Math.min(INTROSPECTION_CACHE_MAX_MS, policy.config.cache_ttl * 1000)) });
    return result;
  }

  private hideCredential(ctx: RequestContext, from: 'header' | 'query' | 'cookie', config: OpenIdConnectConfig) {
    if (from === 'header') addRemoval(ctx, 'authorization');
    else if (from === 'query') {
      const q = new URLSearchParams(ctx.query.slice(1));
      q.delete('access_token');
      const s = q.toString();
      ctx.query = s ? `?${s}` : '';
    } else if (config.bearer_token_cookie_name) {
      const name = config.bearer_token_cookie_name;
      (ctx.cookieFilters ??= []).push((n) => n === name);
    }
  }

  // ---------------------------------------------------------------- sessions

  private async sessionPrincipal(req: IncomingMessage, ctx: RequestContext, policy: OidcPolicy): Promise<Principal | undefined> {
    const store = policy.sessions!;
    let session = await store.read(req);
    (ctx.cookieFilters ??= []).push(store.isSessionCookie);
    if (!session) return undefined;
    if (session.iss !== policy.issuer.issuer) return undefined;

    const now = epoch();
    let write = store.touch(session, now);
    let refreshed = false;
    const expiring = session.expires_at !== undefined && now >= session.expires_at - REFRESH_SKEW_S;
    if (expiring) {
      const expired = now >= session.expires_at!;
      if (session.refresh_token && policy.config.refresh_tokens && policy.methods.has('refresh_token')) {
        const next = await this.refresh(session, policy, expired, req);
        if (!next) {
          setResponseCookies(ctx, await store.destroy(req, session));
          return undefined;
        }
        session = next;
        write = refreshed = true;
      } else if (expired) {
        setResponseCookies(ctx, await store.destroy(req, session));
        return undefined;
      }
    }
    let claims: Record<string, unknown>;
    try {
      claims = await this.accessTokenClaims(session, policy);
    } catch (err) {
      if (err instanceof InvalidTokenError) {
        setResponseCookies(ctx, await store.destroy(req, session));
        return undefined;
      }
      throw err;
    }
    if (write) setResponseCookies(ctx, await (refreshed ? store.write(session, req) : store.writeTouched(session, req)));
    return { via: 'session', claims, accessToken: session.access_token, idToken: session.id_token };
  }

  /** Claims for authorization: the access token's if it is a JWT, else introspection, else the ID token's. */
  private async accessTokenClaims(session: SessionData, policy: OidcPolicy): Promise<Record<string, unknown>> {
    if (isCompactJws(session.access_token)) return (await this.verifyJwt(session.access_token, policy)).claims;
    if (policy.methods.has('introspection')) return this.introspect(session.access_token, policy);
    // The ID token was fully validated at login; its claims stand in when the access token is opaque.
    if (session.id_token) return decodeClaims(session.id_token);
    return { sub: session.sub };
  }

  /**
   * Refresh once per session even when many requests arrive together: the first
   * request refreshes, the others wait for it, and requests still carrying the
   * old cookie shortly after reuse the result (the old refresh token may already
   * be rotated out). Returns undefined when the IdP refused: the session ends.
   */
  private refresh(session: SessionData, policy: OidcPolicy, expired: boolean, req: IncomingMessage): Promise<SessionData | undefined> {
    const done = this.refreshed.get(session.sid);
    if (done && done.until > Date.now()) return Promise.resolve({ ...done.session });
    let pending = this.refreshing.get(session.sid);
    if (!pending) {
      pending = this.doRefresh(session, policy, expired, req).finally(() => this.refreshing.delete(session.sid));
      this.refreshing.set(session.sid, pending);
    }
    return pending.then((s) => (s ? { ...s } : undefined));
  }

  private async doRefresh(session: SessionData, policy: OidcPolicy, expired: boolean, req?: IncomingMessage): Promise<SessionData | undefined> {
    const store = policy.sessions!;
    if (store.shared && req) {
      // Another gateway instance may be refreshing this very session: with rotating refresh tokens a
      // second refresh would be refused and end the session for everyone. Wait for its result instead.
      if (!(await store.acquireRefreshLock(session.sid, REFRESH_LOCK_MS))) {
        for (let waited = 0; waited < REFRESH_LOCK_MS; waited += 100) {
          await new Promise((r) => setTimeout(r, 100));
          const current = await store.reload(req);
          if (!current) return undefined;
          if (current.access_token !== session.access_token) return current;
        }
        if (!expired) return session;
        throw new IdentityProviderUnavailableError('token refresh by another instance did not finish');
      }
      try {
        const next = await this.refreshWithIdp(session, policy, expired);
        if (next && next !== session) await store.write(next, req);
        return next;
      } finally {
        await store.releaseRefreshLock(session.sid).catch(() => undefined);
      }
    }
    return this.refreshWithIdp(session, policy, expired);
  }

  private async refreshWithIdp(session: SessionData, policy: OidcPolicy, expired: boolean): Promise<SessionData | undefined> {
    const cfg = await policy.client();
    try {
      const tokens = await client.refreshTokenGrant(cfg, session.refresh_token!);
      const next: SessionData = {
        ...session,
        access_token: tokens.access_token,
        expires_at: tokens.expires_in ? epoch() + tokens.expires_in : undefined,
        refresh_token: tokens.refresh_token ?? session.refresh_token,
        id_token: tokens.id_token ?? session.id_token,
      };
      this.refreshed.set(session.sid, { session: next, until: Date.now() + REFRESHED_REUSE_MS });
      setTimeout(() => this.refreshed.delete(session.sid), REFRESHED_REUSE_MS).unref();
      this.logger.info({ sub: session.sub, issuer: session.iss }, 'session tokens refreshed');
      return next;
    } catch (err) {
      if (err instanceof client.ResponseBodyError) {
        this.logger.info({ sub: session.sub, error: err.error }, 'refresh refused by the identity provider: session ended');
        return undefined;
      }
      if (!expired) return session; // still valid for a little while: try again on a later request
      throw new IdentityProviderUnavailableError('token refresh failed', err);
    }
  }

  // ---------------------------------------------------------------- login

  private async startLogin(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, policy: OidcPolicy) {
    await policy.client();
    const shim = passportRequest(req, policy.redirectUri!.href, {});
    const outcome = await runPassport(policy, shim);
    if (outcome.kind !== 'redirect') throw toAuthError(outcome, policy);
    const stateData = shim.session.oidc as Record<string, unknown> | undefined;
    const state = typeof stateData?.state === 'string' ? stateData.state : undefined;
    if (!state) throw new GatewayError(500, 'An unexpected error occurred', { reason: 'authorization request without state' });
    const txn: LoginTransaction = { oidc: stateData!, return_to: ctx.path + ctx.query, exp: epoch() + TRANSACTION_TTL_S };
    const cookie = serializeCookie(transactionCookieName(state), await sealJwe(txn, policy.transactionKey!), {
      path: '/',
      httpOnly: true,
      secure: policy.secure,
      // Lax: the cookie must come back on the IdP's top-level redirect to the callback.
      sameSite: 'Lax',
      maxAge: TRANSACTION_TTL_S,
    });
    this.logger.debug({ request_id: ctx.requestId, route: ctx.match?.route.name }, 'redirecting to the identity provider for login');
    ctx.denial = 'login required: redirected to the identity provider';
    respond(res, 302, { location: outcome.url, 'set-cookie': cookie, 'cache-control': 'no-store', 'x-request-id': ctx.requestId });
  }

  /** Handles the IdP's redirect back. `replayed`: no transaction for this state but a live session (a reload). */
  private async callback(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, policy: OidcPolicy, q: URLSearchParams): Promise<AuthOutcome | 'replayed'> {
    const config = policy.config;
    const state = q.get('state')!;
    const name = transactionCookieName(state);
    const sealed = parseCookies(req.headers.cookie).get(name);
    const txn = sealed ? ((await openJwe(sealed, policy.transactionKey!)) as LoginTransaction | undefined) : undefined;
    const clearTxn = serializeCookie(name, '', { path: '/', httpOnly: true, secure: policy.secure, sameSite: 'Lax', maxAge: 0 });
    // The code and state must not travel further: not upstream, not in a Referer, not in a cache.
    const noLeak = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };
    if (!txn || typeof txn.exp !== 'number' || txn.exp < epoch() || txn.oidc?.state !== state) {
      if (!txn && policy.methods.has('session') && (await policy.sessions!.read(req))) return 'replayed';
      ctx.responseHeaders = { 'set-cookie': clearTxn, ...noLeak };
      throw new UnauthorizedError(config.unauthorized_error_message, 'login callback without a matching transaction (state)', false);
    }
    await policy.client();
    const url = new URL(policy.redirectUri!.href);
    url.search = ctx.query;
    const shim = passportRequest(req, url.href, { oidc: txn.oidc });
    const outcome = await runPassport(policy, shim);
    if (outcome.kind !== 'success') {
      ctx.responseHeaders = { 'set-cookie': clearTxn, ...noLeak };
      throw toAuthError(outcome, policy);
    }
    const tokens = outcome.user as client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    const idClaims = tokens.claims();
    if (!idClaims) throw new UnauthorizedError(config.unauthorized_error_message, 'token response without an ID token', false);

    const store = policy.sessions!;
    const session = store.create({
      iss: policy.issuer.issuer,
      sub: idClaims.sub,
      access_token: tokens.access_token,
      expires_at: tokens.expires_in ? epoch() + tokens.expires_in : undefined,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
    });
    let claims: Record<string, unknown>;
    try {
      claims = await this.accessTokenClaims(session, policy);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw new UnauthorizedError(config.unauthorized_error_message, `login produced an unusable access token: ${err.message}`, false);
      throw err;
    }
    const cookies = [clearTxn, ...(await store.destroy(req)), ...(await store.write(session, req))];
    // Later Set-Cookie wins in browsers: the fresh session overrides the deletion of the old one.
    this.logger.info({ request_id: ctx.requestId, sub: idClaims.sub, route: ctx.match?.route.name }, 'login succeeded');

    // Kong's login_redirect_uri is the operator's own absolute URL; otherwise back to the original same-origin path.
    const returnTo = config.login_redirect_uri?.[0] ?? safeReturnPath(txn.return_to);
    if (config.login_action === 'redirect') {
      respond(res, 302, { location: returnTo, 'set-cookie': cookies, ...noLeak, 'x-request-id': ctx.requestId });
      return 'responded';
    }
    if (config.login_action === 'response') {
      const body: Record<string, unknown> = {};
      for (const t of config.login_tokens) {
        if (t === 'tokens') Object.assign(body, { access_token: tokens.access_token, id_token: tokens.id_token, refresh_token: tokens.refresh_token, expires_in: tokens.expires_in, token_type: tokens.token_type });
        else if (tokens[t]) body[t] = tokens[t];
      }
      respond(res, 200, { 'content-type': 'application/json; charset=utf-8', 'set-cookie': cookies, ...noLeak, 'x-request-id': ctx.requestId }, JSON.stringify(body));
      return 'responded';
    }
    // login_action: upstream — proxy this request, without the callback parameters.
    stripCallbackParams(ctx);
    ctx.responseHeaders = { 'set-cookie': cookies, ...noLeak };
    (ctx.cookieFilters ??= []).push(store.isSessionCookie, isTransactionCookie);
    const pending = this.establish(req, ctx, policy, { via: 'session', claims, accessToken: session.access_token, idToken: session.id_token });
    if (pending) await pending;
    return 'proceed';
  }

  // ---------------------------------------------------------------- logout

  private isLogout(req: IncomingMessage, ctx: RequestContext, config: OpenIdConnectConfig): boolean {
    if (!config.logout_methods.includes(req.method as 'GET')) return false;
    if (config.logout_uri_suffix && ctx.path.endsWith(config.logout_uri_suffix)) return true;
    if (config.logout_query_arg && new URLSearchParams(ctx.query.slice(1)).has(config.logout_query_arg)) return true;
    return false;
  }

  private async logout(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, policy: OidcPolicy) {
    const config = policy.config;
    const store = policy.sessions;
    const session = store ? await store.read(req) : undefined;
    const cookies = store ? await store.destroy(req, session) : [];
    let location: string | undefined = config.logout_redirect_uri?.[0];
    if (session) {
      try {
        const cfg = await policy.client();
        if (config.logout_revoke && cfg.serverMetadata().revocation_endpoint) {
          for (const t of [session.refresh_token, session.access_token]) if (t) await client.tokenRevocation(cfg, t).catch(() => undefined);
        }
        if (cfg.serverMetadata().end_session_endpoint) {
          const params: Record<string, string> = { client_id: config.client_id![0] };
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

  // ---------------------------------------------------------------- upstream identity

  /**
   * Identity reaches the upstream only in headers the gateway set: every client
   * header under one of those names is removed first (case- and `_`-insensitive),
   * and the gateway's own cookies are taken out of Cookie.
   */
  private upstreamIdentity(req: IncomingMessage, ctx: RequestContext, policy: OidcPolicy, principal: Principal): void | Promise<void> {
    const c = policy.config;
    const add: [string, string][] = [];
    const set = (spec: string | null | undefined, value: string | undefined) => {
      if (!spec || value === undefined) return;
      const colon = spec.indexOf(':');
      if (colon === -1) add.push([spec, value]);
      else add.push([spec.slice(0, colon), spec.slice(colon + 1) === 'bearer' ? `Bearer ${value}` : value]);
    };
    // The default (`authorization:bearer`) with the token from the caller's own `Bearer` header: that header
    // already says exactly this, so it is kept instead of being removed and rebuilt (a KB-sized copy per request).
    const auth = req.headers.authorization;
    const keepAuthorization =
      c.upstream_access_token_header === 'authorization:bearer' &&
      !ctx.headerEdits?.remove?.has('authorization') &&
      auth !== undefined &&
      auth.length === principal.accessToken.length + 7 &&
      auth.startsWith('Bearer ') &&
      auth.endsWith(principal.accessToken);
    if (!keepAuthorization) set(c.upstream_access_token_header, principal.accessToken);
    set(c.upstream_id_token_header, principal.idToken);
    if (c.upstream_introspection_header && principal.introspection) {
      set(c.upstream_introspection_header, Buffer.from(JSON.stringify(principal.introspection)).toString('base64'));
    }
    for (let i = 0; i < c.upstream_headers_claims.length; i++) {
      const value = claimAt(principal.claims, c.upstream_headers_claims[i]);
      if (value !== undefined) add.push([c.upstream_headers_names[i], headerSafe(value)]);
    }
    // The common case shares the policy's precomputed set; only credentials or cookies to hide need a copy.
    let remove: ReadonlySet<string> = keepAuthorization ? policy.ownedHeadersKeepingAuthorization : policy.ownedHeaders;
    const extra = ctx.headerEdits?.remove;
    if (extra?.size) remove = new Set([...remove, ...extra]);
    if (ctx.cookieFilters?.length && req.headers.cookie) {
      const filters = ctx.cookieFilters;
      const rest = cookieHeaderWithout(req.headers.cookie, (n) => filters.some((f) => f(n)) || isTransactionCookie(n));
      remove = new Set([...remove, 'cookie']);
      if (rest) add.push(['cookie', rest]);
    }
    ctx.headerEdits = { remove, add };
    if (c.upstream_user_info_header) {
      return this.userinfo(principal, policy).then((info) => set(c.upstream_user_info_header, info));
    }
  }


  private readonly userinfoCache = new Map<string, { value: string; expiresAt: number }>();

  /** The userinfo response (base64 JSON), cached per access token; its `sub` must be the token's (OIDC Core §5.3.2). */
  private async userinfo(principal: Principal, policy: OidcPolicy): Promise<string | undefined> {
    const key = AccessTokenVerifier.cacheKey(principal.accessToken);
    const hit = this.userinfoCache.get(key);
    if (hit && hit.expiresAt > Date.now()) return hit.value;
    const cfg = await policy.client();
    const sub = typeof principal.claims.sub === 'string' ? principal.claims.sub : client.skipSubjectCheck;
    try {
      const info = await client.fetchUserInfo(cfg, principal.accessToken, sub);
      const value = Buffer.from(JSON.stringify(info)).toString('base64');
      if (this.userinfoCache.size > 10_000) this.userinfoCache.clear();
      this.userinfoCache.set(key, { value, expiresAt: Date.now() + 60_000 });
      return value;
    } catch (err) {
      if (err instanceof client.ClientError || err instanceof client.ResponseBodyError) {
        throw new UnauthorizedError(policy.config.unauthorized_error_message, `userinfo rejected: ${err.message}`, true);
      }
      throw new IdentityProviderUnavailableError('userinfo request failed', err);
    }
  }

  onModuleDestroy() {
    for (const p of this.policies.values()) void p.sessions?.close();
  }
}

// ---------------------------------------------------------------- helpers

declare module '../common/request-context.js' {
  interface RequestContext {
    /** Cookie names the gateway owns on this request, removed from the Cookie header sent upstream. */
    cookieFilters?: ((name: string) => boolean)[];
  }
}

function stripCallbackParams(ctx: RequestContext) {
  const rest = new URLSearchParams(ctx.query.slice(1));
  for (const p of CALLBACK_PARAMS) rest.delete(p);
  const s = rest.toString();
  ctx.query = s ? `?${s}` : '';
}

/** Three dot-separated parts: a JWS (a JWT access token), without allocating the split. */
/** A token the verifier refused is the caller's problem (401 invalid_token); anything else passes through unchanged. */
function invalidTokenError(config: OpenIdConnectConfig, err: unknown): unknown {
  if (err instanceof InvalidTokenError) return new UnauthorizedError(config.unauthorized_error_message, `invalid token: ${err.message}`, true);
  return err;
}

function isCompactJws(token: string): boolean {
  const a = token.indexOf('.');
  if (a <= 0) return false;
  const b = token.indexOf('.', a + 1);
  return b > a + 1 && token.indexOf('.', b + 1) === -1;
}

function addRemoval(ctx: RequestContext, canonicalName: string) {
  const remove = new Set(ctx.headerEdits?.remove ?? []);
  remove.add(canonicalName);
  ctx.headerEdits = { remove, add: ctx.headerEdits?.add };
}

function setResponseCookies(ctx: RequestContext, cookies: string[]) {
  if (!cookies.length) return;
  const existing = ctx.responseHeaders?.['set-cookie'];
  ctx.responseHeaders = { ...ctx.responseHeaders, 'set-cookie': [...(existing ? (Array.isArray(existing) ? existing : [existing]) : []), ...cookies] };
}

/** A page navigation by a browser: the only kind of request that is ever redirected to the IdP. */
export function isBrowserNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (req.headers.authorization) return false;
  const xrw = req.headers['x-requested-with'];
  if (typeof xrw === 'string' && xrw.toLowerCase() === 'xmlhttprequest') return false;
  const mode = req.headers['sec-fetch-mode'];
  if (mode !== undefined && mode !== 'navigate') return false;
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.includes('text/html');
}

function transactionCookieName(state: string): string {
  return TRANSACTION_COOKIE_PREFIX + createHash('sha256').update(state).digest('base64url').slice(0, 16);
}

function isTransactionCookie(name: string): boolean {
  return name.startsWith(TRANSACTION_COOKIE_PREFIX);
}

/** Only a same-origin absolute path is ever a return target: never `//host`, never a scheme. */
export function safeReturnPath(candidate: string | undefined, fallback?: string): string {
  for (const c of [candidate, fallback]) {
    // Browsers drop tabs and newlines from URLs ("/\t/evil" becomes "//evil"): refuse every control character.
    if (c && c.startsWith('/') && !c.startsWith('//') && !c.startsWith('/\\') && !/[\x00-\x1f\x7f]/.test(c)) return c;
  }
  return '/';
}

function respond(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body?: string) {
  res.writeHead(status, { ...headers, 'content-length': body ? Buffer.byteLength(body) : 0 });
  res.end(body);
}

interface PassportShim {
  method: string;
  url: string;
  originalUrl: string;
  headers: IncomingMessage['headers'];
  session: Record<string, unknown>;
  gatehouseUrl: string;
  query: Record<string, string>;
}

function passportRequest(req: IncomingMessage, currentUrl: string, session: Record<string, unknown>): PassportShim {
  const u = new URL(currentUrl);
  return {
    method: req.method!,
    url: u.pathname + u.search,
    originalUrl: u.pathname + u.search,
    headers: req.headers,
    session,
    gatehouseUrl: currentUrl,
    query: Object.fromEntries(u.searchParams),
  };
}

type PassportOutcome =
  | { kind: 'redirect'; url: string }
  | { kind: 'success'; user: unknown }
  | { kind: 'fail'; info: unknown }
  | { kind: 'error'; err: unknown };

/**
 * Runs openid-client's Passport strategy through Passport's own authenticate()
 * with a minimal Express-like request/response: Passport "redirects" by setting
 * Location and ending the response, which this shim turns into a result.
 */
function runPassport(policy: OidcPolicy, req: PassportShim): Promise<PassportOutcome> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = {};
    const res = {
      statusCode: 200,
      setHeader(name: string, value: string) {
        headers[name.toLowerCase()] = value;
      },
      end() {
        if (headers.location) resolve({ kind: 'redirect', url: headers.location });
        else resolve({ kind: 'error', err: new Error(`passport ended the response with ${res.statusCode}`) });
      },
    };
    const middleware = policy.passport.authenticate(policy.passportName, { session: false }, (err: unknown, user: unknown, info: unknown) => {
      if (err) resolve({ kind: 'error', err });
      else if (!user) resolve({ kind: 'fail', info });
      else resolve({ kind: 'success', user });
    });
    middleware(req, res, (err?: unknown) => resolve({ kind: 'error', err: err ?? new Error('passport called next()') }));
  });
}

function toAuthError(outcome: PassportOutcome, policy: OidcPolicy): GatewayError {
  const message = policy.config.unauthorized_error_message;
  if (outcome.kind === 'fail') {
    const info = outcome.info as { message?: string } | undefined;
    return new UnauthorizedError(message, `login failed: ${info?.message ?? 'refused'}`, false);
  }
  if (outcome.kind === 'error') {
    const err = outcome.err;
    if (err instanceof GatewayError) return err;
    // Protocol problems (bad state, iss mismatch, ID token checks) are the caller's; network ones the IdP's.
    if (err instanceof client.ClientError || err instanceof client.AuthorizationResponseError || err instanceof client.ResponseBodyError || err instanceof client.WWWAuthenticateChallengeError) {
      return new UnauthorizedError(message, `login failed: ${(err as Error).message}`, false);
    }
    return new IdentityProviderUnavailableError(`login failed: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  return new UnauthorizedError(message, 'login failed', false);
}

function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  let v: unknown = claims;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** Claim values become header text that cannot inject: visible ASCII as is, anything else percent-encoded. */
export function headerSafe(value: unknown): string {
  const text = typeof value === 'string' ? value : Array.isArray(value) && value.every((v) => typeof v === 'string') ? value.join(',') : JSON.stringify(value);
  // toWellFormed: a lone surrogate in a claim must be encoded, not throw (URIError) into a 500.
  return /^[\x20-\x7e]*$/.test(text) ? text : encodeURIComponent(text.toWellFormed());
}

function decodeClaims(jwt: string): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}
