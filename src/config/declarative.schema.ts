import { z } from 'zod';
import { openIdConnectConfigSchema } from './openid-connect.schema.js';

/**
 * Kong's declarative format (`_format_version` 3.0): services with nested routes
 * and plugins, top-level routes that name their service, and plugins on a
 * service, a route or globally. This file is the one place that says what a
 * valid file is; `config.loader.ts` only reads the file and formats problems.
 */

/** Every plugin Gatehouse runs, with the schema of its `config`. */
export const PLUGIN_SCHEMAS = {
  'openid-connect': openIdConnectConfigSchema,
} as const;
export type PluginName = keyof typeof PLUGIN_SCHEMAS;
const PLUGIN_NAMES = Object.keys(PLUGIN_SCHEMAS);

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_RETRIES = 5;
const MAX_TIMEOUT_MS = 2 ** 31 - 2;

const name = z.string().regex(/^[A-Za-z0-9._~-]+$/, 'must contain only letters, digits and . _ ~ -');
const tags = z.array(z.string()).optional();
const ref = z.union([name, z.strictObject({ name })]).transform((r) => (typeof r === 'string' ? r : r.name));

const path = z
  .string()
  .refine((p) => p.startsWith('/') || p.startsWith('~'), 'must start with "/" or "~"')
  .refine((p) => !p.startsWith('~') || isValidRegex(p.slice(1)), 'is not a valid regular expression')
  .refine((p) => p.startsWith('~') || !/[?#\s\0]/.test(p), 'must not contain "?", "#", whitespace or NUL');

/** `example.com`, `*.example.com`, `example.*`, optionally with a port. */
const host = z
  .string()
  .regex(
    /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(\.\*)?(:\d{1,5})?$/,
    'must be a host name, optionally with one leading "*." or trailing ".*" wildcard',
  )
  .refine((h) => !(h.startsWith('*.') && h.includes('.*', 1)), 'may have only one wildcard');

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

/** Validates `config` against the named plugin's schema, reporting at `config.<key>`. */
function checkPluginConfig<P extends { name: string; config: Record<string, unknown> }>(p: P, ctx: z.RefinementCtx) {
  const schema = PLUGIN_SCHEMAS[p.name as PluginName];
  if (!schema) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message: `unknown plugin "${p.name}"${hint(p.name, PLUGIN_NAMES)} (available: ${PLUGIN_NAMES.join(', ')})`,
    });
    return z.NEVER;
  }
  const parsed = schema.safeParse(p.config);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ ...issue, path: ['config', ...issue.path] } as z.core.$ZodRawIssue);
    }
    return z.NEVER;
  }
  return { ...p, name: p.name as PluginName, config: parsed.data };
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
  protocols: z.array(z.enum(['http', 'https'])).default(['http', 'https']),
  strip_path: z.boolean().default(true),
  preserve_host: z.boolean().default(false),
  regex_priority: z.number().int().default(0),
  // Only Kong's default join (v0) is implemented; v1 is refused rather than silently treated as v0.
  path_handling: z.literal('v0', { error: 'only "v0" (Kong\'s default) is supported' }).default('v0'),
  https_redirect_status_code: z.number().int().optional(),
  request_buffering: z.boolean().optional(),
  response_buffering: z.boolean().optional(),
  plugins: z.array(nestedPlugin).default([]),
  tags,
};

function routeNeedsMatcher(r: { paths?: string[]; methods?: string[]; hosts?: string[] }) {
  return Boolean(r.paths?.length || r.methods?.length || r.hosts?.length);
}
const routeMatcherMessage = 'a route needs at least one of paths, methods or hosts';

const nestedRoute = z.strictObject(routeFields);
const topLevelRoute = z.strictObject({ ...routeFields, service: ref.optional() });

const timeout = z.number().int().min(1).max(MAX_TIMEOUT_MS);
const serviceSchema = z
  .strictObject({
    name: name.optional(),
    url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    protocol: z.enum(['http', 'https']).optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    path: z.string().startsWith('/', 'must start with "/"').optional(),
    connect_timeout: timeout.default(DEFAULT_TIMEOUT_MS),
    read_timeout: timeout.default(DEFAULT_TIMEOUT_MS),
    write_timeout: timeout.default(DEFAULT_TIMEOUT_MS),
    retries: z.number().int().min(0).max(32767).default(DEFAULT_RETRIES),
    enabled: z.boolean().default(true),
    routes: z.array(nestedRoute).default([]),
    plugins: z.array(nestedPlugin).default([]),
    tags,
  })
  .superRefine((s, ctx) => {
    if (s.url && (s.protocol || s.host || s.port || s.path)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'set either url or protocol/host/port/path, not both' });
    }
    if (!s.url && !s.host) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required (or host, with protocol/port/path)' });
    }
  });

export const declarativeConfigSchema = z
  .strictObject({
    _format_version: z.enum(['1.1', '2.1', '3.0'], { error: 'must be "3.0" (or Kong\'s older "1.1"/"2.1")' }),
    _transform: z.boolean().optional(),
    _comment: z.string().optional(),
    _info: z.unknown().optional(),
    services: z.array(serviceSchema).default([]),
    routes: z.array(topLevelRoute).default([]),
    plugins: z.array(globalPlugin).default([]),
  })
  .superRefine((c, ctx) => {
    // Cross-references: one place, after every entry parsed, so each problem carries its path.
    const serviceNames = new Map<string, number>();
    c.services.forEach((s, i) => {
      if (!s.name) return;
      if (serviceNames.has(s.name)) {
        ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate service name "${s.name}" (also services[${serviceNames.get(s.name)}])` });
      } else serviceNames.set(s.name, i);
    });
    const routeNames = new Map<string, string>();
    const claimRouteName = (n: string | undefined, at: (string | number)[]) => {
      if (!n) return;
      const where = at.map((p, k) => (typeof p === 'number' ? `[${p}]` : k ? `.${p}` : p)).join('');
      if (routeNames.has(n)) {
        ctx.addIssue({ code: 'custom', path: [...at, 'name'], message: `duplicate route name "${n}" (also ${routeNames.get(n)})` });
      } else routeNames.set(n, where);
    };
    c.services.forEach((s, i) =>
      s.routes.forEach((r, j) => {
        claimRouteName(r.name, ['services', i, 'routes', j]);
        if (!routeNeedsMatcher(r)) ctx.addIssue({ code: 'custom', path: ['services', i, 'routes', j], message: routeMatcherMessage });
      }),
    );
    const known = [...serviceNames.keys()];
    c.routes.forEach((r, j) => {
      claimRouteName(r.name, ['routes', j]);
      if (!routeNeedsMatcher(r)) ctx.addIssue({ code: 'custom', path: ['routes', j], message: routeMatcherMessage });
      if (!r.service) {
        ctx.addIssue({ code: 'custom', path: ['routes', j, 'service'], message: `is required for a top-level route (one of: ${known.join(', ') || 'no named services'})` });
      } else if (!serviceNames.has(r.service)) {
        ctx.addIssue({ code: 'custom', path: ['routes', j, 'service'], message: `no service named "${r.service}"${hint(r.service, known)}` });
      }
    });
    c.plugins.forEach((p, k) => {
      if (p.service && !serviceNames.has(p.service)) {
        ctx.addIssue({ code: 'custom', path: ['plugins', k, 'service'], message: `no service named "${p.service}"${hint(p.service, known)}` });
      }
      if (p.route && !routeNames.has(p.route)) {
        ctx.addIssue({ code: 'custom', path: ['plugins', k, 'route'], message: `no route named "${p.route}"${hint(p.route, [...routeNames.keys()])}` });
      }
    });
  });

export type DeclarativeConfig = z.output<typeof declarativeConfigSchema>;
export type ServiceEntry = DeclarativeConfig['services'][number];
export type RouteEntry = DeclarativeConfig['routes'][number];
export type PluginEntry = DeclarativeConfig['plugins'][number];

function isValidRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
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
