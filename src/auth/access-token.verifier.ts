import { hash, type KeyObject } from 'node:crypto';
import { errors as joseErrors, decodeProtectedHeader, type JWTPayload, type JWTHeaderParameters } from 'jose';
import type { IssuerState } from './issuer.registry.js';
import type { VerificationMemo } from './principal.js';
import { isHmacAlgorithm, verifySignature } from './jws-signature.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';

/** gatehouse_token_cache_lookups_total: bound once, one increment per lookup. */
const CACHE_HIT = gatewayMetrics.tokenCacheHit;
const CACHE_MISS = gatewayMetrics.tokenCacheMiss;

export { ASYMMETRIC_ALGORITHMS } from './jws-signature.js';

/** `typ` values that mark a JWT as something other than an access token. */
const NOT_ACCESS_TOKEN_TYP = new Set(['logout+jwt', 'application/logout+jwt', 'secevent+jwt', 'id_token+jwt']);
const ACCESS_TOKEN_TYP = new Set(['at+jwt', 'application/at+jwt']);

export interface VerifiedToken extends VerificationMemo {
  claims: JWTPayload & Record<string, unknown>;
  /** Epoch ms after which the cached verification must not be used. */
  expiresAt: number;
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
  /**
   * The route's own client_id: a token without scope whose `aud` names it was
   * issued to this gateway as an ID token (OpenID Connect Core §2: an ID
   * token's `aud` is the client it was issued to), not to call an API.
   */
  clientId?: string;
}

const LAST_VERIFIED = Symbol('gatehouse.lastVerifiedToken');
interface ConnectionMemo {
  verifier: AccessTokenVerifier;
  token: string;
  entry: VerifiedToken;
}

/** A token that is not acceptable: 401 invalid_token. */
export class InvalidTokenError extends Error {}

/**
 * JWT access token verification (RFC 9068, RFC 8725), with a bounded cache of
 * verified tokens keyed by a hash of the token, valid until the token's `exp`:
 * a repeat call costs one hash and one map lookup instead of a signature check.
 *
 * A token enters the cache on its second verification, not its first (the
 * "doorkeeper" of TinyLFU admission). Tokens seen once — a crowd of one-call
 * clients, or anyone sending many distinct valid tokens — would otherwise
 * evict the tokens of clients that call again and again, and every insert into
 * a full cache leaves a ~400-byte entry to die in the old generation, which
 * only a mark-compact frees: with a full 50,000-entry cache and a new token
 * every call, that GC cost 53 µs per token against 36 µs with nothing
 * evicted (measured in bench/README.md). The doorkeeper is a fixed typed
 * array (no per-token objects), cleared after every DOORKEEPER_SLOTS misses,
 * so "seen before" means within the last 16,384 verifications. A repeated token
 * pays one extra signature check before it is cached; the result of a check
 * never depends on whether it was cached.
 */
export class AccessTokenVerifier {
  private readonly cache = new Map<string, VerifiedToken>();
  private readonly doorkeeper = new Uint32Array(DOORKEEPER_SLOTS);
  private doorkeeperWrites = 0;

  constructor(private readonly maxEntries = 50_000) {
    gatewayMetrics.trackTokenCache(this.cache);
  }

  static cacheKey(token: string): string {
    // One-shot hash: measurably cheaper per request than createHash().update().digest().
    return hash('sha256', token, 'base64url');
  }

  lookup(key: string, now = Date.now()): VerifiedToken | undefined {
    const hit = this.cache.get(key);
    if (!hit) {
      CACHE_MISS.value++;
      return undefined;
    }
    this.cache.delete(key);
    if (hit.expiresAt <= now) {
      CACHE_MISS.value++;
      return undefined;
    }
    CACHE_HIT.value++;
    // Least recently used first out: a hit moves to the end of the Map's insertion order.
    this.cache.set(key, hit);
    return hit;
  }

  /** Caches a verified token if it was verified before (see the class comment); true when cached. */
  admit(key: string, entry: VerifiedToken): boolean {
    // The key is base64url SHA-256: 6 uniformly random bits per character. Characters 0–2 pick the
    // slot (18 bits, masked to the table), 3–7 make a 30-bit fingerprint; 0 marks an empty slot.
    const slot = (b64(key, 0) | (b64(key, 1) << 6) | (b64(key, 2) << 12)) & (DOORKEEPER_SLOTS - 1);
    const fingerprint = (b64(key, 3) | (b64(key, 4) << 6) | (b64(key, 5) << 12) | (b64(key, 6) << 18) | (b64(key, 7) << 24)) + 1;
    if (this.doorkeeper[slot] === fingerprint) {
      this.doorkeeper[slot] = 0;
      this.store(key, entry);
      return true;
    }
    this.doorkeeper[slot] = fingerprint;
    if (++this.doorkeeperWrites >= DOORKEEPER_SLOTS) {
      this.doorkeeper.fill(0);
      this.doorkeeperWrites = 0;
    }
    return false;
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
   * A token presented on a client connection: `repeatOnConnection`, else
   * `verifyAndRemember` (TokenAuthenticator.verifyCached checks the token's
   * shape between the two). A keep-alive client sends the same token on request
   * after request, so the last token verified on each connection is remembered
   * on it and compared in full (string equality, never a hash): a repeat costs
   * neither the SHA-256 cache key nor the LRU update. The memo holds what the
   * cache would (the verified claims, until `exp`), belongs to this verifier
   * (one per verification profile) and lives as long as the connection.
   *
   * This step: verifyNow, and the result remembered on the connection, for a
   * caller that has just found no repeat there.
   */
  verifyAndRemember(token: string, opts: VerifyOptions, connection: object): VerifiedToken | undefined {
    const entry = this.verifyNow(token, opts, AccessTokenVerifier.cacheKey(token));
    if (entry) (connection as { [LAST_VERIFIED]?: ConnectionMemo })[LAST_VERIFIED] = { verifier: this, token, entry };
    return entry;
  }

  /** The connection's memo when `token` is the last one this verifier verified on it and is still within `exp`. */
  repeatOnConnection(token: string, connection: object): VerifiedToken | undefined {
    const memo = (connection as { [LAST_VERIFIED]?: ConnectionMemo })[LAST_VERIFIED];
    if (memo !== undefined && memo.verifier === this && memo.token === token && memo.entry.expiresAt > Date.now()) {
      CACHE_HIT.value++;
      return memo.entry;
    }
    return undefined;
  }

  /**
   * Verifies a JWT access token. Throws InvalidTokenError (→ 401) for a token
   * that is bad, IdentityProviderUnavailableError (→ 503) when the keys needed to
   * decide cannot be fetched.
   */
  async verify(token: string, opts: VerifyOptions, cacheKey = AccessTokenVerifier.cacheKey(token)): Promise<VerifiedToken> {
    const now = this.verifyNow(token, opts, cacheKey);
    if (now) return now;
    const jws = parseAccessTokenJws(token, opts);
    const metadata = await opts.issuer.discover();
    let keys: readonly (KeyObject | Uint8Array)[] = [];
    if (opts.verifySignature) {
      try {
        keys = jws.hmac ? [opts.hmacSecret!] : await opts.issuer.resolveKeys(jws.header);
      } catch (err) {
        if (err instanceof joseErrors.JOSEError) throw new InvalidTokenError(describeJoseError(err));
        throw err;
      }
    }
    return this.accept(jws, keys, metadata.issuer, opts, cacheKey);
  }

  /**
   * The same verification without an await, for the hot path: the cached result,
   * or a full check when the issuer's metadata and the token's key are already
   * at hand. Undefined means the keys must be fetched first (use verify()).
   * Throws InvalidTokenError for a bad token.
   */
  verifyNow(token: string, opts: VerifyOptions, cacheKey: string): VerifiedToken | undefined {
    const hit = this.lookup(cacheKey);
    if (hit) return hit;
    const jws = parseAccessTokenJws(token, opts);
    const metadata = opts.issuer.metadata;
    if (!metadata) return undefined;
    let keys: readonly (KeyObject | Uint8Array)[] = [];
    if (opts.verifySignature) {
      const found = jws.hmac ? [opts.hmacSecret!] : opts.issuer.cachedKeys(jws.header.alg!, jws.header.kid);
      if (!found) return undefined;
      keys = found;
    }
    return this.accept(jws, keys, metadata.issuer, opts, cacheKey);
  }

  private accept(jws: ParsedJws, keys: readonly (KeyObject | Uint8Array)[], issuer: string, opts: VerifyOptions, cacheKey: string): VerifiedToken {
    if (opts.verifySignature) {
      const signature = Buffer.from(jws.signature, 'base64url');
      const signingInput = Buffer.from(jws.signingInput, 'latin1');
      if (!keys.some((key) => verifySignature(jws.header.alg!, key, signingInput, signature))) {
        throw new InvalidTokenError('signature verification failed');
      }
    }
    // verify_signature: false is an operator's explicit choice, warned about loudly at start; the claims still count.
    const payload = checkClaims(decodePayload(jws.payload), issuer, opts.leewaySeconds, opts.audience);

    // An ID token or a logout token is not an access token (RFC 9068 §4, RFC 8725 §3.11),
    // even when signed by the same issuer with the same key. `typ: at+jwt` says which it is;
    // without it, the claims must.
    if (!jws.accessTokenTyp) {
      const other = otherTokenKind(payload, opts.clientId);
      if (other) throw new InvalidTokenError(`${other} cannot be used as an access token`);
    }
    // Every memo slot present from the start: one object shape for every cached token.
    const entry: VerifiedToken = {
      claims: payload,
      expiresAt: (payload.exp as number) * 1000 + opts.leewaySeconds * 1000,
      decidedFor: undefined,
      decision: undefined,
      callerFor: undefined,
      caller: undefined,
    };
    this.admit(cacheKey, entry);
    return entry;
  }
}

interface ParsedJws {
  header: JWTHeaderParameters;
  signingInput: string;
  payload: string;
  signature: string;
  hmac: boolean;
  accessTokenTyp: boolean;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Doorkeeper size (a power of two): how many recent cache misses can be remembered. */
const DOORKEEPER_SLOTS = 16_384;

/** The 6-bit value of a base64url character (any bijection works here: only uniformity matters). */
function b64(s: string, i: number): number {
  const c = s.charCodeAt(i);
  // A–Z → 0–25, a–z → 26–51, 0–9 → 52–61, '-' → 62, '_' → 63.
  return c === 45 ? 62 : c < 58 ? c + 4 : c < 91 ? c - 65 : c < 96 ? 63 : c - 71;
}

/**
 * RFC 7515 §5.2 steps 1–4 plus RFC 8725's rules, before any key is looked for:
 * three base64url parts, a JSON header, an algorithm from the route's
 * allow-list (never the token's own say-so), no `crit` (no extension is
 * understood), and a `typ` that is not another kind of JWT.
 */
function parseAccessTokenJws(token: string, opts: VerifyOptions): ParsedJws {
  const first = token.indexOf('.');
  const last = token.lastIndexOf('.');
  if (first <= 0 || last === first || token.indexOf('.', first + 1) !== last) throw new InvalidTokenError('not a JWS compact serialization');
  const payload = token.slice(first + 1, last);
  const signature = token.slice(last + 1);
  // An empty signature can only pass where verify_signature is off (then unsigned tokens are the operator's choice).
  if (!BASE64URL.test(token.slice(0, first)) || !BASE64URL.test(payload) || !(BASE64URL.test(signature) || (signature === '' && !opts.verifySignature))) {
    throw new InvalidTokenError('not a JWS compact serialization');
  }
  let header: JWTHeaderParameters;
  try {
    header = decodeProtectedHeader(token) as JWTHeaderParameters;
  } catch {
    throw new InvalidTokenError('not a JWS compact serialization');
  }
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
  if (typ && NOT_ACCESS_TOKEN_TYP.has(typ)) throw new InvalidTokenError(`token type "${header.typ}" is not an access token`);
  if (header.crit !== undefined) throw new InvalidTokenError('unsupported "crit" header');
  const alg = header.alg;
  const hmac = typeof alg === 'string' && isHmacAlgorithm(alg);
  if (opts.verifySignature) {
    const allowed = typeof alg === 'string' && (hmac ? opts.hmacSecret !== undefined : opts.algorithms.includes(alg));
    if (!allowed) throw new InvalidTokenError('algorithm not allowed');
  }
  return { header, signingInput: token.slice(0, last), payload, signature, hmac, accessTokenTyp: typ !== undefined && ACCESS_TOKEN_TYP.has(typ) };
}

function decodePayload(segment: string): JWTPayload & Record<string, unknown> {
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidTokenError('the payload is not JSON');
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new InvalidTokenError('the payload is not a JSON object');
  return payload as JWTPayload & Record<string, unknown>;
}

/** Keycloak's `typ` claim (compared case-insensitively) of JWTs that are not access tokens; its access tokens say "Bearer". */
const NOT_ACCESS_TOKEN_CLAIM_TYP: Record<string, string> = {
  id: 'an ID token',
  'serialized-id': 'an ID token',
  logout: 'a logout token',
  refresh: 'a refresh token',
  offline: 'a refresh token',
};
/** Claims only ID tokens carry (OpenID Connect Core §2, §3.3.2.11; FAPI's `s_hash`). */
const ID_TOKEN_ONLY_CLAIMS = ['nonce', 'at_hash', 'c_hash', 's_hash'] as const;
/** Claims of the user's authentication session, which ID tokens carry (OpenID Connect Core §2, Front-/Back-Channel Logout `sid`). */
const AUTHENTICATION_SESSION_CLAIMS = ['auth_time', 'sid'] as const;

/**
 * What a JWT without `typ: at+jwt` is when it is not an access token, with the
 * claim that gives it away; undefined for an access token. IdPs that predate
 * RFC 9068 sign ID tokens and access tokens with the same keys, so a client
 * holding an ID token for its own login could otherwise call APIs with it
 * (RFC 8725 §3.11, §2.8: cross-JWT confusion).
 *
 * - Keycloak's `typ` claim (`ID`, `Logout`, `Refresh`, ...).
 * - Claims no access token has: `nonce`, `at_hash`, `c_hash`, `s_hash`, and
 *   `events` (a logout token, OpenID Connect Back-Channel Logout §2.4).
 * - With no `scope`/`scp` (every access token of Keycloak, Okta, Entra
 *   delegated, Auth0 and RFC 9068 §2.2.3 carries its scope): the user's
 *   authentication session (`auth_time`, `sid`); an `aud` that is exactly its
 *   `azp` (an ID token's authorized party is its audience, OpenID Connect Core
 *   §2, where an access token's audience is the API); or an `aud` naming the
 *   route's own client_id.
 */
export function otherTokenKind(payload: Readonly<Record<string, unknown>>, clientId?: string): string | undefined {
  if (typeof payload.typ === 'string') {
    const kind = NOT_ACCESS_TOKEN_CLAIM_TYP[payload.typ.toLowerCase()];
    if (kind) return `${kind} (typ "${payload.typ}")`;
  }
  if ('events' in payload) return 'a logout token (events)';
  for (const claim of ID_TOKEN_ONLY_CLAIMS) if (claim in payload) return `an ID token (${claim})`;
  if ('scope' in payload || 'scp' in payload) return undefined;
  for (const claim of AUTHENTICATION_SESSION_CLAIMS) if (claim in payload) return `an ID token (${claim} without scope)`;
  const aud = Array.isArray(payload.aud) ? payload.aud : payload.aud === undefined ? [] : [payload.aud];
  if (aud.length === 1 && typeof payload.azp === 'string' && aud[0] === payload.azp) return 'an ID token (aud is its azp, without scope)';
  if (clientId !== undefined && aud.includes(clientId)) return 'an ID token (issued to this route\'s client_id, without scope)';
  return undefined;
}

function describeJoseError(err: InstanceType<typeof joseErrors.JOSEError>): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim check failed: ${err.claim} (${err.reason})`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the issuer matches the token';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  return `${err.code}: ${err.message}`;
}

/**
 * RFC 7519 §4.1 and RFC 9068 §4: the exact issuer, a numeric `exp` in the future,
 * `nbf` and `iat` numeric when present, `nbf` passed and `iat` not in the future,
 * each with the leeway; and, when the route names audiences, an `aud` containing
 * one of them. A token issued "later" is either forged with a far-off `exp` in
 * mind or comes from an IdP whose clock is off by more than the leeway allows
 * (RFC 8725 §3.10 asks for the claims to be checked, not just parsed).
 */
export function checkClaims(payload: JWTPayload & Record<string, unknown>, issuer: string, leewaySeconds: number, audience?: readonly string[], nowSeconds = Math.floor(Date.now() / 1000)): JWTPayload & Record<string, unknown> {
  if (payload.iss !== issuer) throw new InvalidTokenError('claim check failed: iss (unexpected value)');
  if (typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) throw new InvalidTokenError('claim check failed: exp (missing or not a number)');
  if (payload.exp + leewaySeconds <= nowSeconds) throw new InvalidTokenError('token expired');
  if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || !Number.isFinite(payload.nbf))) throw new InvalidTokenError('claim check failed: nbf (not a number)');
  if (typeof payload.nbf === 'number' && payload.nbf - leewaySeconds > nowSeconds) throw new InvalidTokenError('claim check failed: nbf (not yet valid)');
  if (payload.iat !== undefined && (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat))) throw new InvalidTokenError('claim check failed: iat (not a number)');
  if (typeof payload.iat === 'number' && payload.iat - leewaySeconds > nowSeconds) throw new InvalidTokenError('claim check failed: iat (in the future)');
  if (audience?.length) {
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.some((a) => typeof a === 'string' && audience.includes(a))) throw new InvalidTokenError('claim check failed: aud (unexpected value)');
  }
  return payload;
}
