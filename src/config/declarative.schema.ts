import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PLUGIN_SCHEMAS, type PluginName } from '../plugins/plugin-schemas.js';
import { anyValue, inertShape, kongDefault, kongEntity, unset } from './kong-fields.js';

/**
 * Kong's declarative format (`_format_version` 3.0): services with nested routes
 * and plugins, top-level routes that name their service, and plugins on a
 * service, a route or globally. This file is the one place that says what a
 * valid file is; `config.loader.ts` only reads the file and formats problems.
 */

export { PLUGIN_SCHEMAS, type PluginName };
const PLUGIN_NAMES = Object.keys(PLUGIN_SCHEMAS);

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_RETRIES = 5;
const MAX_TIMEOUT_MS = 2 ** 31 - 2;

const name = z.string().regex(/^[A-Za-z0-9._~-]+$/, 'must contain only letters, digits and . _ ~ -');
const tags = z.array(z.string()).optional();
/** Kong's ids: any 8-4-4-4-12 hex UUID (decK and Kong write v4, older exports other versions). */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const id = z.string().regex(UUID, 'must be a UUID');
/** `created_at`/`updated_at` as `kong config db_export` writes them (seconds since the epoch); kept, never used. */
const timestamp = z.number().refine((n) => Number.isInteger(n) && n >= 0, 'must be a whole number of seconds');
/**
 * Kong's entity metadata: `id` is kept (the Admin API uses it as the entity's
 * id), the timestamps are kept as written.
 */
const entityMeta = { id: id.optional(), created_at: timestamp.optional(), updated_at: timestamp.optional(), tags };
/**
 * A reference to a service or route: its name or id, or `{ name }` / `{ id }` as
 * decK and `db_export` write it. Output: the name or id as a string; ids are
 * turned into names once the whole file is known (resolveReferences).
 */
const ref = z
  .union([z.string().min(1), z.strictObject({ name }), z.strictObject({ id })])
  .transform((r) => (typeof r === 'string' ? r : 'name' in r ? r.name : r.id));

const path = z.string().superRefine((p, ctx) => {
  if (p.startsWith('~')) {
    const problem = regexProblem(p.slice(1));
    if (problem) ctx.addIssue({ code: 'custom', message: `is not a valid regular expression (${problem})` });
  } else if (!p.startsWith('/')) {
    ctx.addIssue({ code: 'custom', message: 'must start with "/" or "~"' });
  } else if (/[?#\s\0]/.test(p)) {
    ctx.addIssue({ code: 'custom', message: 'must not contain "?", "#", whitespace or NUL' });
  }
});

/** `example.com`, `*.example.com`, `example.*`, optionally with a port. */
const host = z
  .string()
  .regex(
    /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(\.\*)?(:\d{1,5})?$/,
    'must be a host name, optionally with one leading "*." or trailing ".*" wildcard',
  )
  .refine((h) => !(h.startsWith('*.') && h.includes('.*', 1)), 'may have only one wildcard')
  .refine((h) => !/:\d+$/.test(h) || Number(h.slice(h.lastIndexOf(':') + 1)) <= 65535, 'has a port above 65535');

/**
 * A whole number in [min, max]. Not `z.number().int()`: zod marks a failed `.int()`
 * as fatal, which would stop the file-wide checks and hide the file's other problems.
 */
function integer(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return z
    .number()
    .refine((n) => Number.isInteger(n), 'must be a whole number')
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);
}

const method = z
  .string()
  .regex(/^[A-Z]+$/, 'must be an upper-case HTTP method such as GET');

/** Kong's request protocols; stream ones (tcp, tls, udp, tls_passthrough) are named so the error can say why. */
const HTTP_PROTOCOLS = ['http', 'https', 'grpc', 'grpcs', 'ws', 'wss'] as const;
const STREAM_PROTOCOLS = ['tcp', 'tls', 'udp', 'tls_passthrough'] as const;
const protocol = z.enum([...HTTP_PROTOCOLS, ...STREAM_PROTOCOLS]).superRefine((p, ctx) => {
  if ((STREAM_PROTOCOLS as readonly string[]).includes(p)) {
    ctx.addIssue({ code: 'custom', message: `"${p}" is a stream (L4) protocol: Gatehouse proxies HTTP only` });
  }
});
export type RouteProtocol = (typeof HTTP_PROTOCOLS)[number];

/** Plugin entity fields Kong has and Gatehouse does not implement. */
const PLUGIN_INERT = {
  consumer: unset('Gatehouse has no consumers: the IdP decides who may call'),
  consumer_group: unset('Gatehouse has no consumer groups'),
  ordering: unset("Kong Enterprise's dynamic plugin ordering: Gatehouse runs plugins in Kong's static priority order"),
  partials: unset("Kong Enterprise's partials: write the shared redis settings into each plugin's config"),
};

const pluginBase = {
  ...entityMeta,
  name: z.string(),
  config: z.record(z.string(), z.unknown()).default({}),
  enabled: z.boolean().default(true),
  /**
   * Which request protocols run the plugin. Gatehouse serves HTTP only and
   * cannot tell a TLS-terminated request from a plain one, so a plugin runs on
   * every request of its route; a list with neither http nor https would never
   * run in Kong for HTTP traffic and is refused rather than run everywhere.
   */
  protocols: z
    .array(protocol)
    .refine((ps) => ps.includes('http') || ps.includes('https'), 'must include "http" or "https" (Gatehouse serves HTTP only)')
    .optional(),
  instance_name: z.string().optional(),
  ...inertShape(PLUGIN_INERT),
};

/** A plugin entry whose `config` passed its plugin's schema: a union discriminated by `name`. */
type CheckedPlugin<P> = { [N in PluginName]: Omit<P, 'name' | 'config'> & { name: N; config: z.output<(typeof PLUGIN_SCHEMAS)[N]> } }[PluginName];

/**
 * Validates `config` against the named plugin's schema, reporting at `config.<key>`.
 * On failure the plugin is returned as it was (the issues already fail the parse),
 * so the file-wide reference checks still see its `service` and `route`.
 */
function checkPluginConfig<P extends { name: string; config: Record<string, unknown> }>(p: P, ctx: z.RefinementCtx): CheckedPlugin<P> {
  const schema = PLUGIN_SCHEMAS[p.name as PluginName];
  if (!schema) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message: `unknown plugin "${p.name}"${hint(p.name, PLUGIN_NAMES)} (available: ${PLUGIN_NAMES.join(', ')})`,
    });
    return p as unknown as CheckedPlugin<P>;
  }
  const parsed = schema.safeParse(p.config, { error: unknownKeysErrorMap });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ ...issue, path: ['config', ...issue.path] } as z.core.$ZodRawIssue);
    }
    return p as unknown as CheckedPlugin<P>;
  }
  return { ...p, name: p.name, config: parsed.data } as unknown as CheckedPlugin<P>;
}

const nestedPlugin = kongEntity('plugin', z.strictObject(pluginBase), PLUGIN_INERT).transform(checkPluginConfig);
const globalPlugin = kongEntity('plugin', z.strictObject({ ...pluginBase, service: ref.optional(), route: ref.optional() }), PLUGIN_INERT).transform(
  checkPluginConfig,
);

/** Route fields Kong has (and dumps) that Gatehouse does not implement. */
const ROUTE_INERT = {
  // Only Kong's default join (v0) is implemented; v1 is refused rather than silently treated as v0.
  path_handling: kongDefault(['v0'], 'only the v0 join of service path and request path is implemented'),
  request_buffering: kongDefault([true], 'request bodies are always streamed to the upstream'),
  response_buffering: kongDefault([true], 'response bodies are always streamed to the client'),
  headers: unset('routes cannot match on request headers yet'),
  snis: unset('routes cannot match on SNI; certificates are chosen by the names in GATEHOUSE_SSL_CERT'),
  sources: unset('stream routes are not supported'),
  destinations: unset('stream routes are not supported'),
  expression: unset("Kong's expressions router is not supported: use paths, methods and hosts"),
  priority: kongDefault([0], "Kong's expressions router is not supported"),
};

const routeFields = {
  ...entityMeta,
  name: name.optional(),
  paths: z.array(path).optional(),
  methods: z.array(method).optional(),
  hosts: z.array(host).optional(),
  /**
   * http/https are served; ws/wss are accepted for WebSocket routes; grpc/grpcs
   * beside http or https load with a warning (gRPC requests are not proxied);
   * a route for gRPC only is refused until gRPC is supported.
   */
  protocols: z
    .array(protocol)
    .min(1)
    .superRefine((ps, ctx) => {
      if (ps.some((p) => (STREAM_PROTOCOLS as readonly string[]).includes(p))) return;
      if (!ps.some((p) => p === 'http' || p === 'https' || p === 'ws' || p === 'wss')) {
        ctx.addIssue({ code: 'custom', message: 'a route for gRPC only is not supported: Gatehouse does not proxy gRPC yet (list http or https)' });
      }
    })
    .transform((ps) => ps as RouteProtocol[])
    .default(['http', 'https']),
  strip_path: z.boolean().default(true),
  preserve_host: z.boolean().default(false),
  regex_priority: integer().default(0),
  // Kong's choices for an https-only route reached over http: 426 (the default) or a redirect to https://.
  https_redirect_status_code: z
    .number()
    .refine((n) => [426, 301, 302, 307, 308].includes(n), 'must be one of 426, 301, 302, 307, 308')
    .default(426),
  plugins: z.array(nestedPlugin).default([]),
  ...inertShape(ROUTE_INERT),
};

function routeNeedsMatcher(r: { paths?: unknown; methods?: unknown; hosts?: unknown }) {
  // Present and not `[]`: a value of the wrong type has its own problem already.
  const nonEmpty = (v: unknown) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
  return nonEmpty(r.paths) || nonEmpty(r.methods) || nonEmpty(r.hosts);
}
const routeMatcherMessage = 'a route needs at least one of paths, methods or hosts';

const nestedRoute = kongEntity('route', z.strictObject(routeFields), ROUTE_INERT);
const topLevelRoute = kongEntity('route', z.strictObject({ ...routeFields, service: ref.optional() }), ROUTE_INERT);

/** Service fields Kong has that Gatehouse does not implement (upstream TLS settings). */
const SERVICE_INERT = {
  client_certificate: unset('client certificates to upstreams are not supported'),
  tls_verify_depth: unset('the verification depth is OpenSSL\'s default'),
  tls_sans: unset('per-service TLS settings are not supported'),
};

const timeout = integer(1, MAX_TIMEOUT_MS);
const serviceSchema = kongEntity('service', z
  .strictObject({
    ...entityMeta,
    name: name.optional(),
    url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    protocol: z.enum(['http', 'https']).optional(),
    host: z.string().min(1).optional(),
    port: integer(1, 65535).optional(),
    path: z.string().startsWith('/', 'must start with "/"').optional(),
    connect_timeout: timeout.default(DEFAULT_TIMEOUT_MS),
    read_timeout: timeout.default(DEFAULT_TIMEOUT_MS),
    write_timeout: timeout.default(DEFAULT_TIMEOUT_MS),
    retries: integer(0, 32767).default(DEFAULT_RETRIES),
    // Kong's default (nginx proxy_ssl_verify off, `null` here) does not verify; Gatehouse does unless told not to.
    tls_verify: z.boolean().default(true),
    // Kong lists CA certificate entity ids here; Gatehouse takes PEM file paths (read at load).
    ca_certificates: z.array(z.string().min(1).superRefine(caFileProblem)).optional(),
    enabled: z.boolean().default(true),
    routes: z.array(nestedRoute).default([]),
    plugins: z.array(nestedPlugin).default([]),
    ...inertShape(SERVICE_INERT),
  })
  .superRefine((s, ctx) => {
    // Runs even when a field failed (`when` below), so a missing url is reported alongside.
    if (s.url && (s.protocol || s.host || s.port || s.path)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'set either url or protocol/host/port/path, not both' });
    }
    if (!s.url && !s.host) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required (or host, with protocol/port/path)' });
    }
  }, { when: () => true }), SERVICE_INERT);

/** A CA bundle path must name a readable PEM file with at least one certificate, checked at load. */
function caFileProblem(file: string, ctx: z.RefinementCtx): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `cannot read "${file}" (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    return;
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) ctx.addIssue({ code: 'custom', message: `"${file}" holds no PEM certificate` });
}

const FORMAT_VERSIONS = ['1.1', '2.1', '3.0'] as const;

/**
 * Other entity collections of Kong's format: accepted empty (decK and db_export
 * write some of them as `[]`), refused with the reason when they hold entries.
 */
const FILE_INERT = {
  consumers: unset('Gatehouse has no consumers: the IdP decides who may call'),
  consumer_groups: unset('Gatehouse has no consumer groups'),
  upstreams: unset('load-balanced upstreams are not supported: point the service at a host name'),
  targets: unset('load-balanced upstreams are not supported'),
  certificates: unset('server certificates come from files: GATEHOUSE_SSL_CERT and GATEHOUSE_SSL_CERT_KEY'),
  ca_certificates: unset("CA entities are not supported: a service's ca_certificates takes PEM file paths"),
  snis: unset('SNI names come from the GATEHOUSE_SSL_CERT certificates'),
  vaults: unset('only the built-in env vault is supported: {vault://env/NAME}'),
  keys: unset('Kong keys are not supported'),
  key_sets: unset('Kong key sets are not supported'),
  partials: unset("Kong Enterprise's partials are not supported"),
  /** decK's Konnect metadata (control plane name): it selects where decK syncs to, nothing here. */
  _konnect: anyValue(),
};

const fileSchema = z
  .strictObject({
    _format_version: z.enum(FORMAT_VERSIONS, {
      error: (issue) =>
        issue.input === undefined
          ? 'is required: add _format_version: "3.0" at the top of the file'
          : typeof issue.input === 'number'
            ? `must be a quoted string: _format_version: "3.0" (YAML read ${issue.input} as a number)`
            : 'must be "3.0" (or Kong\'s older "1.1"/"2.1")',
    }),
    // Kong's `_transform: false` says credentials are already hashed; Gatehouse holds no credentials.
    _transform: z.boolean().optional(),
    /** decK's `_info` (select_tags, defaults) and Kong Enterprise's `_workspace`: accepted as written. */
    _info: z.unknown().optional(),
    _workspace: z.string().optional(),
    services: z.array(serviceSchema).default([]),
    routes: z.array(topLevelRoute).default([]),
    plugins: z.array(globalPlugin).default([]),
    ...inertShape(FILE_INERT),
  })
  // `when`: the cross-references are checked even when some entries failed, so one
  // run reports every problem in the file; the check only reads what did parse.
  .superRefine(checkReferences, { when: () => true });

export const declarativeConfigSchema = kongEntity('file', fileSchema, FILE_INERT).transform(resolveReferences);

/**
 * Names and references across the whole file: duplicate service and route names,
 * top-level routes and plugins naming a service or route that does not exist,
 * routes that cannot match anything, and two instances of one plugin on the same
 * scope (Kong's unique constraint). `c` may be partly invalid, so every field is
 * looked at defensively.
 */
function checkReferences(c: Record<string, unknown>, ctx: z.RefinementCtx): void {
  const problem = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const services = entries(c.services);
  const topRoutes = entries(c.routes);
  const topPlugins = entries(c.plugins);

  // Kong's ids are unique per entity type; names of services and of routes too.
  const ids = { service: new Map<string, string>(), route: new Map<string, string>(), plugin: new Map<string, string>() };
  const claimId = (kind: keyof typeof ids, e: Record<string, unknown>, at: (string | number)[]) => {
    if (typeof e.id !== 'string') return;
    const key = e.id.toLowerCase();
    const first = ids[kind].get(key);
    if (first) problem([...at, 'id'], `duplicate ${kind} id "${e.id}" (also ${first})`);
    else ids[kind].set(key, formatPath(at));
  };

  const serviceNames = new Map<string, number>();
  /** Service id → its name (undefined: the service has no name). */
  const serviceById = new Map<string, string | undefined>();
  for (const [i, s] of services) {
    claimId('service', s, ['services', i]);
    if (typeof s.id === 'string' && !serviceById.has(s.id.toLowerCase())) serviceById.set(s.id.toLowerCase(), typeof s.name === 'string' ? s.name : undefined);
    if (typeof s.name !== 'string') continue;
    if (serviceNames.has(s.name)) {
      problem(['services', i, 'name'], `duplicate service name "${s.name}" (also services[${serviceNames.get(s.name)}])`);
    } else serviceNames.set(s.name, i);
  }
  const knownServices = [...serviceNames.keys()];

  const routeNames = new Map<string, string>();
  const routeById = new Map<string, string | undefined>();
  const checkRoute = (r: Record<string, unknown>, at: (string | number)[]) => {
    claimId('route', r, at);
    if (typeof r.id === 'string' && !routeById.has(r.id.toLowerCase())) routeById.set(r.id.toLowerCase(), typeof r.name === 'string' ? r.name : undefined);
    if (typeof r.name === 'string') {
      if (routeNames.has(r.name)) problem([...at, 'name'], `duplicate route name "${r.name}" (also ${routeNames.get(r.name)})`);
      else routeNames.set(r.name, formatPath(at));
    }
    if (!routeNeedsMatcher(r)) problem(at, routeMatcherMessage);
  };
  for (const [i, s] of services) for (const [j, r] of entries(s.routes)) checkRoute(r, ['services', i, 'routes', j]);
  for (const [j, r] of topRoutes) checkRoute(r, ['routes', j]);
  const knownRoutes = [...routeNames.keys()];

  /**
   * A reference by name, or by id (a --with-id dump, db_export). Gatehouse
   * scopes plugins and logs by name, so an entity referenced by id must have one.
   */
  const resolves = (kind: 'service' | 'route', value: string, at: (string | number)[]): string | undefined => {
    const byId = kind === 'service' ? serviceById : routeById;
    const names = kind === 'service' ? serviceNames : routeNames;
    const known = kind === 'service' ? knownServices : knownRoutes;
    if (UUID.test(value) && byId.has(value.toLowerCase())) {
      const named = byId.get(value.toLowerCase());
      if (named === undefined) problem(at, `the ${kind} with id "${value}" has no name: Gatehouse identifies services and routes by name, add one`);
      return named;
    }
    if (names.has(value)) return value;
    problem(at, `no ${kind} named "${value}"${hint(value, known)}`);
    return undefined;
  };

  for (const [j, r] of topRoutes) {
    if (r.service === undefined) {
      problem(['routes', j, 'service'], `is required for a top-level route (one of: ${knownServices.join(', ') || 'no named services'})`);
    } else if (typeof r.service === 'string') {
      resolves('service', r.service, ['routes', j, 'service']);
    }
  }

  // One instance of a plugin per scope: key = plugin name + the entities it is bound to.
  const scopes = new Map<string, string>();
  const claimScope = (p: Record<string, unknown>, at: (string | number)[], scope: string, where: string) => {
    if (typeof p.name !== 'string') return;
    const key = `${p.name}\0${scope}`;
    const first = scopes.get(key);
    if (first) problem([...at, 'name'], `plugin "${p.name}" is already configured on ${where} (${first}); keep one instance`);
    else scopes.set(key, formatPath(at));
  };
  for (const [i, s] of services) {
    const service = typeof s.name === 'string' ? s.name : `#${i}`;
    for (const [k, p] of entries(s.plugins)) {
      claimId('plugin', p, ['services', i, 'plugins', k]);
      claimScope(p, ['services', i, 'plugins', k], `service=${service}|route=`, 'this service');
    }
    for (const [j, r] of entries(s.routes)) {
      const route = typeof r.name === 'string' ? r.name : `#services[${i}].routes[${j}]`;
      for (const [k, p] of entries(r.plugins)) {
        claimId('plugin', p, ['services', i, 'routes', j, 'plugins', k]);
        claimScope(p, ['services', i, 'routes', j, 'plugins', k], `service=|route=${route}`, 'this route');
      }
    }
  }
  for (const [j, r] of topRoutes) {
    const route = typeof r.name === 'string' ? r.name : `#routes[${j}]`;
    for (const [k, p] of entries(r.plugins)) {
      claimId('plugin', p, ['routes', j, 'plugins', k]);
      claimScope(p, ['routes', j, 'plugins', k], `service=|route=${route}`, 'this route');
    }
  }
  for (const [k, p] of topPlugins) {
    claimId('plugin', p, ['plugins', k]);
    let ok = true;
    let service = '';
    let route = '';
    if (typeof p.service === 'string') {
      const named = resolves('service', p.service, ['plugins', k, 'service']);
      if (named === undefined) ok = false;
      else service = named;
    }
    if (typeof p.route === 'string') {
      const named = resolves('route', p.route, ['plugins', k, 'route']);
      if (named === undefined) ok = false;
      else route = named;
    }
    const where = service && route ? `service "${service}" and route "${route}"` : service ? `service "${service}"` : route ? `route "${route}"` : 'the gateway (global)';
    if (ok) claimScope(p, ['plugins', k], `service=${service}|route=${route}`, where);
  }
}

/**
 * Runs once the file is valid: references given by id become the referenced
 * entity's name (checkReferences made sure there is one), so everything after
 * the loader sees one spelling.
 */
function resolveReferences<C extends { services: { id?: string; name?: string; routes: { id?: string; name?: string }[] }[]; routes: { id?: string; name?: string; service?: string }[]; plugins: { service?: string; route?: string }[] }>(c: C): C {
  const serviceById = new Map<string, string>();
  const routeById = new Map<string, string>();
  for (const s of c.services) {
    if (s.id && s.name) serviceById.set(s.id.toLowerCase(), s.name);
    for (const r of s.routes) if (r.id && r.name) routeById.set(r.id.toLowerCase(), r.name);
  }
  for (const r of c.routes) if (r.id && r.name) routeById.set(r.id.toLowerCase(), r.name);
  const byId = (map: Map<string, string>, value: string | undefined) => (value !== undefined && UUID.test(value) ? (map.get(value.toLowerCase()) ?? value) : value);
  for (const r of c.routes) if (r.service !== undefined) r.service = byId(serviceById, r.service);
  for (const p of c.plugins) {
    if (p.service !== undefined) p.service = byId(serviceById, p.service);
    if (p.route !== undefined) p.route = byId(routeById, p.route);
  }
  return c;
}

/** `[index, entry]` for every object in an array; anything else has already been reported by its own schema. */
function entries(value: unknown): [number, Record<string, unknown>][] {
  if (!Array.isArray(value)) return [];
  const out: [number, Record<string, unknown>][] = [];
  value.forEach((v, i) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push([i, v as Record<string, unknown>]);
  });
  return out;
}

/** `services[0].routes[1].paths[0]`: how every problem path is spelled. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/**
 * zod reports unknown keys without the keys that were allowed; this error map
 * smuggles them in the message so the loader can say "did you mean". Used for
 * the whole file and for each plugin's `config`.
 */
export const UNKNOWN_KEYS_MARKER = '\u0000known-keys:';
export function unknownKeysErrorMap(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'unrecognized_keys') return undefined;
  const shape = (issue.inst as { _zod?: { def?: { shape?: object } } } | undefined)?._zod?.def?.shape ?? {};
  return UNKNOWN_KEYS_MARKER + Object.keys(shape).join(',');
}

export type DeclarativeConfig = z.output<typeof declarativeConfigSchema>;
export type ServiceEntry = DeclarativeConfig['services'][number];
export type RouteEntry = DeclarativeConfig['routes'][number];
export type PluginEntry = DeclarativeConfig['plugins'][number];

/** Why a `~` path's regex does not compile, e.g. `Unterminated group`; undefined when it does. */
function regexProblem(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    // V8: "Invalid regular expression: /(/: Unterminated group"; keep the reason only.
    const message = (err as Error).message;
    return message.slice(message.lastIndexOf(': ') + 2) || message;
  }
}

/** ` (did you mean "routes"?)` when a known word is within a small edit distance. */
export function hint(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= limit ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
