import { z } from 'zod';
import { declarativeConfigSchema, PLUGIN_SCHEMAS, type PluginName } from '../config/declarative.schema.js';
import type { EntityKind } from './admin-entities.js';

/**
 * Request bodies as Kong's Admin API reads them. A form body
 * (`application/x-www-form-urlencoded`, what `http -f` and `curl -d` send)
 * names nested fields with dots (`config.issuer=…`) or brackets
 * (`config[issuer]`, `paths[]=/a`, `paths[1]=/a`), and every value is a string;
 * Kong then reads each value as the type its schema declares: `paths=/oidc` is a
 * one-element array, `config.consumer_optional=true` a boolean.
 *
 * The types come from the declarative schema itself (its zod definitions are
 * walked), so there is no second description of the entities to drift.
 */

/** `a.b[]=x&a.b[]=y&c=1` → `{a:{b:['x','y']},c:'1'}`; repeated keys become arrays. */
export function parseFormBody(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const segments: (string | number | null)[] = [];
    for (const m of key.matchAll(/([^.[\]]+)|\[(\d*)\]|\[([^\]]+)\]/g)) {
      if (m[1] !== undefined) segments.push(m[1]);
      else if (m[2] !== undefined) segments.push(m[2] === '' ? null : Number(m[2]));
      else segments.push(m[3]);
    }
    if (!segments.length || typeof segments[0] !== 'string') continue;
    // `paths[]=…` appends; a trailing `[]` only says "this is a list".
    const append = segments[segments.length - 1] === null;
    if (append) segments.pop();
    if (segments.includes(null)) continue;
    let node: Record<string | number, unknown> = out;
    for (let i = 0; i < segments.length - 1; i++) {
      const seg = segments[i] as string | number;
      if (node[seg] === undefined || typeof node[seg] !== 'object') node[seg] = typeof segments[i + 1] === 'number' ? [] : {};
      node = node[seg] as Record<string | number, unknown>;
    }
    const leaf = segments[segments.length - 1] as string | number;
    const existing = node[leaf];
    if (existing === undefined) node[leaf] = append ? [value] : value;
    else node[leaf] = [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return out;
}

type Kind = 'array' | 'boolean' | 'number' | 'string' | 'object' | 'unknown';
type AnySchema = z.core.$ZodType;

function defOf(s: AnySchema): Record<string, any> {
  return (s as { _zod: { def: Record<string, any> } })._zod.def;
}

/** The schema behind defaults, optionals, pipes (transforms) and lazies. */
function unwrap(s: AnySchema): AnySchema {
  for (let i = 0; i < 20; i++) {
    const d = defOf(s);
    if (d.type === 'default' || d.type === 'optional' || d.type === 'nullable' || d.type === 'prefault' || d.type === 'readonly' || d.type === 'catch') s = d.innerType;
    else if (d.type === 'pipe') s = d.in.type === 'transform' ? d.out : d.in;
    else if (d.type === 'lazy') s = d.getter();
    else break;
  }
  return s;
}

function kindOf(s: AnySchema): Kind {
  const d = defOf(unwrap(s));
  switch (d.type) {
    case 'array':
    case 'set':
      return 'array';
    case 'boolean':
      return 'boolean';
    case 'number':
    case 'int':
    case 'bigint':
      return 'number';
    case 'string':
    case 'enum':
    case 'literal':
    case 'template_literal':
      return 'string';
    case 'object':
    case 'record':
      return 'object';
    case 'union': {
      const kinds = new Set((d.options as AnySchema[]).map(kindOf));
      // `string | {name}` (a reference) reads as a string; otherwise only an unambiguous union is coerced.
      if (kinds.has('string')) return 'string';
      return kinds.size === 1 ? [...kinds][0] : 'unknown';
    }
    default:
      return 'unknown';
  }
}

/** The schema of one field of an object schema, or undefined. */
function field(s: AnySchema, key: string): AnySchema | undefined {
  const inner = unwrap(s);
  const d = defOf(inner);
  if (d.type === 'object') return (d.shape as Record<string, AnySchema>)[key];
  if (d.type === 'record') return d.valueType;
  if (d.type === 'union') {
    for (const o of d.options as AnySchema[]) {
      const f = field(o, key);
      if (f) return f;
    }
  }
  return undefined;
}

function element(s: AnySchema): AnySchema | undefined {
  const d = defOf(unwrap(s));
  return d.type === 'array' ? d.element : undefined;
}

const ROOT = declarativeConfigSchema as unknown as AnySchema;
/** The entity schemas, found inside the declarative schema. */
const ENTITY_SCHEMAS: Record<EntityKind, AnySchema> = {
  services: element(field(ROOT, 'services')!)!,
  routes: element(field(ROOT, 'routes')!)!,
  plugins: element(field(ROOT, 'plugins')!)!,
};

/** One string value read as `schema` says: Kong's form coercion. Anything unclear stays a string for the schema to judge. */
function coerce(value: unknown, schema: AnySchema | undefined): unknown {
  if (!schema) return value;
  const kind = kindOf(schema);
  if (kind === 'array') {
    const items = Array.isArray(value) ? value : value === '' ? [] : [value];
    const el = element(schema);
    return items.map((v) => coerce(v, el));
  }
  if (Array.isArray(value)) return value;
  if (kind === 'object' && value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = coerce(v, field(schema, k));
    return out;
  }
  if (typeof value !== 'string') return value;
  if (kind === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  if (kind === 'number' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  return value;
}

/**
 * A form body's values read as the entity's schema declares. A plugin's
 * `config` is read with the schema of the plugin named in the body (or, for an
 * update, the plugin being updated).
 */
export function coerceEntityBody(kind: EntityKind, body: Record<string, unknown>, pluginName?: string): Record<string, unknown> {
  const schema = ENTITY_SCHEMAS[kind];
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (kind === 'plugins' && k === 'config') {
      const name = typeof body.name === 'string' ? body.name : pluginName;
      const configSchema = name ? (PLUGIN_SCHEMAS[name as PluginName] as unknown as AnySchema | undefined) : undefined;
      out[k] = configSchema ? coerce(v, configSchema) : v;
    } else if (k === 'service' || k === 'route') {
      out[k] = v;
    } else {
      out[k] = coerce(v, field(schema, k));
    }
  }
  return out;
}
