import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { ConfigRuntime } from '../config/config-runtime.js';
import { AuthModule } from '../auth/auth.module.js';
import { PluginsModule } from '../plugins/plugins.module.js';
import { ProxyHandler } from './proxy.handler.js';
import { ProxyConfigRuntime } from './proxy-config.runtime.js';
import { ROUTE_TABLE_SOURCE, RouteMatcher } from './route-matcher.js';
import { UpstreamClient } from './upstream.client.js';
import { WebSocketProxy } from './websocket.proxy.js';

/** The live route table (ProxyConfigRuntime), the upstream pools, and the catch-all handler of the proxy listener. */
@Module({
  imports: [AuthModule, PluginsModule],
  providers: [
    { provide: UpstreamClient, useFactory: () => new UpstreamClient() },
    ProxyConfigRuntime,
    { provide: ConfigRuntime, useExisting: ProxyConfigRuntime },
    { provide: ROUTE_TABLE_SOURCE, useExisting: ProxyConfigRuntime },
    RouteMatcher,
    WebSocketProxy,
    ProxyHandler,
  ],
  exports: [ProxyConfigRuntime, ConfigRuntime, ProxyHandler, WebSocketProxy],
})
export class ProxyModule implements OnApplicationShutdown {
  constructor(@Inject(UpstreamClient) private readonly upstream: UpstreamClient) {}
  async onApplicationShutdown(): Promise<void> {
    await this.upstream.close();
  }
}
