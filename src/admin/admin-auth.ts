import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { AuthGuard, PassportStrategy } from '@nestjs/passport';
import type { Logger } from 'pino';
import { AccessTokenVerifier, ASYMMETRIC_ALGORITHMS, InvalidTokenError } from '../auth/access-token.verifier.js';
import { UnauthorizedError } from '../auth/auth.errors.js';
import { BearerTokenStrategy } from '../auth/bearer-token.strategy.js';
import { IssuerState } from '../auth/issuer.registry.js';
import type { Principal } from '../auth/principal.js';
import { ADMIN_LOGGER, ADMIN_OPTIONS } from './admin.tokens.js';
import type { AdminOptions } from './admin.module.js';

export const ADMIN_STRATEGY = 'gatehouse-admin';

/**
 * The Admin API's caller: a JWT access token from GATEHOUSE_ADMIN_ISSUER whose
 * `aud` names GATEHOUSE_ADMIN_AUDIENCE, verified by the same AccessTokenVerifier
 * proxied routes use (RFC 9068 §4, RFC 8725: algorithms from an allow-list,
 * keys from the issuer's JWKS, never from the token's header).
 */
@Injectable()
export class AdminBearerStrategy extends PassportStrategy(BearerTokenStrategy, ADMIN_STRATEGY) {
  private readonly issuer: IssuerState;
  private readonly verifier = new AccessTokenVerifier(1_000);

  constructor(
    @Inject(ADMIN_OPTIONS) private readonly options: AdminOptions,
    @Inject(ADMIN_LOGGER) logger: Logger,
  ) {
    super();
    this.issuer = new IssuerState(options.auth!.issuer, 10_000, logger);
  }

  async validate(token: string): Promise<Principal> {
    try {
      const verified = await this.verifier.verify(token, {
        issuer: this.issuer,
        algorithms: ASYMMETRIC_ALGORITHMS,
        leewaySeconds: 0,
        verifySignature: true,
        audience: [this.options.auth!.audience],
      });
      return { via: 'bearer', claims: verified.claims, accessToken: token };
    } catch (err) {
      if (err instanceof InvalidTokenError) throw UnauthorizedError.invalidToken('Unauthorized', `invalid admin token: ${err.message}`);
      throw err;
    }
  }

  close() {
    this.issuer.close();
  }
}

/** Passport's AuthGuard with the gateway's RFC 6750 401 instead of Nest's bare one. */
@Injectable()
export class AdminAuthGuard extends AuthGuard(ADMIN_STRATEGY) {
  override handleRequest<T>(err: unknown, user: T, _info: unknown, _context: ExecutionContext): T {
    if (err) throw err;
    if (!user) throw UnauthorizedError.missingCredentials('Unauthorized', 'no admin bearer token');
    return user;
  }
}
