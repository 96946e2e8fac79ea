import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config.js';
import { AuthModule } from '../auth/auth.module.js';
import { OpenIdConnectService } from '../auth/openid-connect.service.js';
import { ProxyHandler } from './proxy.handler.js';
import { RouteMatcher } from './route-matcher.js';
import { RouteTable } from './route-table.js';
import { UpstreamClient } from './upstream.client.js';

/** Route table compiled once, the upstream pools, and the catch-all handler of the proxy listener. */
@Module({
  imports: [AuthModule],
  providers: [
    {
      provide: RouteTable,
      inject: [GatewayConfig, OpenIdConnectService],
      // Every route's plugin policy is compiled here, at load: nothing is built on a first request.
      useFactory: (c: GatewayConfig, oidc: OpenIdConnectService) => {
        const table = RouteTable.compile(c.declarative);
        for (const route of table.routes) {
          const plugin = route.plugins['openid-connect'];
          if (plugin) route.auth = oidc.policy(plugin);
        }
        return table;
      },
    },
    { provide: UpstreamClient, inject: [RouteTable], useFactory: (t: RouteTable) => new UpstreamClient(t.services) },
    RouteMatcher,
    ProxyHandler,
  ],
  exports: [RouteTable, ProxyHandler],
})
export class ProxyModule implements OnApplicationShutdown {
  constructor(@Inject(UpstreamClient) private readonly upstream: UpstreamClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.upstream.close();
  }
}
