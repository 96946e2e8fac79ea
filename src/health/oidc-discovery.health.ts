import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { IssuerRegistry } from '../auth/issuer.registry.js';

/** How long one probe may take, and how long its answer is reused, so probes cannot overload the IdP. */
export const DISCOVERY_CHECK_TIMEOUT_MS = 3_000;
export const DISCOVERY_CHECK_CACHE_MS = 5_000;

/**
 * Readiness means "I can authenticate requests": the issuer's discovery document
 * answers with the same `issuer` (OpenID Connect Discovery §4.3), its
 * `jwks_uri` answers with at least one key, and so does every key set a route
 * uses with it (with that route's `extra_jwks_uris`). The probe goes through the same
 * IssuerRegistry the proxy verifies tokens with, so what readiness reports is
 * what the proxy has (and a recovered IdP is adopted at once). Reports `down`
 * instead of throwing.
 */
@Injectable()
export class OidcDiscoveryHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly issuers: IssuerRegistry,
  ) {}

  check(key: string, issuer: string) {
    return this.health
      .check(key)
      .attempt(({ signal }) => this.issuers.probe(issuer, signal))
      .withTimeout(DISCOVERY_CHECK_TIMEOUT_MS)
      .cacheFor(DISCOVERY_CHECK_CACHE_MS);
  }
}
