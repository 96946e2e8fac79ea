import { hash } from 'node:crypto';
import { errors as joseErrors, jwtVerify, decodeJwt, decodeProtectedHeader, type JWTPayload, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import { GatewayError } from '../common/gateway.error.js';
import { IdentityProviderUnavailableError } from './auth.errors.js';
import type { IssuerState } from './issuer.registry.js';

/** Asymmetric algorithms accepted by default (RFC 8725 §3.1: an allow-list, never the token's own say-so). */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];

/** `typ` values that mark a JWT as something other than an access token. */
const NOT_ACCESS_TOKEN_TYP = new Set(['logout+jwt', 'application/logout+jwt', 'secevent+jwt', 'id_token+jwt']);
const ACCESS_TOKEN_TYP = new Set(['at+jwt', 'application/at+jwt']);

export interface VerifiedToken {
  claims: JWTPayload & Record<string, unknown>;
  /** Epoch ms after which the cached verification must not be used. */
  expiresAt: number;
  /** Single-slot memo for the authorization decision of the last policy that checked this token. */
  decidedFor?: object;
  decision?: unknown;
}

export interface VerifyOptions {
  issuer: IssuerState;
  algorithms: readonly string[];
  leewaySeconds: number;
  /** Symmetric key for HS* (the client secret), only when enable_hs_signatures is on. */
  hmacSecret?: Uint8Array;
  verifySignature: boolean;
  /** When set, `aud` must contain one of these (RFC 9068 §4). */
  audience?: readonly string[];
}

/** A token that is not acceptable: 401 invalid_token. */
export class InvalidTokenError extends Error {}

/**
 * JWT access token verification (RFC 9068, RFC 8725), with a bounded cache of
 * verified tokens keyed by a hash of the token, valid until the token's `exp`:
 * a repeat call costs one hash and one map lookup instead of a signature check.
 */
export class AccessTokenVerifier {
  private readonly cache = new Map<string, VerifiedToken>();

  constructor(private readonly maxEntries = 50_000) {}

  static cacheKey(token: string): string {
    // One-shot hash: measurably cheaper per request than createHash().update().digest().
    return hash('sha256', token, 'base64url');
  }

  lookup(key: string, now = Date.now()): VerifiedToken | undefined {
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    this.cache.delete(key);
    if (hit.expiresAt <= now) return undefined;
    // Least recently used first out: a hit moves to the end of the Map's insertion order.
    this.cache.set(key, hit);
    return hit;
  }

  store(key: string, entry: VerifiedToken) {
    if (this.cache.size >= this.maxEntries) {
      // The least recently used entry is first in the Map's iteration order.
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, entry);
  }

  /**
   * Verifies a JWT access token. Throws InvalidTokenError (→ 401) for a token
   * that is bad, IdentityProviderUnavailableError (→ 503) when the keys needed to
   * decide cannot be fetched.
   */
  async verify(token: string, opts: VerifyOptions, cacheKey = AccessTokenVerifier.cacheKey(token)): Promise<VerifiedToken> {
    const cached = this.lookup(cacheKey);
    if (cached) return cached;

    let header: JWTHeaderParameters;
    try {
      header = decodeProtectedHeader(token) as JWTHeaderParameters;
    } catch {
      throw new InvalidTokenError('not a JWS compact serialization');
    }
    const typ = header.typ?.toLowerCase();
    if (typ && NOT_ACCESS_TOKEN_TYP.has(typ)) throw new InvalidTokenError(`token type "${header.typ}" is not an access token`);

    const metadata = await opts.issuer.discover();
    const hmac = opts.hmacSecret;
    const key = (h: JWTHeaderParameters, t: FlattenedJWSInput) => {
      if (HMAC_ALGORITHMS.includes(h.alg)) {
        if (!hmac) throw new InvalidTokenError(`algorithm ${h.alg} is not allowed`);
        return hmac;
      }
      return opts.issuer.getKey(h, t);
    };
    let payload: JWTPayload & Record<string, unknown>;
    if (!opts.verifySignature) {
      // verify_signature: false — an operator's explicit choice, warned about loudly at start.
      payload = unverifiedClaims(token, metadata.issuer, opts.leewaySeconds, opts.audience);
    } else try {
      const result = await jwtVerify(token, key, {
        issuer: metadata.issuer,
        algorithms: [...opts.algorithms, ...(hmac ? HMAC_ALGORITHMS : [])],
        clockTolerance: opts.leewaySeconds,
        requiredClaims: ['exp'],
        ...(opts.audience?.length ? { audience: [...opts.audience] } : {}),
      });
      payload = result.payload as JWTPayload & Record<string, unknown>;
    } catch (err) {
      if (err instanceof IdentityProviderUnavailableError || err instanceof GatewayError) throw err;
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof joseErrors.JOSEError) throw new InvalidTokenError(describeJoseError(err));
      throw err;
    }

    // An ID token or a logout token is not an access token (RFC 9068 §4, RFC 8725 §3.11),
    // even when signed by the same issuer with the same key.
    if (!(typ && ACCESS_TOKEN_TYP.has(typ))) {
      if (payload.typ === 'ID' || payload.typ === 'Logout' || 'nonce' in payload || 'at_hash' in payload || 'c_hash' in payload || 'events' in payload) {
        throw new InvalidTokenError('an ID token or logout token cannot be used as an access token');
      }
    }
    const entry: VerifiedToken = { claims: payload, expiresAt: payload.exp! * 1000 + opts.leewaySeconds * 1000 };
    this.store(cacheKey, entry);
    return entry;
  }
}

function describeJoseError(err: InstanceType<typeof joseErrors.JOSEError>): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim check failed: ${err.claim} (${err.reason})`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the issuer matches the token';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  return `${err.code}: ${err.message}`;
}

function unverifiedClaims(token: string, issuer: string, leewaySeconds: number, audience?: readonly string[]): JWTPayload & Record<string, unknown> {
  let payload: JWTPayload & Record<string, unknown>;
  try {
    payload = decodeJwt(token) as JWTPayload & Record<string, unknown>;
  } catch {
    throw new InvalidTokenError('not a JWT');
  }
  const now = Math.floor(Date.now() / 1000);
  if (payload.iss !== issuer) throw new InvalidTokenError('claim check failed: iss');
  if (typeof payload.exp !== 'number' || payload.exp + leewaySeconds <= now) throw new InvalidTokenError('token expired');
  if (typeof payload.nbf === 'number' && payload.nbf - leewaySeconds > now) throw new InvalidTokenError('claim check failed: nbf');
  if (audience?.length) {
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.some((a) => typeof a === 'string' && audience.includes(a))) throw new InvalidTokenError('claim check failed: aud');
  }
  return payload;
}
