import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config.js';
import { AuthModule } from '../auth/auth.module.js';
import { PluginChainCompiler } from '../plugins/plugin-chain.compiler.js';
import { PluginsModule } from '../plugins/plugins.module.js';
import { ProxyHandler } from './proxy.handler.js';
import { RouteMatcher } from './route-matcher.js';
import { RouteTable } from './route-table.js';
import { UpstreamClient } from './upstream.client.js';
import { WebSocketProxy } from './websocket.proxy.js';

/** Route table compiled once, the upstream pools, and the catch-all handler of the proxy listener. */
@Module({
  imports: [AuthModule, PluginsModule],
  providers: [
    {
      provide: RouteTable,
      inject: [GatewayConfig, PluginChainCompiler],
      // Every route's plugin chain is compiled here, at load: nothing is built on a first request.
      useFactory: (c: GatewayConfig, plugins: PluginChainCompiler) => {
        const table = RouteTable.compile(c.declarative);
        for (const route of table.routes) plugins.attach(route);
        return table;
      },
    },
    { provide: UpstreamClient, inject: [RouteTable], useFactory: (t: RouteTable) => new UpstreamClient(t.services) },
    RouteMatcher,
    WebSocketProxy,
    ProxyHandler,
  ],
  exports: [RouteTable, ProxyHandler, WebSocketProxy],
})
export class ProxyModule implements OnApplicationShutdown {
  constructor(@Inject(UpstreamClient) private readonly upstream: UpstreamClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.upstream.close();
  }
}
