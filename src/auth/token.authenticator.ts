import { Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { AccessTokenVerifier, InvalidTokenError, type VerifiedToken } from './access-token.verifier.js';
import { isCompactJws } from './auth-http.js';
import { UnauthorizedError } from './auth.errors.js';
import { IntrospectionClient } from './introspection.client.js';
import type { OidcPolicy } from './oidc-policy.js';
import type { Principal } from './principal.js';

/**
 * A presented access token (RFC 6750): a JWT verified locally against the
 * issuer's keys (`bearer`), or any token introspected at the IdP
 * (`introspection`, and JWTs too with `introspect_jwt_tokens`). Verified
 * tokens are cached per verification profile, so routes with the same rules
 * share the work and routes with laxer rules never lend their verdicts.
 */
@Injectable()
export class TokenAuthenticator {
  private readonly verifiers = new Map<string, AccessTokenVerifier>();

  constructor(private readonly introspection: IntrospectionClient) {}

  verifierFor(policy: OidcPolicy): AccessTokenVerifier {
    let verifier = this.verifiers.get(policy.verificationProfile);
    if (!verifier) this.verifiers.set(policy.verificationProfile, (verifier = new AccessTokenVerifier()));
    return verifier;
  }

  /** True when this token goes through local JWT verification on this route (else introspection, or nothing). */
  verifiesLocally(token: string, policy: OidcPolicy): boolean {
    return policy.methods.has('bearer') && isCompactJws(token) && !(policy.methods.has('introspection') && policy.config.introspect_jwt_tokens);
  }

  /**
   * The hot path without an await: a token verified before (on this keep-alive
   * connection, or in the cache), or a new one signed by a key already known.
   * Undefined when the keys must be fetched first.
   */
  verifyCached(token: string, policy: OidcPolicy, req: IncomingMessage): VerifiedToken | undefined {
    try {
      return this.verifierFor(policy).verifyOnConnection(token, policy.tokenVerification, req.socket);
    } catch (err) {
      throw invalidToken(policy.config, err);
    }
  }

  async principal(token: string, policy: OidcPolicy): Promise<Principal> {
    const config = policy.config;
    try {
      if (this.verifiesLocally(token, policy)) {
        const verified = await this.verifyJwt(token, policy);
        return { via: 'bearer', claims: verified.claims, accessToken: token, memo: verified };
      }
      if (policy.methods.has('introspection')) {
        const claims = await this.introspection.introspect(token, policy);
        return { via: 'introspection', claims, accessToken: token, introspection: claims };
      }
    } catch (err) {
      throw invalidToken(config, err);
    }
    throw new UnauthorizedError(config.unauthorized_error_message, isCompactJws(token) ? 'bearer tokens not accepted on this route' : 'opaque token and introspection not enabled', true);
  }

  verifyJwt(token: string, policy: OidcPolicy): Promise<VerifiedToken> {
    return this.verifierFor(policy).verify(token, policy.tokenVerification);
  }

  /** Claims of a session's access token: the JWT's when it is one, else introspection's (InvalidTokenError when refused). */
  sessionTokenClaims(token: string, policy: OidcPolicy): Promise<Record<string, unknown>> | undefined {
    if (isCompactJws(token)) return this.verifyJwt(token, policy).then((v) => v.claims);
    if (policy.methods.has('introspection')) return this.introspection.introspect(token, policy);
    return undefined;
  }
}

/** A token the verifier refused is the caller's problem (401 invalid_token); anything else passes through unchanged. */
export function invalidToken(config: OpenIdConnectConfig, err: unknown): unknown {
  if (err instanceof InvalidTokenError) return new UnauthorizedError(config.unauthorized_error_message, `invalid token: ${err.message}`, true);
  return err;
}
