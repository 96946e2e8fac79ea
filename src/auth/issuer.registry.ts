import { KeyObject, type webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTHeaderParameters } from 'jose';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import { GatewayConfig } from '../config/gateway-config.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { fetchJson } from './fetch-json.js';
import { IdentityProviderUnavailableError } from './auth.errors.js';
import { keyProblem } from './jws-signature.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';

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
/**
 * After a failed discovery or JWKS fetch, no new attempt before this backoff
 * (doubling from the minimum to the maximum): requests meanwhile get 503 at
 * once, so a down IdP sees a trickle of retries, not one fetch per request.
 */
export const IDP_RETRY_MIN_MS = 1_000;
export const IDP_RETRY_MAX_MS = 30_000;

/**
 * Endpoints the gateway itself sends tokens, client credentials or trust to.
 * For an https issuer these must be https too: over plain http anyone on the
 * path could read the tokens or swap the keys (RFC 8414 §2 and OpenID Connect
 * Discovery §3 require https endpoints).
 */
const BACK_CHANNEL_ENDPOINTS = ['jwks_uri', 'token_endpoint', 'userinfo_endpoint', 'introspection_endpoint', 'revocation_endpoint'] as const;

type KeyResolver = ReturnType<typeof createLocalJWKSet>;
type JsonFetch = (url: string) => Promise<Record<string, unknown>>;

function verificationKeyId(alg: string | undefined, kid: string | undefined): string {
  return kid === undefined ? `${alg}` : `${alg} ${kid}`;
}

/** Kong accepts either the issuer or the full discovery URL in `issuer`. */
export function discoveryUrl(issuer: string): string {
  if (issuer.includes('/.well-known/')) return issuer;
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

const LOOPBACK_HTTP = /^http:\/\/(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?(\/|$)/i;

/** A plain-http URL that never leaves the machine (tests, the demo). */
export function isLoopbackHttp(url: string): boolean {
  return LOOPBACK_HTTP.test(url);
}

/**
 * The discovery document's plain-http endpoints: `refused` are back-channel
 * endpoints of an https issuer (discovery fails); `warned` are the others,
 * except where a loopback http issuer names loopback endpoints.
 */
export function plainHttpEndpoints(doc: Record<string, unknown>): { refused: string[]; warned: string[] } {
  const issuer = typeof doc.issuer === 'string' ? doc.issuer : '';
  const httpsIssuer = issuer.startsWith('https:');
  const quiet = isLoopbackHttp(issuer);
  const refused: string[] = [];
  const warned: string[] = [];
  for (const [name, value] of Object.entries(doc)) {
    if (!(name.endsWith('_endpoint') || name === 'jwks_uri' || name === 'check_session_iframe')) continue;
    if (typeof value !== 'string' || !value.toLowerCase().startsWith('http:')) continue;
    if (httpsIssuer && (BACK_CHANNEL_ENDPOINTS as readonly string[]).includes(name)) refused.push(name);
    else if (!(quiet && isLoopbackHttp(value))) warned.push(name);
  }
  return { refused, warned };
}

/** OpenID Connect Discovery §4.3: the document must name exactly the issuer that was configured. */
function checkDiscovery(doc: Record<string, unknown>, configured: string): ProviderMetadata {
  const expected = configured.includes('/.well-known/') ? doc.issuer : configured;
  if (typeof doc.issuer !== 'string' || doc.issuer !== expected) {
    throw new Error(`discovered issuer ${JSON.stringify(doc.issuer)} does not match the configured issuer`);
  }
  if (typeof doc.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
  const { refused } = plainHttpEndpoints(doc);
  if (refused.length) throw new Error(`the discovery document of an https issuer names plain-http endpoints, refused: ${refused.join(', ')}`);
  return doc as ProviderMetadata;
}

function keysOf(sets: Record<string, unknown>[]): JSONWebKeySet['keys'] {
  const keys = sets.flatMap((s) => (Array.isArray(s.keys) ? (s.keys as JSONWebKeySet['keys']) : []));
  if (!keys.length) throw new Error('the JWKS has no keys');
  return keys;
}

const reasonOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * One issuer's discovery document, fetched lazily and shared by every route
 * that names the issuer (the document is the issuer's, whatever a route adds).
 * While the IdP is down, what is cached keeps working; what is not fails closed
 * with 503. Recovery needs no restart: failed discovery is retried with backoff,
 * in the background and on demand.
 */
export class IssuerDiscovery {
  metadata?: ProviderMetadata;
  lastError?: string;
  private discovering?: Promise<ProviderMetadata>;
  private nextAttemptAt = 0;
  private backoffMs = IDP_RETRY_MIN_MS;
  private retryTimer?: NodeJS.Timeout;
  private closed = false;
  private warned = false;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly issuer: string,
    /** Raised to the longest `timeout` of the routes sharing this discovery (IssuerRegistry.get). */
    public timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  /** Called after every successful discovery by fetch (key sets load their keys then). */
  onDiscovered(listener: () => void) {
    this.listeners.add(listener);
  }

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
      const doc = checkDiscovery(await gatewayMetrics.idpCall(this.issuer, 'discovery', () => fetchJson(discoveryUrl(this.issuer), this.timeoutMs)), this.issuer);
      this.adopt(doc);
      this.logger.info({ issuer: this.issuer }, 'issuer discovered');
      for (const listener of this.listeners) listener();
      return doc;
    } catch (err) {
      this.lastError = reasonOf(err);
      this.nextAttemptAt = Date.now() + this.backoffMs;
      this.scheduleRetry(this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, IDP_RETRY_MAX_MS);
      this.logger.warn({ issuer: this.issuer, reason: this.lastError }, 'issuer discovery failed');
      throw new IdentityProviderUnavailableError(`discovery of ${this.issuer} failed: ${this.lastError}`, err);
    }
  }

  private adopt(doc: ProviderMetadata) {
    this.metadata = doc;
    this.lastError = undefined;
    this.backoffMs = IDP_RETRY_MIN_MS;
    this.nextAttemptAt = 0;
    const { warned } = plainHttpEndpoints(doc);
    if (warned.length && !this.warned) {
      this.warned = true;
      this.logger.warn(
        { issuer: this.issuer, endpoints: warned },
        `the discovery document names plain-http endpoints (${warned.join(', ')}): what travels to them can be read and changed in transit; use https`,
      );
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
   * Readiness: fetch and check the discovery document now. A success is adopted
   * when nothing was discovered yet (so a recovered IdP is used at once).
   */
  async probe(fetch: JsonFetch): Promise<ProviderMetadata> {
    const doc = checkDiscovery(await fetch(discoveryUrl(this.issuer)), this.issuer);
    if (!this.metadata) this.adopt(doc);
    return doc;
  }

  close() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

/**
 * The keys one verification profile trusts: the issuer's JWKS plus the
 * profile's own `extra_jwks_uris`, fetched with the profile's `timeout` and
 * refetched for unknown `kid`s at most once per its `rediscovery_lifetime`.
 * Routes share an IssuerState only when all of these are equal
 * (IssuerRegistry.get), so keys one route adds are never trusted on another.
 * Discovery is the issuer's, shared (IssuerDiscovery).
 */
export class IssuerState {
  readonly discovery: IssuerDiscovery;

  private keys?: KeyResolver;
  /** KeyObjects resolved from `keys`, by algorithm and kid; replaced with every new JWKS. */
  private verificationKeys = new Map<string, readonly KeyObject[]>();
  private keyCount = 0;
  private jwksFetchedAt = 0;
  private jwksAttemptAt = 0;
  /** No JWKS fetch before this (after a failure), whatever asks for it. */
  private jwksRetryAt = 0;
  private jwksBackoffMs = IDP_RETRY_MIN_MS;
  private jwksError?: string;
  private jwksFetching?: Promise<void>;

  constructor(
    issuer: string | IssuerDiscovery,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    readonly extraJwksUris: readonly string[] = [],
    private readonly refetchCooldownMs = JWKS_REFETCH_COOLDOWN_MS,
  ) {
    this.discovery = typeof issuer === 'string' ? new IssuerDiscovery(issuer, timeoutMs, logger) : issuer;
    // Keys are loaded as soon as the issuer is discovered, not by the first request that needs them.
    this.discovery.onDiscovered(() => void this.refreshKeys('rediscovery').catch(() => undefined));
  }

  get issuer(): string {
    return this.discovery.issuer;
  }

  get metadata(): ProviderMetadata | undefined {
    return this.discovery.metadata;
  }

  set metadata(doc: ProviderMetadata | undefined) {
    this.discovery.metadata = doc;
  }

  get lastError(): string | undefined {
    return this.discovery.lastError ?? this.jwksError;
  }

  discover(): Promise<ProviderMetadata> {
    return this.discovery.discover();
  }

  /**
   * The keys already resolved for this algorithm and `kid`, with no await: the
   * hot path of a token signed by a key seen before. Undefined means "resolve
   * them first" (resolveKeys). Keys older than JWKS_MAX_AGE_MS are refreshed in
   * the background while they go on verifying (no more often than an unknown
   * kid may cause a fetch, and not while a failed fetch backs off).
   */
  cachedKeys(alg: string, kid: string | undefined): readonly KeyObject[] | undefined {
    if (!this.metadata || !this.keys) return undefined;
    const keys = this.verificationKeys.get(verificationKeyId(alg, kid));
    if (keys) {
      const now = Date.now();
      if (now - this.jwksFetchedAt > JWKS_MAX_AGE_MS && now - this.jwksAttemptAt >= this.refetchCooldownMs && now >= this.jwksRetryAt) {
        void this.refreshKeys('max_age').catch(() => undefined);
      }
    }
    return keys;
  }

  /**
   * The keys for a JWS, chosen by jose from the profile's key set by `kid` and
   * `alg` only (never from `jku`, `x5u` or `jwk` headers: RFC 8725 §3.10), as
   * KeyObjects for the signature check. Keys unfit for the algorithm (a short
   * RSA modulus, another curve) are left out. An unknown key causes at most one
   * refetch per cooldown; no match throws jose's JWKSNoMatchingKey. With no keys
   * at all, a failed fetch is not repeated before its backoff ends: 503 at once.
   */
  async resolveKeys(header: JWTHeaderParameters): Promise<readonly KeyObject[]> {
    await this.discover();
    if (!this.keys) {
      if (!this.jwksFetching && Date.now() < this.jwksRetryAt) {
        throw new IdentityProviderUnavailableError(`keys of ${this.issuer} unavailable (fetching them failed recently: ${this.jwksError})`);
      }
      await this.refreshKeys();
    }
    const id = verificationKeyId(header.alg, header.kid);
    const known = this.verificationKeys.get(id);
    if (known) return known;
    try {
      return await this.selectKeys(header, id);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      gatewayMetrics.jwksKidMissed(this.issuer);
      const now = Date.now();
      if (now - this.jwksAttemptAt < this.refetchCooldownMs || now < this.jwksRetryAt) throw err;
      await this.refreshKeys('kid_miss');
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

  /** Fetches the key set (coalesced); on failure keeps the old keys, and throws 503 only when there are none. */
  refreshKeys(cause: 'kid_miss' | 'max_age' | 'rediscovery' = 'rediscovery'): Promise<void> {
    this.jwksFetching ??= (async () => {
      this.jwksAttemptAt = Date.now();
      // The first load is not a refetch; every later one is counted with what caused it.
      if (this.keys) gatewayMetrics.jwksRefetched(this.issuer, cause);
      try {
        const uris = [this.metadata!.jwks_uri, ...this.extraJwksUris];
        this.adoptKeys(keysOf(await Promise.all(uris.map((u) => gatewayMetrics.idpCall(this.issuer, 'jwks', () => fetchJson(u, this.timeoutMs))))));
        this.logger.debug({ issuer: this.issuer, keys: this.keyCount }, 'issuer keys loaded');
      } catch (err) {
        this.jwksError = reasonOf(err);
        this.jwksRetryAt = Date.now() + this.jwksBackoffMs;
        this.jwksBackoffMs = Math.min(this.jwksBackoffMs * 2, IDP_RETRY_MAX_MS);
        this.logger.warn({ issuer: this.issuer, reason: this.jwksError }, 'fetching issuer keys failed');
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
    this.jwksRetryAt = 0;
    this.jwksBackoffMs = IDP_RETRY_MIN_MS;
    this.jwksError = undefined;
  }

  /** Readiness for this key set alone: its discovery document and keys, fetched now (see IssuerRegistry.probe). */
  async probe(signal?: AbortSignal): Promise<{ issuer: string; keys: number }> {
    const fetch: JsonFetch = (u) => fetchJson(u, this.timeoutMs, signal);
    const keys = await this.probeKeys(await this.discovery.probe(fetch), fetch);
    return { issuer: this.issuer, keys };
  }

  /**
   * Fetches this key set now and adopts it (so a recovered IdP is used at once);
   * a failure only reports, keeping the cached keys that still verify tokens.
   */
  async probeKeys(doc: ProviderMetadata, fetch: JsonFetch): Promise<number> {
    const keys = keysOf(await Promise.all([doc.jwks_uri, ...this.extraJwksUris].map(fetch)));
    this.adoptKeys(keys);
    return keys.length;
  }

  /** For readiness: discovered and holding at least one key. */
  get loaded(): { ok: boolean; keys: number; error?: string } {
    return { ok: Boolean(this.metadata && this.keys), keys: this.keyCount, error: this.lastError };
  }

  close() {
    this.discovery.close();
  }
}

/** What decides which IssuerState a plugin instance gets. */
export type IssuerProfile = Pick<OpenIdConnectConfig, 'issuer' | 'timeout' | 'extra_jwks_uris' | 'rediscovery_lifetime'>;

/**
 * Every configured issuer, created at start and discovered in the background
 * (the gateway starts even when an IdP is down): one IssuerDiscovery per
 * issuer, one IssuerState (key set) per distinct issuer, `extra_jwks_uris`,
 * `timeout` and `rediscovery_lifetime`.
 */
@Injectable()
export class IssuerRegistry implements OnModuleInit, OnModuleDestroy {
  private readonly discoveries = new Map<string, IssuerDiscovery>();
  private readonly states = new Map<string, IssuerState>();

  constructor(
    private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The key set for a plugin's config: `get(config)`, or the same four values one by one. */
  get(profile: IssuerProfile): IssuerState;
  get(issuer: string, timeoutMs?: number, extraJwksUris?: readonly string[], refetchCooldownMs?: number): IssuerState;
  get(issuerOrProfile: string | IssuerProfile, timeoutMs = 10_000, extraJwksUris: readonly string[] = [], refetchCooldownMs = JWKS_REFETCH_COOLDOWN_MS): IssuerState {
    if (typeof issuerOrProfile !== 'string') {
      const c = issuerOrProfile;
      return this.get(c.issuer, c.timeout, c.extra_jwks_uris, c.rediscovery_lifetime * 1000);
    }
    const issuer = issuerOrProfile;
    const extra = [...new Set(extraJwksUris)].sort();
    const key = JSON.stringify([issuer, extra, timeoutMs, refetchCooldownMs]);
    let state = this.states.get(key);
    if (!state) {
      let discovery = this.discoveries.get(issuer);
      if (!discovery) this.discoveries.set(issuer, (discovery = new IssuerDiscovery(issuer, timeoutMs, this.logger)));
      // The shared discovery may take as long as the most patient route sharing it allows.
      discovery.timeoutMs = Math.max(discovery.timeoutMs, timeoutMs);
      state = new IssuerState(discovery, timeoutMs, this.logger, extra, refetchCooldownMs);
      this.states.set(key, state);
    }
    return state;
  }

  /** Every key set of an issuer (one per distinct profile naming it). */
  keySets(issuer: string): IssuerState[] {
    return [...this.states.values()].filter((s) => s.issuer === issuer);
  }

  /**
   * Readiness of one issuer: its discovery document and every key set routes
   * use with it, fetched now (each URL once per probe) and adopted on success.
   */
  async probe(issuer: string, signal?: AbortSignal): Promise<{ issuer: string; keys: number; key_sets: number }> {
    const sets = this.keySets(issuer);
    let discovery = this.discoveries.get(issuer);
    if (!discovery) this.discoveries.set(issuer, (discovery = new IssuerDiscovery(issuer, 10_000, this.logger)));
    const fetched = new Map<string, Promise<Record<string, unknown>>>();
    const fetch: JsonFetch = (u) => {
      let p = fetched.get(u);
      if (!p) fetched.set(u, (p = fetchJson(u, discovery.timeoutMs, signal)));
      return p;
    };
    const doc = await discovery.probe(fetch);
    // The issuer's own JWKS counts even where no route uses it yet.
    const keys = keysOf([await fetch(doc.jwks_uri)]).length;
    for (const s of sets) await s.probeKeys(doc, fetch);
    return { issuer, keys, key_sets: sets.length };
  }

  onModuleInit() {
    this.prepare(this.config.openIdConnectConfigs);
  }

  /**
   * Creates the key sets of `profiles` (a config about to be applied) and
   * starts discovering issuers not seen before, in the background. Issuers
   * already known keep their discovery document, keys and caches.
   */
  prepare(profiles: readonly IssuerProfile[]): void {
    const known = new Set(this.discoveries.keys());
    // Every profile first, so each shared discovery knows its final timeout before it starts.
    for (const c of profiles) this.get(c);
    for (const [issuer, discovery] of this.discoveries) {
      if (known.has(issuer)) continue;
      if (issuer.startsWith('http://') && !isLoopbackHttp(issuer)) {
        this.logger.warn({ issuer }, 'issuer uses plain http: tokens and keys can be tampered with in transit; use https in production');
      }
      discovery.discover().catch(() => undefined);
    }
  }

  onModuleDestroy() {
    for (const d of this.discoveries.values()) d.close();
  }
}
