import { Injectable } from '@nestjs/common';
import type { HealthIndicatorResult } from '@nestjs/terminus';
import { pluginInstances } from '../config/config-warnings.js';
import type { DeclarativeConfig } from '../config/declarative.schema.js';
import { GatewayConfig } from '../config/gateway-config.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { ProxyConfigRuntime } from '../proxy/proxy-config.runtime.js';
import { isEmptyConfiguration } from './configuration-hash.js';
import { ConfigStoreHealth } from './config-store.health.js';
import { IssuerDiscoveryHealthIndicator } from './issuer-discovery.health.js';
import { OidcDiscoveryHealthIndicator } from './oidc-discovery.health.js';
import { ReadinessState } from './readiness.state.js';

/** Kong's `/status/ready` messages (kong/status/ready.lua), and Gatehouse's for what Kong does not have. */
export const NOT_READY = {
  draining: 'draining',
  emptyConfiguration: 'no configuration available (empty configuration present)',
  identityProvider: (issuer: string, reason: string) => `identity provider not ready: ${issuer}: ${reason}`,
} as const;

type Indicator = () => PromiseLike<HealthIndicatorResult> | HealthIndicatorResult;

export type KongReadiness = { ready: true } | { ready: false; message: string };

/**
 * One set of readiness checks for both readiness endpoints: Gatehouse's
 * `/health/ready` (terminus, every check's detail) and Kong's `/status/ready`
 * (the first failure as `{"message": …}`). Ready means: not draining, a
 * non-empty configuration loaded, and every issuer's discovery document and
 * keys answering as configured.
 */
@Injectable()
export class ReadinessService {
  constructor(
    private readonly state: ReadinessState,
    private readonly config: GatewayConfig,
    private readonly runtime: ProxyConfigRuntime,
    private readonly keys: OidcDiscoveryHealthIndicator,
    private readonly discovery: IssuerDiscoveryHealthIndicator,
    private readonly store: ConfigStoreHealth,
  ) {}

  /** The terminus indicators, in the order Kong's endpoint reports the first failure. */
  indicators(): Indicator[] {
    const issuers = issuersOf(this.runtime.current.declarative);
    const suffix = (i: number) => (issuers.length === 1 ? '' : `_${i}`);
    return [
      () => this.lifecycle(),
      () => this.configuration(),
      ...issuers.flatMap((issuer, i) => [
        () => this.discovery.check(`discovery${suffix(i)}`, issuer),
        () => this.keys.check(`issuer${suffix(i)}`, issuer),
      ]),
    ];
  }

  /** Kong's verdict: cheap checks first, so a draining node answers without touching the IdP. */
  async kongReadiness(): Promise<KongReadiness> {
    if (this.state.draining) return { ready: false, message: NOT_READY.draining };
    if (isEmptyConfiguration(this.runtime.current.declarative)) return { ready: false, message: NOT_READY.emptyConfiguration };
    const issuers = issuersOf(this.runtime.current.declarative);
    const checks = this.indicators().slice(2);
    const results = await Promise.all(checks.map((check) => check()));
    for (let i = 0; i < results.length; i++) {
      const [detail] = Object.values(results[i]) as { status: string; message?: string }[];
      if (detail.status === 'down') {
        return { ready: false, message: NOT_READY.identityProvider(issuers[Math.floor(i / 2)], detail.message ?? 'unavailable') };
      }
    }
    return { ready: true };
  }

  private lifecycle(): HealthIndicatorResult {
    const since = this.state.drainingSince;
    return since
      ? { lifecycle: { status: 'down', state: 'draining', since: since.toISOString() } }
      : { lifecycle: { status: 'up', state: 'serving' } };
  }

  /** A rejected reload leaves the running config serving: still up, with the refusal shown for the operator. */
  private configuration(): HealthIndicatorResult {
    const applied = this.runtime.current;
    const rejected = this.runtime.lastRejection;
    const empty = isEmptyConfiguration(applied.declarative);
    // An unreachable database leaves the config up (the last good one serves); the detail says so.
    const database = this.store.detail();
    return {
      config: {
        status: empty ? 'down' : 'up',
        source: applied.source,
        demo: this.config.demo,
        hash: applied.hash,
        version: applied.version,
        ...(database && { database }),
        ...(rejected && { rejected: { at: rejected.at.toISOString(), source: rejected.source, problems: rejected.problems.length } }),
        ...(empty && { message: NOT_READY.emptyConfiguration }),
      },
    };
  }
}

/** Every distinct issuer the applied config's enabled openid-connect plugins name. */
function issuersOf(declarative: DeclarativeConfig): string[] {
  const issuers = pluginInstances(declarative).flatMap(({ plugin }) => (plugin.name === 'openid-connect' ? [(plugin.config as OpenIdConnectConfig).issuer] : []));
  return [...new Set(issuers)];
}
