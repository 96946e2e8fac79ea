import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as client from 'openid-client';
import type { Logger } from 'pino';
import { GatewayError } from '../common/gateway.error.js';
import { LOGGER } from '../common/logger.js';
import type { RequestContext } from '../common/request-context.js';
import { InvalidTokenError } from './access-token.verifier.js';
import { respond, safeReturnPath, withoutCallbackParams } from './auth-http.js';
import { UnauthorizedError } from './auth.errors.js';
import { parseCookies, serializeCookie } from './cookies.js';
import { loginError, passportRequest, runPassport } from './openid-connect.strategy.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
import { TRANSACTION_COOKIE_PREFIX } from './owned-cookies.js';
import { SessionAuthenticator } from './session.authenticator.js';
import { epoch, openJwe, sealJwe } from './session.store.js';
import { UpstreamIdentity } from './upstream-identity.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';

const TRANSACTION_TTL_S = 600;
/**
 * Logins a browser may have in progress at once (tabs opened together). Each
 * is a cookie of up to ~1 KB sent on every request to the gateway's host; past
 * this many, the older ones are deleted, so a script opening login after login
 * cannot grow the browser's Cookie header into a 431 loop.
 */
export const MAX_PENDING_LOGINS = 4;
/** The code and state must not travel further: not upstream, not in a Referer, not in a cache. */
const NO_LEAK = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' } as const;

/** What a login in progress remembers between the redirect to the IdP and the callback. Sealed in a cookie. */
interface LoginTransaction {
  /** openid-client's state data (code_verifier, nonce, state, max_age). */
  oidc: Record<string, unknown>;
  /** The request that started the login: same-origin path and query. */
  return_to: string;
  exp: number;
  /** The IdP configuration the login was started for; only that one may complete it (RFC 9700 §4.4, mix-up). */
  iss: string;
  client_id: string;
  redirect_uri: string;
}

export type CallbackOutcome = 'proceed' | 'responded' | 'replayed';

/**
 * The authorization code flow (OIDC Core §3.1) through openid-client's Passport
 * strategy: PKCE, state and nonce at the start, the transaction sealed in a
 * short-lived cookie bound to this IdP configuration; at the callback the code
 * exchange, the ID token checks, the access token checks and (when the route
 * sends userinfo upstream) the userinfo `sub` check all pass before any
 * session cookie is issued.
 */
@Injectable()
export class LoginFlow {
  constructor(
    private readonly sessions: SessionAuthenticator,
    private readonly identity: UpstreamIdentity,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async start(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, instance: OpenIdConnectInstance): Promise<void> {
    await instance.client();
    const shim = passportRequest(req, instance.redirectUri!.href, {});
    const outcome = await runPassport(instance.passport, instance.passportName, shim);
    if (outcome.kind !== 'redirect') throw loginError(outcome, instance.config.unauthorized_error_message);
    const stateData = shim.session.oidc as Record<string, unknown> | undefined;
    const state = typeof stateData?.state === 'string' ? stateData.state : undefined;
    if (!state) throw new GatewayError(500, 'An unexpected error occurred', { reason: 'authorization request without state' });
    const txn: LoginTransaction = {
      oidc: stateData!,
      return_to: ctx.path + ctx.query,
      exp: epoch() + TRANSACTION_TTL_S,
      ...binding(instance),
    };
    const cookies = [serializeCookie(transactionCookieName(state, instance.secure), await sealJwe(txn, instance.transactionKey!), transactionCookieAttributes(instance, TRANSACTION_TTL_S))];
    const pending = [...parseCookies(req.headers.cookie).keys()].filter(isTransactionCookieName);
    if (pending.length >= MAX_PENDING_LOGINS) {
      for (const name of pending) cookies.push(serializeCookie(name, '', transactionCookieAttributes(instance, 0, name)));
    }
    this.logger.debug({ request_id: ctx.requestId, route: ctx.match?.route.name }, 'redirecting to the identity provider for login');
    ctx.denial = 'login required: redirected to the identity provider';
    respond(res, 302, { location: outcome.url, 'set-cookie': cookies, 'cache-control': 'no-store', 'x-request-id': ctx.requestId });
  }

  /** Handles the IdP's redirect back. `replayed`: no transaction for this state but a live session (a reload). */
  async callback(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, instance: OpenIdConnectInstance, q: URLSearchParams): Promise<CallbackOutcome> {
    const config = instance.config;
    const state = q.get('state')!;
    const name = transactionCookieName(state, instance.secure);
    const sealed = parseCookies(req.headers.cookie).get(name);
    const txn = sealed ? ((await openJwe(sealed, instance.transactionKey!)) as LoginTransaction | undefined) : undefined;
    const clearTxn = serializeCookie(name, '', transactionCookieAttributes(instance, 0, name));
    const bound = binding(instance);
    if (!txn || typeof txn.exp !== 'number' || txn.exp < epoch() || txn.oidc?.state !== state || txn.iss !== bound.iss || txn.client_id !== bound.client_id || txn.redirect_uri !== bound.redirect_uri) {
      if (!txn && instance.methods.has('session') && (await instance.sessions!.read(req))) return 'replayed';
      ctx.responseHeaders = { 'set-cookie': clearTxn, ...NO_LEAK };
      throw UnauthorizedError.missingCredentials(config.unauthorized_error_message, 'login callback without a matching transaction (state)');
    }
    // From here on a failure deletes the transaction and sets nothing else.
    ctx.responseHeaders = { 'set-cookie': clearTxn, ...NO_LEAK };
    await instance.client();
    const url = new URL(instance.redirectUri!.href);
    url.search = ctx.query;
    // The code exchange at the token endpoint (and the ID token's validation) is one IdP call.
    const outcome = await gatewayMetrics.idpCall(instance.issuer.issuer, 'token', async () => {
      const o = await runPassport(instance.passport, instance.passportName, passportRequest(req, url.href, { oidc: txn.oidc }));
      if (o.kind !== 'success') throw loginError(o, config.unauthorized_error_message);
      return o;
    });
    const tokens = outcome.user as client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    const idClaims = tokens.claims();
    if (!idClaims) throw UnauthorizedError.missingCredentials(config.unauthorized_error_message, 'token response without an ID token');

    const store = instance.sessions!;
    const session = store.create({
      iss: instance.issuer.issuer,
      sub: idClaims.sub,
      access_token: tokens.access_token,
      expires_at: tokens.expires_in ? epoch() + tokens.expires_in : undefined,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
    });
    let claims: Record<string, unknown>;
    try {
      claims = await this.sessions.claims(session, instance);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw UnauthorizedError.missingCredentials(config.unauthorized_error_message, `login produced an unusable access token: ${err.message}`);
      throw err;
    }
    // Who the caller is, and (when the route sends userinfo upstream) the userinfo `sub` check, before any cookie.
    const pending = this.identity.establish(req, ctx, instance, { via: 'session', claims, accessToken: session.access_token, idToken: session.id_token });
    if (pending) await pending;

    // Later Set-Cookie wins in browsers: the fresh session overrides the deletion of the old one.
    const cookies = [clearTxn, ...(await store.destroy(req)), ...(await store.write(session, req, { create: true }))];
    this.logger.info({ request_id: ctx.requestId, sub: idClaims.sub, route: ctx.match?.route.name }, 'login succeeded');

    const original = safeReturnPath(txn.return_to);
    const here = ctx.path + withoutCallbackParams(ctx.query);
    if (config.login_action === 'redirect' || (config.login_action === 'upstream' && original !== here)) {
      // Kong's login_redirect_uri is the operator's own absolute URL; otherwise back to the request that started
      // the login (a deep link on a route whose redirect_uri is the route's base comes back to itself, query included).
      const location = config.login_action === 'redirect' ? (config.login_redirect_uri?.[0] ?? original) : original;
      respond(res, 302, { location, 'set-cookie': cookies, ...NO_LEAK, 'x-request-id': ctx.requestId });
      return 'responded';
    }
    if (config.login_action === 'response') {
      const body: Record<string, unknown> = {};
      for (const t of config.login_tokens) {
        if (t === 'tokens') Object.assign(body, { access_token: tokens.access_token, id_token: tokens.id_token, refresh_token: tokens.refresh_token, expires_in: tokens.expires_in, token_type: tokens.token_type });
        else if (tokens[t]) body[t] = tokens[t];
      }
      respond(res, 200, { 'content-type': 'application/json; charset=utf-8', 'set-cookie': cookies, ...NO_LEAK, 'x-request-id': ctx.requestId }, JSON.stringify(body));
      return 'responded';
    }
    // login_action: upstream, and the callback is the request that started the login: proxy it, without the callback parameters.
    ctx.query = withoutCallbackParams(ctx.query);
    ctx.responseHeaders = { 'set-cookie': cookies, ...NO_LEAK };
    return 'proceed';
  }
}

function binding(instance: OpenIdConnectInstance): Pick<LoginTransaction, 'iss' | 'client_id' | 'redirect_uri'> {
  return { iss: instance.issuer.issuer, client_id: instance.config.client_id?.[0] ?? '', redirect_uri: instance.redirectUri?.href ?? '' };
}

/** `__Host-` when the cookie is Secure: then no subdomain or other path can plant or shadow it (RFC 6265bis §4.1.3.2). */
function transactionCookieName(state: string, secure: boolean): string {
  return `${secure ? '__Host-' : ''}${TRANSACTION_COOKIE_PREFIX}${createHash('sha256').update(state).digest('base64url').slice(0, 16)}`;
}

function isTransactionCookieName(name: string): boolean {
  return name.startsWith(TRANSACTION_COOKIE_PREFIX) || name.startsWith(`__Host-${TRANSACTION_COOKIE_PREFIX}`);
}

function transactionCookieAttributes(instance: OpenIdConnectInstance, maxAge: number, name?: string) {
  // Lax: the cookie must come back on the IdP's top-level redirect to the callback.
  return { path: '/', httpOnly: true, secure: instance.secure || (name?.startsWith('__Host-') ?? false), sameSite: 'Lax' as const, maxAge };
}
