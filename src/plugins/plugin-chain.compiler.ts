import { Inject, Injectable } from '@nestjs/common';
import type { CompiledRoute, PluginPhases } from '../proxy/route-table.js';
import type { OpenIdConnectStep } from './openid-connect/openid-connect.plugin.js';
import { GATEWAY_PLUGINS, type CompiledPlugin, type GatewayPlugin } from './plugin.js';

/**
 * Turns a route's effective plugin configs into its compiled chain, once, at
 * load: each plugin instance compiled by its provider, then one array per phase
 * in Kong's priority order (higher first, whatever the order in the file). The
 * request path walks these arrays; nothing is looked up by name per request.
 */
@Injectable()
export class PluginChainCompiler {
  private readonly byName: ReadonlyMap<string, GatewayPlugin>;

  constructor(@Inject(GATEWAY_PLUGINS) plugins: GatewayPlugin[]) {
    this.byName = new Map(plugins.map((p) => [p.name, p]));
  }

  attach(route: CompiledRoute): void {
    const compiled: CompiledPlugin[] = [];
    for (const [name, config] of Object.entries(route.plugins)) {
      if (config === undefined) continue;
      const plugin = this.byName.get(name);
      // The declarative schema only admits plugins listed in PLUGIN_SCHEMAS; each has a provider.
      if (!plugin) throw new Error(`plugin "${name}" has a schema but no provider in PLUGIN_PROVIDERS`);
      compiled.push(plugin.compile(config, { route: route.name, service: route.service.name }));
    }
    compiled.sort((a, b) => b.priority - a.priority);
    const phases: PluginPhases = {
      access: compiled.filter((p) => p.access),
      response: compiled.filter((p) => p.response),
      log: compiled.filter((p) => p.log),
    };
    route.phases = phases;
    route.auth = (compiled.find((p) => p.name === 'openid-connect') as OpenIdConnectStep | undefined)?.instance;
  }
}
