import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config.js';
import { AuthModule } from '../auth/auth.module.js';
import { ProxyController } from './proxy.controller.js';
import { RouteMatchGuard } from './route-match.guard.js';
import { RouteTable } from './route-table.js';
import { UpstreamClient } from './upstream.client.js';

@Module({
  imports: [AuthModule],
  controllers: [ProxyController],
  providers: [
    { provide: RouteTable, inject: [GatewayConfig], useFactory: (c: GatewayConfig) => RouteTable.compile(c.declarative) },
    { provide: UpstreamClient, inject: [RouteTable], useFactory: (t: RouteTable) => new UpstreamClient(t.services) },
    RouteMatchGuard,
  ],
  exports: [RouteTable],
})
export class ProxyModule implements OnApplicationShutdown {
  constructor(@Inject(UpstreamClient) private readonly upstream: UpstreamClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.upstream.close();
  }
}
