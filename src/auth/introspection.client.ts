import { Injectable } from '@nestjs/common';
import * as client from 'openid-client';
import { AccessTokenVerifier, InvalidTokenError } from './access-token.verifier.js';
import { IdentityProviderUnavailableError } from './auth.errors.js';
import { BoundedCache } from './bounded-cache.js';
import { idpFailed } from './openid-connect.strategy.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';

/** An active token's answer is never kept longer than this (nor than the token lives, nor `cache_ttl`): revocation must show. */
const ACTIVE_CACHE_MAX_MS = 5 * 60_000;
const CACHE_MAX = 50_000;

type Answer = { active: true; claims: Record<string, unknown> } | { active: false; reason: string };

/**
 * RFC 7662 token introspection with client authentication. Only `active: true`
 * (the boolean) passes, from this issuer, for an access token. Answers are
 * cached per plugin instance and token: an active one until the token expires (at most
 * `cache_ttl`, at most five minutes), an inactive one for `cache_ttl_neg`
 * seconds so that replaying a bogus token costs the IdP nothing.
 */
@Injectable()
export class IntrospectionClient {
  private readonly answers = new BoundedCache<string, Answer>(CACHE_MAX);

  async introspect(token: string, instance: OpenIdConnectInstance): Promise<Record<string, unknown>> {
    const key = `${instance.id}:${AccessTokenVerifier.cacheKey(token)}`;
    const answer = this.answers.get(key) ?? (await this.ask(token, instance, key));
    if (!answer.active) throw new InvalidTokenError(answer.reason);
    return answer.claims;
  }

  private async ask(token: string, instance: OpenIdConnectInstance, key: string): Promise<Answer> {
    const cfg = await instance.client();
    if (!cfg.serverMetadata().introspection_endpoint) {
      throw new IdentityProviderUnavailableError(`${instance.config.issuer} advertises no introspection_endpoint and none is configured`);
    }
    let result: Record<string, unknown>;
    try {
      // RFC 7662 §2.1: the hint lets the server look in the right place first.
      result = (await gatewayMetrics.idpCall(instance.issuer.issuer, 'introspection', () => client.tokenIntrospection(cfg, token, { token_type_hint: 'access_token' }))) as Record<string, unknown>;
    } catch (err) {
      if (idpFailed(err)) throw new IdentityProviderUnavailableError(`introspection at ${instance.config.issuer} failed`, err);
      // The IdP answered but not with a usable introspection response (e.g. it refused our client): no decision, fail closed.
      throw new IdentityProviderUnavailableError(`introspection at ${instance.config.issuer} refused: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    const now = Date.now();
    const refusal = refusalOf(result, instance.issuer.metadata?.issuer);
    if (refusal) {
      const answer: Answer = { active: false, reason: refusal };
      this.answers.set(key, answer, instance.config.cache_ttl_neg * 1000, now);
      return answer;
    }
    const answer: Answer = { active: true, claims: result };
    const exp = typeof result.exp === 'number' ? result.exp * 1000 : now + ACTIVE_CACHE_MAX_MS;
    this.answers.set(key, answer, Math.min(exp - now, ACTIVE_CACHE_MAX_MS, instance.config.cache_ttl * 1000), now);
    return answer;
  }
}

/** Why an introspection response does not make the token acceptable here, or undefined when it does. */
export function refusalOf(result: Record<string, unknown>, issuer: string | undefined): string | undefined {
  if (result.active !== true) return 'token is not active';
  if (typeof result.iss === 'string' && result.iss !== issuer) return 'introspected token is from another issuer';
  // A refresh token is active too, but it is not a credential for an API (RFC 6749 §1.5).
  if (typeof result.token_type === 'string' && /^refresh[_ ]?token$/i.test(result.token_type)) return 'introspected token is a refresh token';
  if (typeof result.exp === 'number' && result.exp * 1000 <= Date.now()) return 'introspected token has expired';
  return undefined;
}
