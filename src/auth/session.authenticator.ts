import { Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { RequestContext } from '../common/request-context.js';
import { InvalidTokenError } from './access-token.verifier.js';
import { decodeClaims, setResponseCookies } from './auth-http.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
import type { Principal } from './principal.js';
import { epoch, type SessionData } from './session.store.js';
import { TokenAuthenticator } from './token.authenticator.js';
import { TokenRefresher } from './token-refresher.js';

/** Refresh this long before the access token expires, so no request carries an expired token upstream. */
const REFRESH_SKEW_S = 30;

/**
 * The browser's session cookie (`session` auth method): read and checked
 * (timeouts, issuer), refreshed when its access token is about to expire,
 * written back when it changed. A session that cannot be used is ended —
 * its cookies deleted — and the request continues as unauthenticated.
 */
@Injectable()
export class SessionAuthenticator {
  constructor(
    private readonly tokens: TokenAuthenticator,
    private readonly refresher: TokenRefresher,
  ) {}

  async principal(req: IncomingMessage, ctx: RequestContext, instance: OpenIdConnectInstance): Promise<Principal | undefined> {
    const store = instance.sessions!;
    let session = await store.read(req);
    if (!session) return undefined;
    if (session.iss !== instance.issuer.issuer) return undefined;

    const now = epoch();
    let write = store.touch(session, now);
    let refreshed = false;
    if (session.expires_at !== undefined && now >= session.expires_at - REFRESH_SKEW_S) {
      const expired = now >= session.expires_at;
      const refreshable = session.refresh_token && instance.config.refresh_tokens && instance.methods.has('refresh_token');
      const next = refreshable ? await this.refresher.refresh(session, instance, expired, req) : expired ? undefined : session;
      if (!next) {
        setResponseCookies(ctx, await store.destroy(req, session));
        return undefined;
      }
      if (next !== session) {
        session = next;
        write = refreshed = true;
      }
    }
    let claims: Record<string, unknown>;
    try {
      claims = await this.claims(session, instance);
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

  /** Claims for authorization: the access token's if it is a JWT, else introspection's, else the ID token's. */
  async claims(session: SessionData, instance: OpenIdConnectInstance): Promise<Record<string, unknown>> {
    const fromToken = this.tokens.sessionTokenClaims(session.access_token, instance);
    if (fromToken) return fromToken;
    // The ID token was fully validated at login; its claims stand in when the access token is opaque.
    if (session.id_token) return decodeClaims(session.id_token);
    return { sub: session.sub };
  }
}
