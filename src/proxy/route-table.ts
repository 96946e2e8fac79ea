import type { z } from 'zod';
import type { DeclarativeConfig, PLUGIN_SCHEMAS, PluginEntry, PluginName } from '../config/declarative.schema.js';
import type { CompiledPlugin } from '../plugins/plugin.js';
import type { OpenIdConnectInstance } from '../auth/openid-connect.instance.js';
import { unsafeSegment } from './path-normalizer.js';
import { PathMatcher, regexLiteralPrefixes, RouteEntry, RouteIndex, stripPort, wildcardToRegex } from './route-index.js';

/**
 * The route table, compiled once from the declarative config. Matching follows
 * Kong's traditional_compatible router:
 *
 * 1. routes that constrain more categories (hosts, methods, paths) are tried first;
 *    among those, routes whose hosts are all plain (no wildcard) before wildcard ones;
 * 2. a prefix path equal to the whole request path wins outright;
 * 3. then regex paths (`~...`, anchored at the start) by `regex_priority`, highest first;
 * 4. then prefix paths, longest first (Kong prefixes are plain string prefixes:
 *    `/oidc` also matches `/oidcx`, as in Kong);
 * 5. ties go to the route defined first.
 *
 * `match` answers through a RouteIndex (route-index.ts) built from the sorted
 * entries; `matchLinear` is the plain scan of them that states these rules
 * directly, kept as the reference the index is tested against.
 */

export interface UpstreamService {
  name: string;
  /** `http://host:port`, the key of the connection pool. */
  origin: string;
  protocol: 'http' | 'https';
  hostname: string;
  port: number;
  /** Host header sent upstream unless the route preserves the client's. */
  hostHeader: string;
  /** The service's path, `/` when unset. */
  path: string;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  retries: number;
  /** `https` services: verify the upstream's certificate (Kong's `tls_verify`), against `caCertificates` or Node's CA store. */
  tlsVerify: boolean;
  /** PEM file paths of the CAs to trust instead of the default store (Kong's `ca_certificates`, as files). */
  caCertificates?: string[];
}

/**
 * What a route's `protocols` allow, compiled once. Most routes keep Kong's
 * default `[http, https]`, which `anyHttp` lets the proxy path check with one
 * property read.
 */
export interface RouteProtocols {
  http: boolean;
  https: boolean;
  ws: boolean;
  wss: boolean;
  /** Both http and https: nothing to check for a plain request. */
  anyHttp: boolean;
  /** Kong's https_redirect_status_code: 426, or a redirect status to https://. */
  httpsRedirectStatus: number;
}

/** Plugin configs in effect on a route, the most specific instance of each plugin (Kong's precedence). */
export type EffectivePlugins = { [N in PluginName]?: z.output<(typeof PLUGIN_SCHEMAS)[N]> };

/** A route's plugins compiled for each phase, highest priority first (see PluginChainCompiler). */
export interface PluginPhases {
  access: readonly CompiledPlugin[];
  response: readonly CompiledPlugin[];
  log: readonly CompiledPlugin[];
}

export interface CompiledRoute {
  /** The route's name, or its position in the file when unnamed. */
  name: string;
  service: UpstreamService;
  stripPath: boolean;
  preserveHost: boolean;
  protocols: RouteProtocols;
  plugins: EffectivePlugins;
  /** The compiled plugin chain, attached once at load (see ProxyModule); empty until then. */
  phases: PluginPhases;
  /** The openid-connect plugin's compiled policy, attached with the chain. */
  auth?: OpenIdConnectInstance;
}

const NO_PLUGINS: PluginPhases = { access: [], response: [], log: [] };

export interface RouteMatch {
  route: CompiledRoute;
  /**
   * The path to send upstream (service path joined with what remains after
   * stripping), built from the normalised request path. Undefined when what
   * remains would become a dot segment upstream (see upstreamPathV0): the
   * request must be refused, not forwarded.
   */
  upstreamPath: string | undefined;
}

type Entry = RouteEntry;

export class RouteTable {
  private readonly entries: Entry[];
  private readonly index: RouteIndex;

  private constructor(entries: Entry[]) {
    this.entries = entries;
    this.index = new RouteIndex(entries);
  }

  static compile(config: DeclarativeConfig): RouteTable {
    const services = new Map<string, UpstreamService>();
    const servicePlugins = new Map<string, PluginEntry[]>();
    const entries: Entry[] = [];

    config.services.forEach((s, i) => {
      const name = s.name ?? `services[${i}]`;
      services.set(name, toUpstream(name, s));
      servicePlugins.set(name, s.plugins as PluginEntry[]);
    });

    const globals = config.plugins.filter((p) => !p.service && !p.route);
    // Top-level plugins grouped once, in file order, by the route or (route-less) service they name: looking
    // them up per route kept compile at routes × plugins, which a file exported with every plugin at the top
    // level (Kong's shape) makes quadratic.
    const byRoute = groupBy(config.plugins.filter((p) => p.route !== undefined), (p) => p.route!);
    const byService = groupBy(config.plugins.filter((p) => p.service !== undefined && !p.route), (p) => p.service!);
    const addRoute = (r: DeclarativeConfig['routes'][number], serviceName: string, fallbackName: string, enabled: boolean) => {
      if (!enabled) return; // Kong leaves the routes of a disabled service out of the router.
      const routeName = r.name ?? fallbackName;
      const scoped = (r.name !== undefined && byRoute.get(r.name)) || [];
      // Kong's precedence: route+service > route > service > global; a disabled instance does not shadow.
      const candidates: PluginEntry[] = [
        ...scoped.filter((p) => p.service === serviceName),
        ...scoped.filter((p) => !p.service),
        ...(r.plugins as PluginEntry[]),
        ...(byService.get(serviceName) ?? []),
        ...(servicePlugins.get(serviceName) ?? []),
        ...globals,
      ];
      const plugins: EffectivePlugins = {};
      for (const p of candidates) {
        if (!p.enabled || (p.name as PluginName) in plugins) continue;
        (plugins as Record<string, unknown>)[p.name] = p.config;
      }
      const route: CompiledRoute = {
        name: routeName,
        service: services.get(serviceName)!,
        stripPath: r.strip_path,
        preserveHost: r.preserve_host,
        protocols: compileProtocols(r.protocols, r.https_redirect_status_code),
        plugins,
        phases: NO_PLUGINS,
      };
      const hosts = r.hosts ?? [];
      const plainHosts = hosts.filter((h) => !h.includes('*')).map((h) => h.toLowerCase());
      const wildcardHostNames = hosts.filter((h) => h.includes('*')).map((h) => h.toLowerCase());
      const wildcardHosts = wildcardHostNames.map(wildcardToRegex);
      const methods = r.methods?.length ? new Set(r.methods) : undefined;
      const plainHostSet = hosts.length ? new Set(plainHosts) : undefined;
      const weight = (hosts.length ? 1 : 0) + (r.methods?.length ? 1 : 0) + (r.paths?.length ? 1 : 0);
      const paths = r.paths?.length ? r.paths : [undefined];
      for (const p of paths) {
        const matcher =
          p === undefined
            ? new PathMatcher('any', '')
            : p.startsWith('~')
              ? new PathMatcher('regex', '', new RegExp(`^(?:${p.slice(1)})`), regexLiteralPrefixes(p.slice(1)))
              : new PathMatcher('exactOrPrefix', p);
        entries.push(
          new RouteEntry(
            route,
            matcher,
            methods,
            plainHostSet,
            wildcardHosts.length ? wildcardHosts : undefined,
            wildcardHosts.length ? wildcardHostNames : undefined,
            weight,
            hosts.length && !wildcardHosts.length ? 1 : 0,
            r.regex_priority,
            entries.length,
          ),
        );
      }
    };

    config.services.forEach((s, i) =>
      s.routes.forEach((r, j) => addRoute(r, s.name ?? `services[${i}]`, `services[${i}].routes[${j}]`, s.enabled)),
    );
    const servicesByName = new Map<string | undefined, DeclarativeConfig['services'][number]>();
    for (const s of config.services) if (!servicesByName.has(s.name)) servicesByName.set(s.name, s);
    config.routes.forEach((r, j) => {
      const serviceName = r.service!;
      addRoute(r, serviceName, `routes[${j}]`, servicesByName.get(serviceName)?.enabled ?? true);
    });

    entries.sort(
      (a, b) =>
        b.weight - a.weight ||
        b.plainHostsOnly - a.plainHostsOnly ||
        kindRank(b.matcher) - kindRank(a.matcher) ||
        (a.matcher.kind === 'regex' && b.matcher.kind === 'regex' ? b.regexPriority - a.regexPriority : 0) ||
        b.matcher.prefix.length - a.matcher.prefix.length ||
        a.order - b.order,
    );
    return new RouteTable(entries);
  }

  /** Names of every upstream service, for pools and logs. */
  get services(): UpstreamService[] {
    return [...new Set(this.entries.map((e) => e.route.service))];
  }

  get routes(): CompiledRoute[] {
    return [...new Set(this.entries.map((e) => e.route))];
  }

  /**
   * @param method request method
   * @param host Host header value (may carry a port), lower-cased or not
   * @param path the normalised request path, without the query
   */
  match(method: string, host: string | undefined, path: string): RouteMatch | undefined {
    const e = this.index.find(method, host, path);
    return e && this.result(e, this.index.matchedLength, path);
  }

  /**
   * The same answer as `match`, by visiting the sorted entries in order: the
   * order rules above, stated as a scan. The reference the index is checked
   * against (test/unit/route-index.test.ts); not used on the request path.
   */
  matchLinear(method: string, host: string | undefined, path: string): RouteMatch | undefined {
    const hostWithPort = host?.toLowerCase();
    const hostOnly = hostWithPort && stripPort(hostWithPort);
    let found: Entry | undefined;
    let matchedLength = 0;
    for (const e of this.entries) {
      if (found && (e.weight < found.weight || e.plainHostsOnly < found.plainHostsOnly)) break;
      if (e.methods && !e.methods.has(method)) continue;
      if ((e.plainHosts || e.wildcardHosts) && !hostMatches(e, hostWithPort, hostOnly)) continue;
      const m = e.matcher;
      if (m.kind === 'exactOrPrefix') {
        if (!path.startsWith(m.prefix)) continue;
        if (found) {
          // A regex matched earlier in this group; only an exact path beats it.
          if (path.length === m.prefix.length) return this.result(e, m.prefix.length, path);
          continue;
        }
        return this.result(e, m.prefix.length, path);
      }
      if (found) continue;
      if (m.kind === 'any') return this.result(e, 0, path);
      const r = m.regex!.exec(path);
      if (!r) continue;
      found = e;
      matchedLength = r[0].length;
    }
    return found && this.result(found, matchedLength, path);
  }

  private result(e: Entry, matchedLength: number, path: string): RouteMatch {
    const route = e.route;
    return { route, upstreamPath: upstreamPathV0(route.service.path, path, route.stripPath, matchedLength) };
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

function kindRank(m: PathMatcher): number {
  return m.kind === 'regex' ? 2 : m.kind === 'exactOrPrefix' ? 1 : 0;
}

function hostMatches(e: Entry, withPort: string | undefined, hostOnly: string | undefined): boolean {
  if (!withPort || !hostOnly) return false;
  if (e.plainHosts && (e.plainHosts.has(hostOnly) || e.plainHosts.has(withPort))) return true;
  if (e.wildcardHosts) for (const re of e.wildcardHosts) if (re.test(hostOnly) || re.test(withPort)) return true;
  return false;
}

/**
 * The path sent upstream under Kong's `path_handling: v0` (Kong's default), which
 * joins the service path, and the request path or what remains of it after
 * `strip_path`, as URL segments. Kong's documented table, service path `/s`:
 *
 * | route   | request    | strip_path | upstream     |
 * |---------|------------|------------|--------------|
 * | `/tv0`  | `/tv0req`  | true       | `/s/req`     |
 * | `/tv0`  | `/tv0`     | true       | `/s`         |
 * | `/tv0/` | `/tv0/`    | true       | `/s/`        |
 * | `/fv0`  | `/fv0req`  | false      | `/s/fv0req`  |
 * | `/fv0`  | `/fv0`     | false      | `/s/fv0`     |
 *
 * A service path ending in `/` shares that slash with the rest (`/s/` + `/req`
 * = `/s/req`), and is dropped when nothing remains and the request did not end
 * in `/` either (`/s/` for `/tv0` is `/s`). (`v1` would give `/sreq`; the schema
 * refuses it.)
 *
 * A route path that ends inside a segment leaves the rest of that segment as a
 * segment of its own (`/tv0req` gives `req`). The request path has no dot
 * segments, but this rest can be one: `/tv0..` would give `/s/..`, which the
 * upstream resolves to `/`, out of the service path (RFC 3986 §5.2.4); `..;`
 * or `;x` would be resolved the same way by Tomcat, Jetty and Spring. Such a
 * join gives `undefined` rather than a path the upstream reads as another
 * resource than the one the route was chosen for.
 *
 * @param requestPath the normalised request path (normalizePath)
 * @param matchedLength how much of `requestPath` the route's path matched
 */
export function upstreamPathV0(servicePath: string, requestPath: string, stripPath: boolean, matchedLength: number): string | undefined {
  const base = servicePath || '/';
  if (!stripPath) {
    if (base.endsWith('/')) return base + requestPath.slice(1);
    return requestPath === '/' ? base : base + requestPath;
  }
  const rest = requestPath.slice(matchedLength);
  // Only a rest that does not start with "/" makes a new segment; the check stays off the common path.
  if (rest !== '' && rest.charCodeAt(0) !== 47 /* / */) {
    const slash = rest.indexOf('/');
    if (unsafeSegment(slash === -1 ? rest : rest.slice(0, slash))) return undefined;
  }
  if (base.endsWith('/')) {
    if (rest === '') return base === '/' || requestPath.endsWith('/') ? base : base.slice(0, -1);
    return rest.startsWith('/') ? base.slice(0, -1) + rest : base + rest;
  }
  if (rest === '') return requestPath.length > 1 && requestPath.endsWith('/') ? `${base}/` : base;
  return rest.startsWith('/') ? base + rest : `${base}/${rest}`;
}

export function compileProtocols(list: readonly string[], redirect: number): RouteProtocols {
  const has = (p: string) => list.includes(p);
  return { http: has('http'), https: has('https'), ws: has('ws'), wss: has('wss'), anyHttp: has('http') && has('https'), httpsRedirectStatus: redirect };
}

function toUpstream(name: string, s: DeclarativeConfig['services'][number]): UpstreamService {
  let protocol: 'http' | 'https';
  let hostname: string;
  let port: number;
  let path: string;
  if (s.url) {
    const u = new URL(s.url);
    protocol = u.protocol === 'https:' ? 'https' : 'http';
    hostname = u.hostname;
    port = u.port ? Number(u.port) : protocol === 'https' ? 443 : 80;
    path = u.pathname || '/';
  } else {
    protocol = s.protocol ?? 'http';
    hostname = s.host!;
    port = s.port ?? (protocol === 'https' ? 443 : 80);
    path = s.path ?? '/';
  }
  const defaultPort = protocol === 'https' ? 443 : 80;
  const bracketed = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  return {
    name,
    hostHeader: port === defaultPort ? bracketed : `${bracketed}:${port}`,
    origin: `${protocol}://${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}:${port}`,
    protocol,
    hostname,
    port,
    path,
    connectTimeoutMs: s.connect_timeout,
    readTimeoutMs: s.read_timeout,
    writeTimeoutMs: s.write_timeout,
    retries: s.retries,
    tlsVerify: s.tls_verify,
    caCertificates: s.ca_certificates,
  };
}
