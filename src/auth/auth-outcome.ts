import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../common/gateway.error.js';
import type { RequestContext } from '../common/request-context.js';
import type { AuthMethod, AuthResult } from '../metrics/gateway-metrics.js';
import { isCompactJws } from './auth-http.js';
import { IdentityProviderUnavailableError } from './auth.errors.js';
import { presentedToken } from './bearer-token.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';

/**
 * What `gatehouse_auth_total` says about a refused request: the result from
 * the error (401 and RFC 6750's 400 invalid_request are `unauthorized`, 403
 * `forbidden`, an unreachable IdP `idp_unavailable`, anything else `error`).
 */
export function authResultOf(err: unknown): AuthResult {
  if (err instanceof IdentityProviderUnavailableError) return 'idp_unavailable';
  if (err instanceof GatewayError) {
    if (err.status === 401 || err.status === 400) return 'unauthorized';
    if (err.status === 403) return 'forbidden';
  }
  return 'error';
}

/**
 * The method a refused request tried, worked out only on the refusal path:
 * the established caller's, else the presented token's (a JWT verified
 * locally is `bearer`, anything introspected `introspection`), else the
 * session cookie's, else `none` (no credentials at all).
 */
export function attemptedMethod(req: IncomingMessage, ctx: RequestContext, instance: OpenIdConnectInstance): AuthMethod {
  if (ctx.principal) return ctx.principal.via;
  const config = instance.config;
  let token: string | undefined;
  try {
    token = instance.methods.has('bearer') || instance.methods.has('introspection') ? presentedToken(req, ctx, config)?.token : undefined;
  } catch {
    // Tokens presented in two places (400 invalid_request): still a token.
    return instance.methods.has('bearer') ? 'bearer' : 'introspection';
  }
  if (token !== undefined) {
    const local = instance.methods.has('bearer') && isCompactJws(token) && !(instance.methods.has('introspection') && config.introspect_jwt_tokens);
    return local || !instance.methods.has('introspection') ? 'bearer' : 'introspection';
  }
  if (instance.sessions && req.headers.cookie?.includes(`${config.session_cookie_name}`)) return 'session';
  return 'none';
}
