import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PLUGIN_SCHEMAS, type PluginName } from '../plugins/plugin-schemas.js';

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
const ref = z.union([name, z.strictObject({ name })]).transform((r) => (typeof r === 'string' ? r : r.name));

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

const pluginBase = {
  name: z.string(),
  config: z.record(z.string(), z.unknown()).default({}),
  enabled: z.boolean().default(true),
  protocols: z.array(z.enum(['http', 'https'])).optional(),
  instance_name: z.string().optional(),
  tags,
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

const nestedPlugin = z.strictObject(pluginBase).transform(checkPluginConfig);
const globalPlugin = z
  .strictObject({ ...pluginBase, service: ref.optional(), route: ref.optional() })
  .transform(checkPluginConfig);

const routeFields = {
  name: name.optional(),
  paths: z.array(path).optional(),
  methods: z.array(method).optional(),
  hosts: z.array(host).optional(),
  protocols: z
    .array(z.enum(['http', 'https', 'ws', 'wss', 'grpc', 'grpcs']))
    .refine((p) => !p.includes('grpc') && !p.includes('grpcs'), 'grpc and grpcs are not supported (upstreams are reached over HTTP/1.1; see docs/protocols.md)')
    .refine((p) => p.length > 0, 'must list at least one protocol')
    .default(['http', 'https']),
  strip_path: z.boolean().default(true),
  preserve_host: z.boolean().default(false),
  regex_priority: integer().default(0),
  // Only Kong's default join (v0) is implemented; v1 is refused rather than silently treated as v0.
  path_handling: z.literal('v0', { error: 'only "v0" (Kong\'s default) is supported' }).default('v0'),
  // Kong's choices: 426 (the default) or a redirect to https://.
  https_redirect_status_code: z
    .number()
    .refine((n) => [426, 301, 302, 307, 308].includes(n), 'must be one of 426, 301, 302, 307, 308')
    .default(426),
  request_buffering: z.boolean().optional(),
  response_buffering: z.boolean().optional(),
  plugins: z.array(nestedPlugin).default([]),
  tags,
};

function routeNeedsMatcher(r: { paths?: unknown; methods?: unknown; hosts?: unknown }) {
  // Present and not `[]`: a value of the wrong type has its own problem already.
  const nonEmpty = (v: unknown) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
  return nonEmpty(r.paths) || nonEmpty(r.methods) || nonEmpty(r.hosts);
}
const routeMatcherMessage = 'a route needs at least one of paths, methods or hosts';

const nestedRoute = z.strictObject(routeFields);
const topLevelRoute = z.strictObject({ ...routeFields, service: ref.optional() });

const timeout = integer(1, MAX_TIMEOUT_MS);
const serviceSchema = z
  .strictObject({
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
    // Kong's default (nginx proxy_ssl_verify off) does not verify; Gatehouse does unless told not to.
    tls_verify: z.boolean().default(true),
    // Kong lists CA certificate entity ids here; Gatehouse takes PEM file paths (read at load).
    ca_certificates: z.array(z.string().min(1).superRefine(caFileProblem)).optional(),
    enabled: z.boolean().default(true),
    routes: z.array(nestedRoute).default([]),
    plugins: z.array(nestedPlugin).default([]),
    tags,
  })
  .superRefine((s, ctx) => {
    // Runs even when a field failed (`when` below), so a missing url is reported alongside.
    if (s.url && (s.protocol || s.host || s.port || s.path)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'set either url or protocol/host/port/path, not both' });
    }
    if (!s.url && !s.host) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required (or host, with protocol/port/path)' });
    }
  }, { when: () => true });

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

export const declarativeConfigSchema = z
  .strictObject({
    _format_version: z.enum(FORMAT_VERSIONS, {
      error: (issue) =>
        issue.input === undefined
          ? 'is required: add _format_version: "3.0" at the top of the file'
          : typeof issue.input === 'number'
            ? `must be a quoted string: _format_version: "3.0" (YAML read ${issue.input} as a number)`
            : 'must be "3.0" (or Kong\'s older "1.1"/"2.1")',
    }),
    _transform: z.boolean().optional(),
    _comment: z.string().optional(),
    _info: z.unknown().optional(),
    services: z.array(serviceSchema).default([]),
    routes: z.array(topLevelRoute).default([]),
    plugins: z.array(globalPlugin).default([]),
  })
  // `when`: the cross-references are checked even when some entries failed, so one
  // run reports every problem in the file; the check only reads what did parse.
  .superRefine(checkReferences, { when: () => true });

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

  const serviceNames = new Map<string, number>();
  for (const [i, s] of services) {
    if (typeof s.name !== 'string') continue;
    if (serviceNames.has(s.name)) {
      problem(['services', i, 'name'], `duplicate service name "${s.name}" (also services[${serviceNames.get(s.name)}])`);
    } else serviceNames.set(s.name, i);
  }
  const knownServices = [...serviceNames.keys()];

  const routeNames = new Map<string, string>();
  const checkRoute = (r: Record<string, unknown>, at: (string | number)[]) => {
    if (typeof r.name === 'string') {
      if (routeNames.has(r.name)) problem([...at, 'name'], `duplicate route name "${r.name}" (also ${routeNames.get(r.name)})`);
      else routeNames.set(r.name, formatPath(at));
    }
    if (!routeNeedsMatcher(r)) problem(at, routeMatcherMessage);
  };
  for (const [i, s] of services) for (const [j, r] of entries(s.routes)) checkRoute(r, ['services', i, 'routes', j]);
  for (const [j, r] of topRoutes) {
    checkRoute(r, ['routes', j]);
    if (r.service === undefined) {
      problem(['routes', j, 'service'], `is required for a top-level route (one of: ${knownServices.join(', ') || 'no named services'})`);
    } else if (typeof r.service === 'string' && !serviceNames.has(r.service)) {
      problem(['routes', j, 'service'], `no service named "${r.service}"${hint(r.service, knownServices)}`);
    }
  }
  const knownRoutes = [...routeNames.keys()];

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
    for (const [k, p] of entries(s.plugins)) claimScope(p, ['services', i, 'plugins', k], `service=${service}|route=`, 'this service');
    for (const [j, r] of entries(s.routes)) {
      const route = typeof r.name === 'string' ? r.name : `#services[${i}].routes[${j}]`;
      for (const [k, p] of entries(r.plugins)) claimScope(p, ['services', i, 'routes', j, 'plugins', k], `service=|route=${route}`, 'this route');
    }
  }
  for (const [j, r] of topRoutes) {
    const route = typeof r.name === 'string' ? r.name : `#routes[${j}]`;
    for (const [k, p] of entries(r.plugins)) claimScope(p, ['routes', j, 'plugins', k], `service=|route=${route}`, 'this route');
  }
  for (const [k, p] of topPlugins) {
    let ok = true;
    if (typeof p.service === 'string' && !serviceNames.has(p.service)) {
      ok = false;
      problem(['plugins', k, 'service'], `no service named "${p.service}"${hint(p.service, knownServices)}`);
    }
    if (typeof p.route === 'string' && !routeNames.has(p.route)) {
      ok = false;
      problem(['plugins', k, 'route'], `no route named "${p.route}"${hint(p.route, knownRoutes)}`);
    }
    const service = typeof p.service === 'string' ? p.service : '';
    const route = typeof p.route === 'string' ? p.route : '';
    const where = service && route ? `service "${service}" and route "${route}"` : service ? `service "${service}"` : route ? `route "${route}"` : 'the gateway (global)';
    if (ok) claimScope(p, ['plugins', k], `service=${service}|route=${route}`, where);
  }
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
