import { pluginInstances } from './config-warnings.js';
import type { DeclarativeConfig } from './declarative.schema.js';
import type { GatewaySettings } from './gateway-settings.js';
import type { OpenIdConnectConfig } from './openid-connect.schema.js';

/**
 * Everything loaded and validated before Nest starts, injected by class token:
 * the settings (fixed for the life of the process) and the declarative config
 * the process started with. Later changes to the declarative config are
 * applied by ConfigRuntime, which is the truth for routing from then on.
 */
export class GatewayConfig {
  constructor(
    readonly settings: GatewaySettings,
    readonly declarative: DeclarativeConfig,
    /** Where the declarative config came from (a path), for logs and readiness. */
    readonly source: string,
    /** True when the built-in demo is running (`npm start` with no config). */
    readonly demo = false,
    /** The document as written (vault references unresolved), for config stores and exports. */
    readonly document: Record<string, unknown> = declarative as unknown as Record<string, unknown>,
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
