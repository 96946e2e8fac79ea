import type { IncomingMessage } from 'node:http';
import * as client from 'openid-client';
import { Strategy as OpenIdClientStrategy } from 'openid-client/passport';
import type { Passport } from 'passport';
import { GatewayError } from '../common/gateway.error.js';
import { IdentityProviderUnavailableError, UnauthorizedError } from './auth.errors.js';

/**
 * openid-client's Passport strategy with the gateway's choices:
 * - `state` and `nonce` on every authorization request (the stock strategy adds
 *   state only when PKCE is not advertised; RFC 9700 §2.1 wants CSRF protection
 *   regardless, and the nonce binds the ID token to this browser);
 * - the current URL comes from the gateway's own view of the request, not
 *   Express's `req.protocol`/`req.host` (there is no Express here).
 */
export class OpenIdConnectStrategy extends OpenIdClientStrategy {
  override authorizationRequestParams(req: Parameters<OpenIdClientStrategy['authorizationRequestParams']>[0], options: Parameters<OpenIdClientStrategy['authorizationRequestParams']>[1]) {
    const params = super.authorizationRequestParams(req, options) as URLSearchParams;
    params.set('state', client.randomState());
    params.set('nonce', client.randomNonce());
    return params;
  }

  override currentUrl(req: Parameters<OpenIdClientStrategy['currentUrl']>[0]): URL {
    return new URL((req as unknown as { gatehouseUrl: string }).gatehouseUrl);
  }
}

/** The Express-like request Passport and the strategy read; `session.oidc` carries the transaction state. */
export interface PassportRequest {
  method: string;
  url: string;
  originalUrl: string;
  headers: IncomingMessage['headers'];
  session: Record<string, unknown>;
  gatehouseUrl: string;
  query: Record<string, string>;
}

export function passportRequest(req: IncomingMessage, currentUrl: string, session: Record<string, unknown>): PassportRequest {
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

export type PassportOutcome =
  | { kind: 'redirect'; url: string }
  | { kind: 'success'; user: unknown }
  | { kind: 'fail'; info: unknown }
  | { kind: 'error'; err: unknown };

/**
 * Runs a strategy through Passport's own authenticate() with a minimal
 * Express-like response: Passport "redirects" by setting Location and ending
 * the response, which this turns into a result.
 */
export function runPassport(passport: InstanceType<typeof Passport>, strategyName: string, req: PassportRequest): Promise<PassportOutcome> {
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
    const middleware = passport.authenticate(strategyName, { session: false }, (err: unknown, user: unknown, info: unknown) => {
      if (err) resolve({ kind: 'error', err });
      else if (!user) resolve({ kind: 'fail', info });
      else resolve({ kind: 'success', user });
    });
    middleware(req, res, (err?: unknown) => resolve({ kind: 'error', err: err ?? new Error('passport called next()') }));
  });
}

/** What a failed login becomes: protocol problems are the caller's (401), an unreachable IdP is a 503. */
export function loginError(outcome: PassportOutcome, unauthorizedMessage: string): GatewayError {
  if (outcome.kind === 'fail') {
    const info = outcome.info as { message?: string } | undefined;
    return UnauthorizedError.missingCredentials(unauthorizedMessage, `login failed: ${info?.message ?? 'refused'}`);
  }
  if (outcome.kind === 'error') {
    const err = outcome.err;
    if (err instanceof GatewayError) return err;
    if (idpFailed(err)) return new IdentityProviderUnavailableError(`login failed: ${describe(err)}`, err);
    return UnauthorizedError.missingCredentials(unauthorizedMessage, `login failed: ${describe(err)}`);
  }
  return UnauthorizedError.missingCredentials(unauthorizedMessage, 'login failed');
}

/**
 * True when an openid-client call failed because the IdP did (network error,
 * timeout, 5xx, a body too large), false when the IdP answered and refused (a
 * 4xx, an OAuth error body, a failed check of what it sent).
 */
export function idpFailed(err: unknown): boolean {
  const status = httpStatusOf(err);
  if (status !== undefined) return status >= 500;
  // The protocol errors of openid-client carry the response or a code; anything else never got an answer.
  return !(err instanceof client.ClientError || err instanceof client.AuthorizationResponseError || err instanceof client.ResponseBodyError || err instanceof client.WWWAuthenticateChallengeError);
}

/** The HTTP status of the IdP response behind an openid-client error, when there was one. */
export function httpStatusOf(err: unknown): number | undefined {
  const e = err as { status?: unknown; response?: { status?: unknown }; cause?: unknown } | undefined;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.status === 'number') return e.status;
  if (e.response && typeof e.response.status === 'number') return e.response.status;
  if (e.cause instanceof Response) return e.cause.status;
  return undefined;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
