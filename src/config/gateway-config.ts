import type { DeclarativeConfig } from './declarative.schema.js';
import type { GatewaySettings } from './gateway-settings.js';
import type { OpenIdConnectConfig } from './openid-connect.schema.js';

/**
 * Everything loaded and validated before Nest starts, injected by class token.
 * Immutable for the life of the process: a config change is a rolling restart.
 */
export class GatewayConfig {
  constructor(
    readonly settings: GatewaySettings,
    readonly declarative: DeclarativeConfig,
    /** Where the declarative config came from (a path), for logs and readiness. */
    readonly source: string,
    /** True when the built-in demo is running (issue: `npm start` with no config). */
    readonly demo = false,
  ) {}

  /** Every enabled openid-connect plugin config, wherever it is attached. */
  get openIdConnectConfigs(): OpenIdConnectConfig[] {
    const found: OpenIdConnectConfig[] = [];
    const visit = (plugins: DeclarativeConfig['plugins'] | DeclarativeConfig['services'][number]['plugins']) => {
      for (const p of plugins) if (p.enabled && p.name === 'openid-connect') found.push(p.config);
    };
    visit(this.declarative.plugins);
    for (const s of this.declarative.services) {
      visit(s.plugins);
      for (const r of s.routes) visit(r.plugins);
    }
    for (const r of this.declarative.routes) visit(r.plugins);
    return found;
  }

  /** Every distinct issuer named by an enabled openid-connect plugin. */
  get issuers(): string[] {
    return [...new Set(this.openIdConnectConfigs.map((c) => c.issuer))];
  }
}
