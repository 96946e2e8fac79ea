import { Controller, Get, Inject } from '@nestjs/common';
import { hostname } from 'node:os';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { ConfigRuntime } from '../../config/config-runtime.js';
import type { ConfigStore } from '../../config/config-store.js';
import { PLUGIN_SCHEMAS } from '../../config/declarative.schema.js';
import { ADMIN_READ_SCOPES } from '../admin-scopes.js';
import { ADMIN_OPTIONS, CONFIG_STORE } from '../admin.tokens.js';
import { AdminService } from '../admin.service.js';
import type { AdminOptions } from '../admin.module.js';
import { stableUuid } from '../admin-entities.js';
import { AdminStatusService } from '../admin-status.js';

/** Kong's plugin priorities (handler.lua `PRIORITY`), shown by `GET /` as Kong does. */
const PRIORITY: Record<string, number> = { 'openid-connect': 1050, cors: 2000, 'rate-limiting': 910, 'proxy-cache': 100 };
const SECRET_SETTING = /secret|password|token|key/i;

/** Kong's `GET /` (node information) and `GET /status`. */
@Controller()
@RequireScopes(...ADMIN_READ_SCOPES)
export class InfoController {
  private readonly nodeId = stableUuid(`node:${hostname()}:${process.pid}`);

  constructor(
    private readonly admin: AdminService,
    private readonly runtime: ConfigRuntime,
    @Inject(CONFIG_STORE) private readonly store: ConfigStore,
    @Inject(ADMIN_OPTIONS) private readonly options: AdminOptions,
    private readonly reachability: AdminStatusService,
  ) {}

  @Get()
  info() {
    const available = Object.fromEntries(Object.keys(PLUGIN_SCHEMAS).map((name) => [name, { version: this.options.version, priority: PRIORITY[name] ?? 0 }]));
    return {
      tagline: 'Welcome to gatehouse',
      version: this.options.version,
      edition: 'community',
      hostname: hostname(),
      node_id: this.nodeId,
      lua_version: null,
      plugins: { available_on_server: available, enabled_in_cluster: this.admin.enabledPlugins },
      configuration: redact({ ...this.options.configuration, database: this.store.kind, declarative_config: this.store.kind === 'off' ? this.store.source : null }),
      timers: null,
      pids: { master: process.pid, workers: [process.pid] },
    };
  }

  /** Kong's shape (`database.reachable`, `memory`, `server`, `configuration_hash`) with the store's and upstreams' details. */
  @Get('status')
  async status() {
    const [database, upstreams] = await Promise.all([this.reachability.database(), this.reachability.upstreams()]);
    const mem = process.memoryUsage();
    const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;
    const current = this.runtime.current;
    return {
      database,
      upstreams,
      configuration_hash: current.hash,
      configuration: { version: current.version, applied_at: current.appliedAt.toISOString(), source: current.source },
      memory: { workers_lua_vms: [{ pid: process.pid, http_allocated_gc: mib(mem.heapUsed) }], rss: mib(mem.rss) },
      server: { total_requests: null },
    };
  }
}

/** Settings as `GET /` shows them: anything secret-looking replaced by Kong's `******`. */
export function redact(configuration: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(configuration)) out[k] = SECRET_SETTING.test(k) && v !== null && v !== undefined && v !== '' ? '******' : v;
  return out;
}
