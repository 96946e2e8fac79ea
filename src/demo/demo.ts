import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/gateway-config.js';
import type { GatewaySettings } from '../config/gateway-settings.js';

/** The built-in demo (embedded IdP + echo upstream) is built by its own issue; until then, say what is missing. */
export async function startDemo(_settings: GatewaySettings, _logger: Logger): Promise<GatewayConfig> {
  throw new Error(
    'no declarative config: set GATEHOUSE_DECLARATIVE_CONFIG=/path/to/kong.yaml or pass --config PATH (the built-in demo is not available yet)',
  );
}
