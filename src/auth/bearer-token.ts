import type { IncomingMessage } from 'node:http';
import type { RequestContext } from '../common/request-context.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import type { CookieFilter } from '../proxy/forwarding-headers.js';
import { InvalidRequestError } from './auth.errors.js';
import { parseCookies } from './cookies.js';

export type TokenLocation = 'header' | 'query' | 'cookie';

export interface PresentedToken {
  token: string;
  from: TokenLocation;
}

/** The `Bearer` credentials of an Authorization header (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1). */
function authorizationBearer(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const space = value.indexOf(' ');
  if (space !== 6 || value.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  const token = value.slice(7).trim();
  return token || undefined;
}

/**
 * The access token a request presents, from the places the route accepts
 * (`bearer_token_param_type`): the Authorization header, the `access_token`
 * query parameter, a named cookie. RFC 6750 §2: a client MUST NOT use more
 * than one method per request, so a request carrying a token in two places
 * (or two `access_token` parameters) is refused with 400 rather than one of
 * them silently chosen — the other could otherwise travel on to the upstream.
 */
export function presentedToken(req: IncomingMessage, ctx: RequestContext, config: OpenIdConnectConfig): PresentedToken | undefined {
  const where = config.bearer_token_param_type;
  const header = where.includes('header') ? authorizationBearer(req.headers.authorization) : undefined;
  // The default accepts the header only: nothing else to look at.
  if (where.length === 1 && header !== undefined) return { token: header, from: 'header' };
  let found: PresentedToken | undefined = header === undefined ? undefined : { token: header, from: 'header' };
  if (where.includes('query') && ACCESS_TOKEN_PARAM.test(ctx.query)) {
    const all = new URLSearchParams(ctx.query.slice(1)).getAll('access_token').filter(Boolean);
    if (all.length > 1 || (all.length && found)) throw new InvalidRequestError('access token presented more than once');
    if (all.length) found = { token: all[0], from: 'query' };
  }
  if (where.includes('cookie') && config.bearer_token_cookie_name) {
    const token = parseCookies(req.headers.cookie).get(config.bearer_token_cookie_name);
    if (token) {
      if (found) throw new InvalidRequestError('access token presented more than once');
      found = { token, from: 'cookie' };
    }
  }
  return found;
}

/** Names to remove from the upstream request when it is only Authorization (shared: no set per request). */
export const AUTHORIZATION_ONLY: ReadonlySet<string> = new Set(['authorization']);

const ACCESS_TOKEN_PARAM = /access(?:_|%5f)token/i;

/**
 * `hide_credentials`: the upstream gets none of the places the route accepts a
 * token from — the Authorization `Bearer` header, every `access_token` query
 * parameter (however its name is encoded), the bearer-token cookie — not just
 * the one the token was read from.
 */
export function hideCredentials(req: IncomingMessage, ctx: RequestContext, config: OpenIdConnectConfig, cookiesHidingCredential: CookieFilter | undefined): void {
  const where = config.bearer_token_param_type;
  if (where.includes('header') && authorizationBearer(req.headers.authorization) !== undefined) {
    ctx.headerEdits = { remove: AUTHORIZATION_ONLY, add: ctx.headerEdits?.add };
  }
  if (where.includes('query') && ACCESS_TOKEN_PARAM.test(ctx.query)) {
    const q = new URLSearchParams(ctx.query.slice(1));
    q.delete('access_token');
    const s = q.toString();
    ctx.query = s ? `?${s}` : '';
  }
  if (where.includes('cookie') && cookiesHidingCredential) ctx.cookieFilter = cookiesHidingCredential;
}
