import { Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { AccessTokenVerifier, InvalidTokenError, type VerifiedToken } from './access-token.verifier.js';
import { isCompactJws } from './auth-http.js';
import { UnauthorizedError } from './auth.errors.js';
import { IntrospectionClient } from './introspection.client.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
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

  verifierFor(instance: OpenIdConnectInstance): AccessTokenVerifier {
    let verifier = this.verifiers.get(instance.verificationProfile);
    if (!verifier) this.verifiers.set(instance.verificationProfile, (verifier = new AccessTokenVerifier()));
    return verifier;
  }

  /** True when this token goes through local JWT verification on this route (else introspection, or nothing). */
  verifiesLocally(token: string, instance: OpenIdConnectInstance): boolean {
    return instance.verifiesJwtLocally && isCompactJws(token);
  }

  /**
   * The hot path without an await: a token verified before (on this keep-alive
   * connection, or in the cache), or a new one signed by a key already known.
   * Undefined when the keys must be fetched first.
   */
  verifyCached(token: string, instance: OpenIdConnectInstance, req: IncomingMessage): VerifiedToken | undefined {
    if (!instance.verifiesJwtLocally) return undefined;
    const verifier = this.verifierFor(instance);
    // The connection's last token, verified before: a JWS by construction, no need to look at its shape.
    const repeat = verifier.repeatOnConnection(token, req.socket);
    if (repeat !== undefined) return repeat;
    if (!isCompactJws(token)) return undefined;
    try {
      return verifier.verifyAndRemember(token, instance.tokenVerification, req.socket);
    } catch (err) {
      throw invalidToken(instance.config, err);
    }
  }

  async principal(token: string, instance: OpenIdConnectInstance): Promise<Principal> {
    const config = instance.config;
    try {
      if (this.verifiesLocally(token, instance)) {
        const verified = await this.verifyJwt(token, instance);
        return { via: 'bearer', claims: verified.claims, accessToken: token, memo: verified };
      }
      if (instance.methods.has('introspection')) {
        const claims = await this.introspection.introspect(token, instance);
        return { via: 'introspection', claims, accessToken: token, introspection: claims };
      }
    } catch (err) {
      throw invalidToken(config, err);
    }
    throw UnauthorizedError.invalidToken(config.unauthorized_error_message, isCompactJws(token) ? 'bearer tokens not accepted on this route' : 'opaque token and introspection not enabled');
  }

  verifyJwt(token: string, instance: OpenIdConnectInstance): Promise<VerifiedToken> {
    return this.verifierFor(instance).verify(token, instance.tokenVerification);
  }

  /** Claims of a session's access token: the JWT's when it is one, else introspection's (InvalidTokenError when refused). */
  sessionTokenClaims(token: string, instance: OpenIdConnectInstance): Promise<Record<string, unknown>> | undefined {
    if (isCompactJws(token)) return this.verifyJwt(token, instance).then((v) => v.claims);
    if (instance.methods.has('introspection')) return this.introspection.introspect(token, instance);
    return undefined;
  }
}

/** A token the verifier refused is the caller's problem (401 invalid_token); anything else passes through unchanged. */
export function invalidToken(config: OpenIdConnectConfig, err: unknown): unknown {
  if (err instanceof InvalidTokenError) return UnauthorizedError.invalidToken(config.unauthorized_error_message, `invalid token: ${err.message}`);
  return err;
}
