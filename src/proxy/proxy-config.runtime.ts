import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { IssuerRegistry } from '../auth/issuer.registry.js';
import type { OpenIdConnectInstance } from '../auth/openid-connect.instance.js';
import { OpenIdConnectService } from '../auth/openid-connect.service.js';
import { LOGGER } from '../common/logger.js';
import { ConfigError, validateDeclarativeDocument, type ConfigProblem } from '../config/config.loader.js';
import { ConfigRuntime, type AppliedConfig } from '../config/config-runtime.js';
import { configWarnings, pluginInstances } from '../config/config-warnings.js';
import type { DeclarativeConfig, PluginEntry } from '../config/declarative.schema.js';
import { GatewayConfig } from '../config/gateway-config.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { PluginChainCompiler } from '../plugins/plugin-chain.compiler.js';
import { RouteTable } from './route-table.js';
import { UpstreamClient } from './upstream.client.js';

type Origin = { source: string; actor: string };

/** The last document refused, for readiness details and the admin API. */
export interface ConfigRejection {
  at: Date;
  source: string;
  actor: string;
  problems: ConfigProblem[];
}

/**
 * The proxy listener's live configuration. A new document is validated and
 * compiled completely — schema, route table, every route's plugin chain — off
 * the request path; then `routeTable` is replaced by one assignment. A request
 * reads `routeTable` once (RouteMatcher) and keeps the route it matched, so
 * requests in flight finish on the config they started with.
 *
 * What survives a swap is what did not change: plugin instances whose config
 * and place are the same keep their state (an openid-connect policy's
 * verified-token cache and session store, rate-limiting counters, a
 * proxy-cache store) because their config object is carried over (see
 * `carryOver`); issuers keep discovery documents and keys; upstream pools of
 * unchanged origins keep their connections.
 */
@Injectable()
export class ProxyConfigRuntime extends ConfigRuntime implements OnModuleInit {
  /** What RouteMatcher matches against; replaced whole, never mutated. */
  routeTable!: RouteTable;
  lastRejection?: ConfigRejection;
  private applied!: AppliedConfig;
  /** Plugin configs of the applied table by instance key, so unchanged instances keep their state. */
  private instances = new Map<string, unknown>();
  private readonly appliedListeners: ((c: AppliedConfig) => void)[] = [];
  private readonly rejectedListeners: ((err: Error, origin: Origin) => void)[] = [];
  /** Applies run one at a time, in the order they were asked for. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: GatewayConfig,
    private readonly plugins: PluginChainCompiler,
    private readonly oidc: OpenIdConnectService,
    private readonly issuers: IssuerRegistry,
    private readonly upstream: UpstreamClient,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    super();
  }

  onModuleInit(): void {
    // Nest calls the hook once per token the instance is provided under (ConfigRuntime, ROUTE_TABLE_SOURCE).
    if (this.applied) return;
    // The start-up document was validated before Nest started (main.ts): a failure here is a bug, not bad input.
    const table = this.compile(this.config.declarative, this.config.source);
    this.swap(table, this.config.document, this.config.declarative, this.config.source);
  }

  get current(): AppliedConfig {
    return this.applied;
  }

  async validate(document: unknown, source: string): Promise<DeclarativeConfig> {
    return validateDeclarativeDocument(document, source);
  }

  apply(document: unknown, origin: Origin): Promise<AppliedConfig> {
    const run = this.queue.then(() => this.applyNow(document, origin));
    this.queue = run.catch(() => undefined);
    return run;
  }

  onApplied(listener: (config: AppliedConfig) => void): void {
    this.appliedListeners.push(listener);
  }

  onRejected(listener: (err: Error, origin: Origin) => void): void {
    this.rejectedListeners.push(listener);
  }

  /** A document refused before it reached `apply` (a file that does not parse): logged and shown like any rejection. */
  reject(err: ConfigError, origin: Origin): void {
    this.lastRejection = { at: new Date(), source: origin.source, actor: origin.actor, problems: err.problems };
    this.logger.error({ config: origin.source, actor: origin.actor, pid: process.pid, problems: err.problems.map(formatProblem) }, 'config rejected, the running config stays');
    for (const l of this.rejectedListeners) l(err, origin);
  }

  private async applyNow(document: unknown, origin: Origin): Promise<AppliedConfig> {
    const started = performance.now();
    let table: RouteTable;
    let declarative: DeclarativeConfig;
    try {
      declarative = validateDeclarativeDocument(document, origin.source);
      table = this.compile(declarative, origin.source);
    } catch (err) {
      if (err instanceof ConfigError) this.reject(err, origin);
      throw err;
    }
    const applied = this.swap(table, document, declarative, origin.source);
    for (const w of configWarnings(declarative)) this.logger.warn({ config: origin.source, path: w.path }, w.message);
    this.logger.info(
      { config: origin.source, actor: origin.actor, pid: process.pid, hash: applied.hash, version: applied.version, routes: table.routes.length, ms: +(performance.now() - started).toFixed(1) },
      'config applied',
    );
    return applied;
  }

  /** Everything that can fail, done before anything is swapped. */
  private compile(declarative: DeclarativeConfig, source: string): RouteTable {
    this.carryOver(declarative);
    this.issuers.prepare(openIdConnectConfigs(declarative));
    const table = RouteTable.compile(declarative);
    const problems: ConfigProblem[] = [];
    for (const route of table.routes) {
      try {
        this.plugins.attach(route);
      } catch (err) {
        problems.push({ path: `route ${route.name}`, message: err instanceof Error ? err.message : String(err) });
      }
    }
    if (problems.length) throw new ConfigError(source, problems);
    return table;
  }

  private swap(table: RouteTable, document: unknown, declarative: DeclarativeConfig, source: string): AppliedConfig {
    this.upstream.retain(table.services);
    this.routeTable = table;
    const live = new Set<OpenIdConnectInstance>();
    for (const r of table.routes) if (r.auth) live.add(r.auth);
    this.oidc.retain(live);
    this.instances = instanceMap(declarative);
    this.applied = {
      document,
      declarative,
      hash: configurationHash(document),
      version: (this.applied?.version ?? 0) + 1,
      appliedAt: new Date(),
      source,
    };
    this.lastRejection = undefined;
    for (const l of this.appliedListeners) {
      try {
        l(this.applied);
      } catch (err) {
        this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'config listener failed');
      }
    }
    return this.applied;
  }

  /**
   * A plugin instance that is the same in the new document as in the applied
   * one — same plugin, same place (or same `id`), same config — gets the
   * applied config object back, so the state its plugin keeps per config object
   * (policies, counters, cache stores) carries over instead of starting cold.
   */
  private carryOver(declarative: DeclarativeConfig): void {
    for (const [key, plugin] of instanceEntries(declarative)) {
      const previous = this.instances.get(key);
      if (previous !== undefined) (plugin as { config: unknown }).config = previous;
    }
  }
}

function instanceEntries(declarative: DeclarativeConfig): [string, PluginEntry][] {
  return pluginInstances(declarative).map(({ path, plugin }) => {
    const id = (plugin as { id?: unknown }).id;
    return [`${plugin.name}\n${typeof id === 'string' ? id : path}\n${stableJson(plugin.config)}`, plugin];
  });
}

function instanceMap(declarative: DeclarativeConfig): Map<string, unknown> {
  return new Map(instanceEntries(declarative).map(([key, plugin]) => [key, plugin.config]));
}

function openIdConnectConfigs(declarative: DeclarativeConfig): OpenIdConnectConfig[] {
  return pluginInstances(declarative).flatMap(({ plugin }) => (plugin.name === 'openid-connect' ? [plugin.config as OpenIdConnectConfig] : []));
}

/** JSON with object keys sorted, so equal configs give equal strings whatever their key order. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** Kong's `configuration_hash`: 32 hex digits, equal on every instance running the same document. */
export function configurationHash(document: unknown): string {
  return createHash('md5').update(stableJson(document)).digest('hex');
}

function formatProblem(p: ConfigProblem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}
