import { Module, type Provider } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { AccessLogPlugin } from './access-log/access-log.plugin.js';
import { CorsPlugin } from './cors/cors.plugin.js';
import { OpenIdConnectPlugin } from './openid-connect/openid-connect.plugin.js';
import { PrometheusPlugin } from './prometheus/prometheus.plugin.js';
import { ProxyCachePlugin } from './proxy-cache/proxy-cache.plugin.js';
import { RateLimitingPlugin } from './rate-limiting/rate-limiting.plugin.js';
import { GATEWAY_PLUGINS, type GatewayPlugin } from './plugin.js';
import { PluginChainCompiler } from './plugin-chain.compiler.js';

/** Every plugin provider. Adding a plugin adds its class here and its schema to PLUGIN_SCHEMAS. */
export const PLUGIN_PROVIDERS = [OpenIdConnectPlugin, CorsPlugin, RateLimitingPlugin, ProxyCachePlugin, AccessLogPlugin, PrometheusPlugin] as const;

const collected: Provider = {
  provide: GATEWAY_PLUGINS,
  inject: [...PLUGIN_PROVIDERS],
  useFactory: (...plugins: GatewayPlugin[]) => plugins,
};

/** The plugins and the compiler that builds each route's chain from them. */
@Module({
  imports: [AuthModule],
  providers: [...PLUGIN_PROVIDERS, collected, PluginChainCompiler],
  exports: [PluginChainCompiler],
})
export class PluginsModule {}
