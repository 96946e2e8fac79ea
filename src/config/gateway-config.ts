import { pluginInstances } from './config-warnings.js';
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
    /** True when the built-in demo is running (`npm start` with no config). */
    readonly demo = false,
  ) {}

  /** Every enabled openid-connect plugin config, wherever it is attached. */
  get openIdConnectConfigs(): OpenIdConnectConfig[] {
    return pluginInstances(this.declarative).flatMap(({ plugin }) => (plugin.name === 'openid-connect' ? [plugin.config] : []));
  }

  /** Every distinct issuer named by an enabled openid-connect plugin. */
  get issuers(): string[] {
    return [...new Set(this.openIdConnectConfigs.map((c) => c.issuer))];
  }
}
