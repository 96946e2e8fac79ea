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
  /**
   * No credentials, or credentials that are not a token (a failed login): the
   * challenge carries no error code (RFC 6750 §3.1: a request that lacks
   * authentication information gets none).
   */
  static missingCredentials(message: string, reason: string): UnauthorizedError {
    return new UnauthorizedError(message, reason, {});
  }

  /** A token was presented and refused: the challenge says `invalid_token` (RFC 6750 §3.1). */
  static invalidToken(message: string, reason: string): UnauthorizedError {
    return new UnauthorizedError(message, reason, { error: 'invalid_token', error_description: 'The access token is invalid or expired' });
  }

  private constructor(message: string, reason: string, challengeParams: Parameters<typeof challenge>[0]) {
    super(401, message, { reason, headers: { 'www-authenticate': challenge(challengeParams) } });
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

/**
 * A cookie session would not fit the gateway's own request-header limit: the
 * browser would send it back and get 431 on every request, a loop the user
 * cannot leave. An operator's problem (storage or limit), so a 500, not a 4xx.
 */
export class SessionTooLargeError extends GatewayError {
  constructor(
    /** Bytes the session's cookies would add to a request's Cookie header. */
    readonly cookieBytes: number,
    /** Bytes the store may use (see sessionCookieBudget). */
    readonly maxCookieBytes: number,
  ) {
    super(500, 'An unexpected error occurred', {
      reason: `session too large for cookies; use session_storage: redis or raise GATEHOUSE_MAX_HEADER_SIZE (${cookieBytes} bytes of cookies, ${maxCookieBytes} allowed)`,
    });
  }
}
