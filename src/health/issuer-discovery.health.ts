import { HttpService } from '@nestjs/axios';
import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, HttpHealthIndicator } from '@nestjs/terminus';
import type { AxiosResponse } from 'axios';
import { discoveryUrl } from '../auth/issuer.registry.js';
import { MAX_IDP_RESPONSE_BYTES } from '../common/bounded.fetch.js';
import { DISCOVERY_CHECK_CACHE_MS, DISCOVERY_CHECK_TIMEOUT_MS } from './oidc-discovery.health.js';

/**
 * What a discovery document must be for readiness (OpenID Connect Discovery
 * §4.2/§4.3): a 200 with a JSON object naming exactly the configured issuer.
 * Returns why not, or undefined when it is.
 */
export function discoveryVerdict(issuer: string, res: Pick<AxiosResponse, 'status' | 'data'>): string | undefined {
  if (res.status !== 200) return `discovery answered ${res.status}`;
  const doc = res.data as Record<string, unknown> | undefined;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return 'discovery did not answer a JSON object';
  // Kong accepts the full discovery URL as `issuer`; the document then names the issuer itself.
  const expected = issuer.includes('/.well-known/') ? doc.issuer : issuer;
  if (typeof doc.issuer !== 'string' || doc.issuer !== expected) {
    return `discovered issuer ${JSON.stringify(doc.issuer ?? null)} does not match the configured issuer`;
  }
  return undefined;
}

/**
 * Readiness pings each issuer's discovery document over HTTP with terminus's
 * HttpHealthIndicator (`responseCheck`: 200 and a matching `issuer`), through
 * the HttpModule's axios client: beside the key-state indicator, which checks
 * what the proxy's IssuerRegistry holds, this one sees the IdP as a new
 * instance would at start. Kept cheap for probes every few seconds: one
 * request per issuer per DISCOVERY_CHECK_CACHE_MS at most, a bounded timeout,
 * no redirects and a capped body.
 */
@Injectable()
export class IssuerDiscoveryHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly http: HttpHealthIndicator,
    private readonly client: HttpService,
  ) {}

  check(key: string, issuer: string) {
    const url = discoveryUrl(issuer);
    return this.health
      .check(key)
      .attempt(async ({ signal }) => {
        let reason: string | undefined;
        const result = await this.http.responseCheck(
          key,
          url,
          (res) => {
            reason = discoveryVerdict(issuer, res);
            return reason === undefined;
          },
          {
            httpClient: this.client,
            // axios takes an AbortSignal; terminus' narrower option type does not list it.
            ...({ signal } as object),
            timeout: DISCOVERY_CHECK_TIMEOUT_MS,
            maxRedirects: 0,
            maxContentLength: MAX_IDP_RESPONSE_BYTES,
            responseType: 'json',
            headers: { accept: 'application/json' },
            // Every status reaches the verdict, which names it.
            validateStatus: () => true,
            // As the key-state indicator's undici client: no HTTP(S)_PROXY from the environment.
            proxy: false,
          },
        );
        const outcome = result[key] as { status: string; message?: string };
        if (outcome.status !== 'up') throw new Error(reason ?? outcome.message ?? `discovery of ${issuer} failed`);
        return { url };
      })
      .withTimeout(DISCOVERY_CHECK_TIMEOUT_MS)
      .cacheFor(DISCOVERY_CHECK_CACHE_MS);
  }
}
