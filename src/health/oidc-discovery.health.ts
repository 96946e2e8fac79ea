import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { request } from 'undici';

/** How long one probe may take, and how long its answer is reused, so probes cannot overload the IdP. */
export const DISCOVERY_CHECK_TIMEOUT_MS = 3_000;
export const DISCOVERY_CHECK_CACHE_MS = 5_000;

/** Kong accepts either the issuer or the full discovery URL in `issuer`. */
export function discoveryUrl(issuer: string): string {
  if (issuer.includes('/.well-known/')) return issuer;
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

/**
 * Readiness means "I can authenticate requests": the issuer's discovery document
 * answers with the same `issuer` (OpenID Connect Discovery §4.3), and its
 * `jwks_uri` answers with at least one key. Reports `down` instead of throwing.
 */
@Injectable()
export class OidcDiscoveryHealthIndicator {
  constructor(private readonly health: HealthIndicatorService) {}

  check(key: string, issuer: string) {
    return this.health
      .check(key)
      .attempt(async ({ signal }) => {
        const discovery = await getJson(discoveryUrl(issuer), signal);
        const expected = issuer.includes('/.well-known/') ? discovery.issuer : issuer;
        if (typeof discovery.issuer !== 'string' || discovery.issuer !== expected) {
          throw new Error(`discovery issuer ${JSON.stringify(discovery.issuer)} does not match the configured issuer`);
        }
        if (typeof discovery.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
        const jwks = await getJson(discovery.jwks_uri, signal);
        if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('jwks_uri returned no keys');
        return { issuer, keys: jwks.keys.length };
      })
      .withTimeout(DISCOVERY_CHECK_TIMEOUT_MS)
      .cacheFor(DISCOVERY_CHECK_CACHE_MS);
  }
}

async function getJson(url: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const res = await request(url, { signal, headers: { accept: 'application/json' }, maxRedirections: 0 } as Parameters<typeof request>[1]);
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`${url} answered ${res.statusCode}`);
  }
  const body = (await res.body.json()) as unknown;
  if (!body || typeof body !== 'object') throw new Error(`${url} did not answer a JSON object`);
  return body as Record<string, unknown>;
}
