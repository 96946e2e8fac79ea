import { HttpService } from '@nestjs/axios';
import { Inject, Injectable } from '@nestjs/common';
import { HttpHealthIndicator } from '@nestjs/terminus';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { dirname } from 'node:path';
import { ConfigRuntime } from '../config/config-runtime.js';
import type { ConfigStore } from '../config/config-store.js';
import type { ServiceEntry } from '../config/declarative.schema.js';
import { EmbeddedConfigStore } from '../config/stores/embedded-config.store.js';
import { PostgresConfigStore } from '../config/stores/postgres-config.store.js';
import { CONFIG_STORE } from './admin.tokens.js';

/** One probe of an upstream origin may take this long: `GET /status` answers within it whatever the upstreams do. */
export const UPSTREAM_CHECK_TIMEOUT_MS = 2_000;
/** A probe's answer is reused this long, so a monitor polling `GET /status` does not turn into load on every upstream. */
export const UPSTREAM_CHECK_CACHE_MS = 5_000;
/** At most this many probes at once (a table of thousands of services must not open thousands of sockets). */
const UPSTREAM_CHECK_CONCURRENCY = 16;

export interface UpstreamReachability {
  origin: string;
  reachable: boolean;
  /** The status of the answer (any answer means the origin is reachable: a 404 for `HEAD /` is still a live server). */
  status_code?: number;
  /** Why it is not reachable (connection refused, timeout, TLS). */
  message?: string;
  services: string[];
}

export interface DatabaseReachability {
  reachable: boolean;
  kind: ConfigStore['kind'];
  source: string;
  [detail: string]: unknown;
}

/** A service's origin (`scheme://host:port`), as the proxy connects to it. */
export function serviceOrigin(service: ServiceEntry): string | undefined {
  let protocol: string;
  let host: string;
  let port: number | undefined;
  if (service.url) {
    const u = new URL(service.url);
    protocol = u.protocol.slice(0, -1);
    host = u.hostname;
    port = u.port ? Number(u.port) : undefined;
  } else if (service.host) {
    protocol = service.protocol ?? 'http';
    host = service.host.includes(':') && !service.host.startsWith('[') ? `[${service.host}]` : service.host;
    port = service.port;
  } else return undefined;
  return `${protocol}://${host}:${port ?? (protocol === 'https' ? 443 : 80)}`;
}

/**
 * What the Admin API's `GET /status` adds to Kong's: whether the config store
 * can be reached (Kong's `database.reachable`; embedded: its file writable;
 * PostgreSQL: the store's own connection state) and whether each enabled
 * service's origin answers. Origins are probed with terminus's
 * HttpHealthIndicator (`responseCheck`, an HTTP HEAD of `/`, any answer is
 * reachable) through the HttpModule's axios client: bounded time, no redirects,
 * no proxy from the environment, results cached for a few seconds.
 */
@Injectable()
export class AdminStatusService {
  private readonly cache = new Map<string, { at: number; result: Promise<Omit<UpstreamReachability, 'services'>> }>();
  private readonly insecureAgent = new HttpsAgent({ rejectUnauthorized: false });

  constructor(
    private readonly runtime: ConfigRuntime,
    @Inject(CONFIG_STORE) private readonly store: ConfigStore,
    private readonly http: HttpHealthIndicator,
    private readonly client: HttpService,
  ) {}

  async database(): Promise<DatabaseReachability> {
    const store = this.store;
    const base = { kind: store.kind, source: store.source };
    if (store instanceof PostgresConfigStore) {
      const s = store.status();
      return { ...base, reachable: s.connected, version: s.version, ...(s.connected ? {} : { error: s.error ?? 'not connected', since: s.since?.toISOString() ?? null }) };
    }
    // The embedded store must be able to replace its file (write a temporary file beside it, rename it over).
    const [path, mode, what] = store instanceof EmbeddedConfigStore ? [dirname(store.file), constants.W_OK, 'writable'] : [store.source, constants.R_OK, 'readable'];
    try {
      await access(path, mode);
      return { ...base, reachable: true };
    } catch (err) {
      return { ...base, reachable: false, error: `${path} is not ${what} (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
  }

  async upstreams(now = Date.now()): Promise<{ reachable: boolean; origins: UpstreamReachability[] }> {
    const byOrigin = new Map<string, { services: string[]; tlsVerify: boolean }>();
    for (const service of this.runtime.current.declarative.services) {
      if (service.enabled === false) continue;
      const origin = serviceOrigin(service);
      if (!origin) continue;
      const entry = byOrigin.get(origin) ?? { services: [], tlsVerify: true };
      entry.services.push(service.name ?? service.id ?? origin);
      // One unverified service on an origin is enough to probe it as the proxy would for that service.
      if (service.tls_verify === false) entry.tlsVerify = false;
      byOrigin.set(origin, entry);
    }
    for (const [origin, c] of this.cache) if (now - c.at > UPSTREAM_CHECK_CACHE_MS || !byOrigin.has(origin)) this.cache.delete(origin);
    const entries = [...byOrigin];
    const results: UpstreamReachability[] = new Array(entries.length);
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const i = next++;
        const [origin, { services, tlsVerify }] = entries[i];
        let cached = this.cache.get(origin);
        if (!cached) this.cache.set(origin, (cached = { at: now, result: this.probe(origin, tlsVerify) }));
        results[i] = { ...(await cached.result), services };
      }
    };
    await Promise.all(Array.from({ length: Math.min(UPSTREAM_CHECK_CONCURRENCY, entries.length) }, worker));
    return { reachable: results.every((r) => r.reachable), origins: results };
  }

  private async probe(origin: string, tlsVerify: boolean): Promise<Omit<UpstreamReachability, 'services'>> {
    let statusCode: number | undefined;
    try {
      const result = await this.http.responseCheck(
        'upstream',
        `${origin}/`,
        (res) => {
          statusCode = res.status;
          return true;
        },
        {
          httpClient: this.client,
          method: 'HEAD',
          timeout: UPSTREAM_CHECK_TIMEOUT_MS,
          maxRedirects: 0,
          validateStatus: () => true,
          proxy: false,
          headers: { 'user-agent': 'gatehouse-admin-status' },
          ...(origin.startsWith('https:') && !tlsVerify ? { httpsAgent: this.insecureAgent } : {}),
        },
      );
      const outcome = result.upstream as { status: string; message?: string };
      return outcome.status === 'up' ? { origin, reachable: true, status_code: statusCode } : { origin, reachable: false, message: outcome.message ?? 'no answer' };
    } catch (err) {
      return { origin, reachable: false, message: err instanceof Error ? err.message : String(err) };
    }
  }
}
