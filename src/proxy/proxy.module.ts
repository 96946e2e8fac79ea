import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config.js';
import { AuthModule } from '../auth/auth.module.js';
import { ProxyHandler } from './proxy.handler.js';
import { RouteMatcher } from './route-matcher.js';
import { RouteTable } from './route-table.js';
import { UpstreamClient } from './upstream.client.js';

/** Route table compiled once, the upstream pools, and the catch-all handler of the proxy listener. */
@Module({
  imports: [AuthModule],
  providers: [
    { provide: RouteTable, inject: [GatewayConfig], useFactory: (c: GatewayConfig) => RouteTable.compile(c.declarative) },
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
