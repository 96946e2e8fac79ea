import { KeyObject, type webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTHeaderParameters } from 'jose';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import { GatewayConfig } from '../config/gateway-config.js';
import { fetchJson } from '../common/fetch-json.js';
import { IdentityProviderUnavailableError } from './auth.errors.js';
import { keyProblem } from './jws-signature.js';

/** OpenID Provider metadata the gateway uses (OpenID Connect Discovery 1.0 §3, RFC 8414). */
export interface ProviderMetadata {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  userinfo_endpoint?: string;
  introspection_endpoint?: string;
  revocation_endpoint?: string;
  end_session_endpoint?: string;
  authorization_response_iss_parameter_supported?: boolean;
  code_challenge_methods_supported?: string[];
  [key: string]: unknown;
}

/**
 * Minimum time between two JWKS fetches caused by unknown `kid`s, so a flood of
 * forged kids costs one fetch: Kong's `rediscovery_lifetime` (default 30 s).
 */
export const JWKS_REFETCH_COOLDOWN_MS = 30_000;
/** Keys are refreshed in the background this often; a failed refresh keeps the keys already known. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
const DISCOVERY_RETRY_MIN_MS = 1_000;
const DISCOVERY_RETRY_MAX_MS = 30_000;

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

function verificationKeyId(alg: string | undefined, kid: string | undefined): string {
  return kid === undefined ? `${alg}` : `${alg} ${kid}`;
}

/** Kong accepts either the issuer or the full discovery URL in `issuer`. */
export function discoveryUrl(issuer: string): string {
  if (issuer.includes('/.well-known/')) return issuer;
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

/** OpenID Connect Discovery §4.3: the document must name exactly the issuer that was configured. */
function checkDiscovery(doc: Record<string, unknown>, configured: string): ProviderMetadata {
  const expected = configured.includes('/.well-known/') ? doc.issuer : configured;
  if (typeof doc.issuer !== 'string' || doc.issuer !== expected) {
    throw new Error(`discovered issuer ${JSON.stringify(doc.issuer)} does not match the configured issuer`);
  }
  if (typeof doc.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
  return doc as ProviderMetadata;
}

function keysOf(sets: Record<string, unknown>[]): JSONWebKeySet['keys'] {
  const keys = sets.flatMap((s) => (Array.isArray(s.keys) ? (s.keys as JSONWebKeySet['keys']) : []));
  if (!keys.length) throw new Error('the JWKS has no keys');
  return keys;
}

/**
 * One issuer: its discovery document and keys, fetched lazily and kept fresh.
 * While the IdP is down, what is cached keeps working; what is not cached
 * fails closed with 503. Recovery needs no restart: failed discovery is retried
 * with backoff, in the background and on demand.
 */
export class IssuerState {
  metadata?: ProviderMetadata;
  lastError?: string;
  private discovering?: Promise<ProviderMetadata>;
  private nextAttemptAt = 0;
  private backoffMs = DISCOVERY_RETRY_MIN_MS;
  private retryTimer?: NodeJS.Timeout;

  private keys?: KeyResolver;
  /** KeyObjects resolved from `keys`, by algorithm and kid; replaced with every new JWKS. */
  private verificationKeys = new Map<string, readonly KeyObject[]>();
  private keyCount = 0;
  private jwksFetchedAt = 0;
  private jwksAttemptAt = 0;
  private jwksFetching?: Promise<void>;
  private closed = false;

  constructor(
    readonly issuer: string,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    private readonly extraJwksUris: readonly string[] = [],
    private readonly refetchCooldownMs = JWKS_REFETCH_COOLDOWN_MS,
  ) {}

  /** Resolves the metadata, discovering it if needed; throws 503 when the IdP cannot be reached. */
  async discover(): Promise<ProviderMetadata> {
    if (this.metadata) return this.metadata;
    if (this.discovering) return this.discovering;
    if (Date.now() < this.nextAttemptAt) {
      throw new IdentityProviderUnavailableError(`discovery of ${this.issuer} failed recently: ${this.lastError}`);
    }
    this.discovering = this.fetchDiscovery().finally(() => (this.discovering = undefined));
    return this.discovering;
  }

  private async fetchDiscovery(): Promise<ProviderMetadata> {
    try {
      const doc = checkDiscovery(await fetchJson(discoveryUrl(this.issuer), this.timeoutMs), this.issuer);
      this.metadata = doc;
      this.lastError = undefined;
      this.backoffMs = DISCOVERY_RETRY_MIN_MS;
      this.logger.info({ issuer: this.issuer }, 'issuer discovered');
      await this.refreshKeys().catch(() => undefined);
      return this.metadata;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.nextAttemptAt = Date.now() + this.backoffMs;
      this.scheduleRetry(this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, DISCOVERY_RETRY_MAX_MS);
      this.logger.warn({ issuer: this.issuer, reason: this.lastError }, 'issuer discovery failed');
      throw new IdentityProviderUnavailableError(`discovery of ${this.issuer} failed: ${this.lastError}`, err);
    }
  }

  private scheduleRetry(ms: number) {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.discover().catch(() => undefined);
    }, ms);
    this.retryTimer.unref();
  }

  /**
   * The keys already resolved for this algorithm and `kid`, with no await: the
   * hot path of a token signed by a key seen before. Undefined means "resolve
   * them first" (resolveKeys). Keys older than JWKS_MAX_AGE_MS are refreshed in
   * the background while they go on verifying.
   */
  cachedKeys(alg: string, kid: string | undefined): readonly KeyObject[] | undefined {
    if (!this.metadata || !this.keys) return undefined;
    const keys = this.verificationKeys.get(verificationKeyId(alg, kid));
    if (keys && Date.now() - this.jwksFetchedAt > JWKS_MAX_AGE_MS) void this.refreshKeys().catch(() => undefined);
    return keys;
  }

  /**
   * The keys for a JWS, chosen by jose from the issuer's JWKS by `kid` and
   * `alg` only (never from `jku`, `x5u` or `jwk` headers: RFC 8725 §3.10), as
   * KeyObjects for the signature check. Keys unfit for the algorithm (a short
   * RSA modulus, another curve) are left out. An unknown key causes at most one
   * refetch per cooldown; no match throws jose's JWKSNoMatchingKey.
   */
  async resolveKeys(header: JWTHeaderParameters): Promise<readonly KeyObject[]> {
    await this.discover();
    if (!this.keys) await this.refreshKeys();
    const id = verificationKeyId(header.alg, header.kid);
    const known = this.verificationKeys.get(id);
    if (known) return known;
    try {
      return await this.selectKeys(header, id);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      if (Date.now() - this.jwksAttemptAt < this.refetchCooldownMs) throw err;
      await this.refreshKeys();
      return this.selectKeys(header, id);
    }
  }

  private async selectKeys(header: JWTHeaderParameters, id: string): Promise<readonly KeyObject[]> {
    const resolver = this.keys!;
    const candidates: CryptoKey[] = [];
    try {
      candidates.push((await resolver(header)) as CryptoKey);
    } catch (err) {
      // Several keys fit (no `kid`, or a reused one): jose hands them over to be tried in turn.
      if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
      for await (const key of err as unknown as AsyncIterable<CryptoKey>) candidates.push(key);
    }
    const usable: KeyObject[] = [];
    for (const candidate of candidates) {
      const key = KeyObject.from(candidate);
      const problem = keyProblem(header.alg!, key);
      if (problem) this.logger.warn({ issuer: this.issuer, kid: header.kid, alg: header.alg, reason: problem }, 'issuer key not usable');
      else usable.push(key);
    }
    if (!usable.length) throw new joseErrors.JWKSNoMatchingKey();
    // Only keys that exist in the JWKS are remembered, so forged kids cannot grow this map.
    if (resolver === this.keys) this.verificationKeys.set(id, usable);
    return usable;
  }

  /** Fetches the JWKS (coalesced); on failure keeps the old keys, and throws 503 only when there are none. */
  refreshKeys(): Promise<void> {
    this.jwksFetching ??= (async () => {
      this.jwksAttemptAt = Date.now();
      try {
        const uris = [this.metadata!.jwks_uri, ...this.extraJwksUris];
        this.adoptKeys(keysOf(await Promise.all(uris.map((u) => fetchJson(u, this.timeoutMs)))));
        this.logger.debug({ issuer: this.issuer, keys: this.keyCount }, 'issuer keys loaded');
      } catch (err) {
        this.logger.warn({ issuer: this.issuer, reason: err instanceof Error ? err.message : String(err) }, 'fetching issuer keys failed');
        if (!this.keys) throw new IdentityProviderUnavailableError(`keys of ${this.issuer} unavailable`, err);
        throw new IdentityProviderUnavailableError(`refetching keys of ${this.issuer} failed`, err);
      } finally {
        this.jwksFetching = undefined;
      }
    })();
    return this.jwksFetching;
  }

  private adoptKeys(keys: JSONWebKeySet['keys']) {
    this.keys = createLocalJWKSet({ keys });
    this.verificationKeys = new Map();
    this.keyCount = keys.length;
    this.jwksFetchedAt = Date.now();
  }

  /**
   * Readiness: fetch the discovery document and keys now and check them. A
   * success is adopted (so a recovered IdP is used at once); a failure only
   * reports, keeping the cached keys that still verify tokens.
   */
  async probe(signal?: AbortSignal): Promise<{ issuer: string; keys: number }> {
    const doc = checkDiscovery(await fetchJson(discoveryUrl(this.issuer), this.timeoutMs, signal), this.issuer);
    const keys = keysOf(await Promise.all([doc.jwks_uri, ...this.extraJwksUris].map((u) => fetchJson(u, this.timeoutMs, signal))));
    if (!this.metadata) {
      this.metadata = doc;
      this.lastError = undefined;
      this.backoffMs = DISCOVERY_RETRY_MIN_MS;
      this.nextAttemptAt = 0;
    }
    this.adoptKeys(keys);
    return { issuer: this.issuer, keys: keys.length };
  }

  /** For readiness: discovered and holding at least one key. */
  get loaded(): { ok: boolean; keys: number; error?: string } {
    return { ok: Boolean(this.metadata && this.keys), keys: this.keyCount, error: this.lastError };
  }

  close() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

/** Every configured issuer, created at start and discovered in the background (the gateway starts even when an IdP is down). */
@Injectable()
export class IssuerRegistry implements OnModuleInit, OnModuleDestroy {
  private readonly issuers = new Map<string, IssuerState>();

  constructor(
    private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get(issuer: string, timeoutMs = 10_000, extraJwksUris: readonly string[] = [], refetchCooldownMs = JWKS_REFETCH_COOLDOWN_MS): IssuerState {
    let state = this.issuers.get(issuer);
    if (!state) {
      state = new IssuerState(issuer, timeoutMs, this.logger, extraJwksUris, refetchCooldownMs);
      this.issuers.set(issuer, state);
    }
    return state;
  }

  onModuleInit() {
    for (const c of this.config.openIdConnectConfigs) {
      const issuer = c.issuer;
      if (this.issuers.has(issuer)) continue;
      if (issuer.startsWith('http://') && !/^http:\/\/(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:|\/)/.test(issuer)) {
        this.logger.warn({ issuer }, 'issuer uses plain http: tokens and keys can be tampered with in transit; use https in production');
      }
      this.get(issuer, c.timeout, c.extra_jwks_uris, c.rediscovery_lifetime * 1000).discover().catch(() => undefined);
    }
  }

  onModuleDestroy() {
    for (const s of this.issuers.values()) s.close();
  }
}
