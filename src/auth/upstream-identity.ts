import { Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import * as client from 'openid-client';
import type { RequestContext } from '../common/request-context.js';
import { AccessTokenVerifier } from './access-token.verifier.js';
import { IdentityProviderUnavailableError, UnauthorizedError } from './auth.errors.js';
import { AUTHORIZATION_ONLY } from './bearer-token.js';
import { BoundedCache } from './bounded-cache.js';
import { idpFailed } from './openid-connect.strategy.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
import type { Principal } from './principal.js';
import { claimValues } from './requirements.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';

/** Userinfo responses are kept this long per access token: the IdP is asked again at least once a minute. */
const USERINFO_CACHE_MS = 60_000;
const USERINFO_CACHE_MAX = 10_000;

/**
 * Who the caller is, recorded on the request, and what the upstream is told:
 * the access token, ID token, userinfo, introspection response and claims, in
 * the headers the plugin names. Client copies of those headers (and of every
 * identity header) are dropped by the route's strip rule before these are added,
 * so nothing a client sends can pass as the gateway's word.
 */
@Injectable()
export class UpstreamIdentity {
  private readonly userinfoCache = new BoundedCache<string, string>(USERINFO_CACHE_MAX);

  /** A promise only when userinfo must be fetched. */
  establish(req: IncomingMessage, ctx: RequestContext, instance: OpenIdConnectInstance, principal: Principal): void | Promise<void> {
    ctx.principal = principal;
    ctx.caller = callerOf(principal, instance.config.credential_claim);

    const c = instance.config;
    // Most requests add nothing (the caller's own Authorization kept): the list is made only when needed.
    let add: (readonly [string, string])[] | undefined = ctx.headerEdits?.add ? [...ctx.headerEdits.add] : undefined;
    let remove = ctx.headerEdits?.remove;
    if (instance.setsAuthorization) {
      // The default (`authorization:bearer`) with the token from the caller's own `Bearer` header: that
      // header already says exactly this, so it is kept instead of being removed and rebuilt (a KB-sized
      // copy per request). Compared as `slice(7) ===` (a flat compare): `endsWith` walks a KB-sized token
      // character by character, ≈ 2.5 µs per request.
      const auth = req.headers.authorization;
      const keep =
        remove === undefined &&
        auth !== undefined &&
        auth.length === principal.accessToken.length + 7 &&
        auth.startsWith('Bearer ') &&
        auth.slice(7) === principal.accessToken;
      if (!keep) {
        remove = AUTHORIZATION_ONLY;
        add = withHeader(add, c.upstream_access_token_header, principal.accessToken);
      }
    } else {
      add = withHeader(add, c.upstream_access_token_header, principal.accessToken);
    }
    add = withHeader(add, c.upstream_id_token_header, principal.idToken);
    if (c.upstream_introspection_header && principal.introspection) {
      add = withHeader(add, c.upstream_introspection_header, Buffer.from(JSON.stringify(principal.introspection)).toString('base64'));
    }
    // upstream_headers holds Kong 3.14's `[{header, path}]` and the older claims/names pairs (folded at load).
    for (const h of c.upstream_headers) {
      const value = claimAt(principal.claims, h.path);
      if (value !== undefined) (add ??= []).push([h.header, headerSafe(value)]);
    }
    if (c.downstream_headers.length) {
      let response = ctx.responseHeaders;
      for (const h of c.downstream_headers) {
        const value = claimAt(principal.claims, h.path);
        if (value !== undefined) (response ??= {})[h.header] = headerSafe(value);
      }
      ctx.responseHeaders = response;
    }
    if (c.upstream_user_info_header) {
      return this.userinfo(principal, instance).then((info) => {
        ctx.headerEdits = { remove, add: withHeader(add, c.upstream_user_info_header, info) ?? [] };
      });
    }
    // The common case (the caller's own Authorization kept, nothing added) needs no edits object at all.
    ctx.headerEdits = add?.length || remove ? { remove, add } : undefined;
  }

  /**
   * The userinfo response (base64 JSON), cached per access token; its `sub`
   * must be the token's (OIDC Core §5.3.2). The IdP refusing the token (401,
   * 403, an OAuth error, a `sub` that does not match) is the caller's problem:
   * 401 invalid_token. The IdP failing (network error, timeout, 5xx) is a 503.
   */
  private async userinfo(principal: Principal, instance: OpenIdConnectInstance): Promise<string> {
    const key = AccessTokenVerifier.cacheKey(principal.accessToken);
    const hit = this.userinfoCache.get(key);
    if (hit !== undefined) return hit;
    const cfg = await instance.client();
    const sub = typeof principal.claims.sub === 'string' ? principal.claims.sub : client.skipSubjectCheck;
    try {
      const info = await gatewayMetrics.idpCall(instance.issuer.issuer, 'userinfo', () => client.fetchUserInfo(cfg, principal.accessToken, sub));
      const value = Buffer.from(JSON.stringify(info)).toString('base64');
      this.userinfoCache.set(key, value, USERINFO_CACHE_MS);
      return value;
    } catch (err) {
      if (idpFailed(err)) throw new IdentityProviderUnavailableError('userinfo request failed', err);
      throw UnauthorizedError.invalidToken(instance.config.unauthorized_error_message, `userinfo rejected: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/**
 * `spec` is a plugin's header setting: `name`, or `name:bearer` for a value sent
 * as `Bearer <value>`. Unset settings and absent values add nothing.
 */
function withHeader(add: (readonly [string, string])[] | undefined, spec: string | null | undefined, value: string | undefined) {
  if (!spec || value === undefined) return add;
  const colon = spec.indexOf(':');
  (add ??= []).push(colon === -1 ? [spec, value] : [spec.slice(0, colon), spec.slice(colon + 1) === 'bearer' ? `Bearer ${value}` : value]);
  return add;
}

/** The value at a claim path (Kong: a list of keys into nested objects, `[address, country]`); undefined when absent. */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let v: unknown = claims;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
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

/** The caller for logs and limits: the `credential_claim`, else `sub`; remembered on a verified token (its claims never change). */
function callerOf(principal: Principal, claimPath: readonly string[]): string | undefined {
  const memo = principal.memo;
  if (memo !== undefined && memo.callerFor === claimPath) return memo.caller;
  const claims = principal.claims;
  const caller = claimValues(claims, claimPath)[0] ?? (typeof claims.sub === 'string' ? claims.sub : undefined);
  if (memo !== undefined) {
    memo.callerFor = claimPath;
    memo.caller = caller;
  }
  return caller;
}
