import { z } from 'zod';

/**
 * How fields Kong has and Gatehouse does not implement are read, so files that
 * Kong and decK write (every unset field as `null`, every default spelled out)
 * load unchanged without anything being silently ignored:
 *
 * - `null` means "unset": the field takes its default, as in Kong.
 * - An *inert* field (one Gatehouse does not implement) is accepted when its
 *   value changes nothing — `null`, Kong's default, or a value that only
 *   matters together with a setting Gatehouse refuses — and refused, with the
 *   reason, otherwise. Accepted ones are dropped from the validated entity and
 *   named in one start-time warning (`kongDefaultedFields`).
 *
 * The table of every field is docs/kong-compatibility.md.
 */

/** Where a validated entity records the inert fields it accepted (non-enumerable: invisible to JSON and deep equality). */
export const KONG_DEFAULTED: unique symbol = Symbol('gatehouse.kongDefaulted');

export interface KongDefaulted {
  /** `route`, `openid-connect`, `openid-connect.redis`, … */
  entity: string;
  fields: string[];
}

/** A field Gatehouse does not implement: which values change nothing, and why others are refused. */
export interface InertField {
  accepts(value: unknown): boolean;
  /** The whole message for a refused value. */
  refusal: string;
}

/** Entity metadata Kong's declarative format allows everywhere; accepted and dropped without a warning. */
const META_FIELDS = ['_comment', '_ignore'] as const;

/** Accepted only as `null` (or absent), and `[]`/`{}` where Kong's value is a list or map left empty. */
export function unset(why: string): InertField {
  return { accepts: (v) => isEmpty(v), refusal: `is not supported by Gatehouse (${why}); only null is accepted` };
}

/** Accepted as `null` or one of Kong's defaults (several when Kong changed it between 3.4 and 3.15). */
export function kongDefault(defaults: readonly unknown[], why: string): InertField {
  const shown = defaults.map((d) => JSON.stringify(d)).join(' or ');
  return {
    accepts: (v) => isEmpty(v) || defaults.some((d) => sameValue(v, d)),
    refusal: `is not supported by Gatehouse (${why}); only null or Kong's default (${shown}) is accepted`,
  };
}

/** Accepted with any value: it changes nothing in Gatehouse (the reason is in the docs table). */
export function anyValue(): InertField {
  return { accepts: () => true, refusal: '' };
}

function isEmpty(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

/** Deep equality where lists of strings or numbers compare as sets (Kong and decK sort some lists, not others). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    if (a.every((x) => typeof x !== 'object') && b.every((x) => typeof x !== 'object')) {
      const sa = [...a].map(String).sort();
      const sb = [...b].map(String).sort();
      return sa.every((x, i) => x === sb[i]);
    }
    return a.every((x, i) => sameValue(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}

/** The zod fields of a strict object's shape for its inert fields and entity metadata. */
export function inertShape<K extends string>(inert: Record<K, InertField>): Record<K | (typeof META_FIELDS)[number], z.ZodOptional<z.ZodUnknown>> {
  const out: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(inert) as [string, InertField][]) {
    out[key] = z.unknown().superRefine((v, ctx) => {
      if (!field.accepts(v)) ctx.addIssue({ code: 'custom', message: field.refusal });
    }).optional();
  }
  out._comment = z.unknown().superRefine((v, ctx) => {
    if (v !== undefined && v !== null && typeof v !== 'string') ctx.addIssue({ code: 'custom', message: 'must be a string' });
  }).optional();
  out._ignore = z.unknown().optional();
  return out as Record<K | (typeof META_FIELDS)[number], z.ZodOptional<z.ZodUnknown>>;
}

/**
 * A Kong entity (or nested record): `null` values of implemented fields are
 * dropped before validation (so the default applies), except `keepNull` fields,
 * where Kong gives `null` a meaning of its own; after validation, inert fields
 * and metadata are removed and the inert ones recorded under KONG_DEFAULTED.
 * `schema` must be a strict object whose shape includes `inertShape(inert)`.
 */
export function kongEntity<T extends z.ZodType, K extends string>(
  entity: string,
  schema: T,
  inert: Record<K, InertField>,
  keepNull: readonly string[] = [],
) {
  const keep = new Set<string>([...Object.keys(inert), ...keepNull]);
  return z
    .preprocess((input) => {
      if (!input || typeof input !== 'object' || Array.isArray(input)) return input;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(input)) if (v !== null || keep.has(k)) out[k] = v;
      return out;
    }, schema)
    .transform((value) => {
      const v = value as Record<string, unknown>;
      const fields: string[] = [];
      for (const key of Object.keys(inert)) {
        if (Object.hasOwn(v, key)) {
          fields.push(key);
          delete v[key];
        }
      }
      for (const key of META_FIELDS) delete v[key];
      if (fields.length) Object.defineProperty(v, KONG_DEFAULTED, { value: { entity, fields } satisfies KongDefaulted, enumerable: false });
      return v as Omit<z.output<T>, K | (typeof META_FIELDS)[number]>;
    });
}

/** Every inert field accepted anywhere in a validated config, by entity kind, sorted. */
export function kongDefaultedFields(config: unknown): Map<string, string[]> {
  const found = new Map<string, Set<string>>();
  const seen = new Set<object>();
  const visit = (node: unknown) => {
    if (!node || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    const mark = (node as { [KONG_DEFAULTED]?: KongDefaulted })[KONG_DEFAULTED];
    if (mark) {
      let set = found.get(mark.entity);
      if (!set) found.set(mark.entity, (set = new Set()));
      for (const f of mark.fields) set.add(f);
    }
    for (const child of Array.isArray(node) ? node : Object.values(node)) visit(child);
  };
  visit(config);
  return new Map([...found].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort()]));
}

/** Marks a shorthand's value moved into its record (a symbol: no file can spell it). */
const MOVED = Symbol('moved into its record');

/**
 * Kong's deprecated shorthands (`session_redis_host` for `redis.host`, …):
 * `move` (before validation) puts each value into the record field it stands
 * for; a shorthand that contradicts a value the record already has stays and
 * is refused by `shape`; `take` (after validation) drops the shorthands and
 * returns the ones that were used, for the deprecation warning.
 */
export function kongShorthands<K extends string>(record: string, map: Record<K, string>) {
  const move = (input: unknown): unknown => {
    if (!input || typeof input !== 'object' || Array.isArray(input)) return input;
    const out: Record<string, unknown> = { ...(input as Record<string, unknown>) };
    let copy: Record<string, unknown> | undefined;
    for (const [shorthand, field] of Object.entries(map) as [string, string][]) {
      const v = out[shorthand];
      if (v === undefined) continue;
      if (v === null) {
        delete out[shorthand];
        continue;
      }
      const current = out[record] && typeof out[record] === 'object' && !Array.isArray(out[record]) ? (out[record] as Record<string, unknown>) : undefined;
      const existing = current?.[field];
      if (existing === undefined || existing === null) {
        copy ??= { ...(current ?? {}) };
        copy[field] = v;
        out[record] = copy;
        out[shorthand] = MOVED;
      } else if (sameValue(existing, v)) {
        out[shorthand] = MOVED;
      }
    }
    return out;
  };
  const shape = Object.fromEntries(
    (Object.entries(map) as [string, string][]).map(([shorthand, field]) => [
      shorthand,
      z
        .unknown()
        .superRefine((v, ctx) => {
          if (v !== undefined && v !== MOVED) {
            ctx.addIssue({ code: 'custom', message: `is the deprecated spelling of ${record}.${field}, which is set to a different value: keep only ${record}.${field}` });
          }
        })
        .optional(),
    ]),
  ) as Record<K, z.ZodOptional<z.ZodUnknown>>;
  const take = (value: Record<string, unknown>): string[] => {
    const used: string[] = [];
    for (const shorthand of Object.keys(map)) {
      if (value[shorthand] === MOVED) used.push(shorthand);
      delete value[shorthand];
    }
    return used;
  };
  return { move, shape, take };
}
