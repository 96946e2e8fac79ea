import { GatewayError, ServiceUnavailableError } from '../common/gateway.error.js';

/**
 * RFC 6750 §3 challenges. The realm names the gateway; `error` is present only
 * when a token was presented (an unauthenticated request gets no error code,
 * as §3.1 says).
 */
export const REALM = 'gatehouse';

function challenge(params: Record<string, string | undefined>): string {
  const parts = [`realm="${REALM}"`];
  for (const [k, v] of Object.entries(params)) if (v !== undefined) parts.push(`${k}="${v.replace(/["\\]/g, '')}"`);
  return `Bearer ${parts.join(', ')}`;
}

export class UnauthorizedError extends GatewayError {
  constructor(message: string, reason: string, tokenPresented: boolean) {
    super(401, message, {
      reason,
      headers: {
        'www-authenticate': challenge(tokenPresented ? { error: 'invalid_token', error_description: 'The access token is invalid or expired' } : {}),
      },
    });
  }
}

/** RFC 6750 §3.1 `invalid_request`: a malformed request, e.g. a token presented in more than one way. */
export class InvalidRequestError extends GatewayError {
  constructor(reason: string) {
    super(400, 'Bad request', {
      reason,
      headers: { 'www-authenticate': challenge({ error: 'invalid_request', error_description: reason }) },
    });
  }
}

export class ForbiddenError extends GatewayError {
  constructor(message: string, reason: string, scope?: string) {
    super(403, message, {
      reason,
      headers: { 'www-authenticate': challenge({ error: 'insufficient_scope', scope }) },
    });
  }
}

/** The IdP (discovery, keys, introspection, token endpoint) could not be reached: fail closed, but tell the client to retry. */
export class IdentityProviderUnavailableError extends ServiceUnavailableError {
  constructor(reason: string, cause?: unknown) {
    super('The identity provider is unavailable', reason, cause);
  }
}

/** Sessions are kept server-side and the store cannot be reached: no session can be trusted or saved. */
export class SessionStoreUnavailableError extends ServiceUnavailableError {
  constructor(reason: string, cause?: unknown) {
    super('The session store is unavailable', reason, cause);
  }
}
