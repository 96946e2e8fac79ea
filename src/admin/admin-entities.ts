import { createHash, randomUUID } from 'node:crypto';
import type { DeclarativeConfig } from '../config/declarative.schema.js';
import { AdminApiError } from './admin.errors.js';

/**
 * The Admin API's view of one declarative document: Kong's three entity
 * collections, flat, keyed by id, each entity exactly as written (its own
 * fields, no defaults) plus `id`, `created_at`, `updated_at` and its foreign
 * keys (`service: {id}`, `route: {id}`). A write changes a copy and turns it
 * back into a whole document (`toDocument`), which the declarative schema —
 * the same one that validates files — then accepts or refuses.
 */

export type EntityKind = 'services' | 'routes' | 'plugins';
export type Entity = Record<string, unknown> & { id: string; created_at: number; updated_at: number };
export type ForeignKey = { id: string } | null;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);

/** Keys of an entity that are not part of its own fields in the document. */
const FOREIGN = new Set(['service', 'route', 'consumer']);

/**
 * A stable UUID (version-5 layout) from a key, for entities of a file written
 * without ids: every process and every reload gives such an entity the same id,
 * as Kong's DB-less mode does.
 */
export function stableUuid(key: string): string {
  const h = createHash('sha256').update(`gatehouse\0${key}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const now = () => Math.floor(Date.now() / 1000);

function record(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
function list(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.map(record) : [];
}
function refName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  const r = record(v);
  return typeof r.name === 'string' ? r.name : typeof r.id === 'string' ? r.id : undefined;
}

/** Where each entity sits in the document `toDocument` built: `services[0].routes[1]` → entity. */
export interface DocumentLayout {
  paths: Map<string, { kind: EntityKind; id: string }>;
}

export class EntityState {
  readonly services = new Map<string, Entity>();
  readonly routes = new Map<string, Entity>();
  readonly plugins = new Map<string, Entity>();

  /** Reads a document in any of the declarative file's shapes (nested or top-level entities). */
  static fromDocument(document: unknown): EntityState {
    const state = new EntityState();
    const doc = record(document);
    const stamp = now();
    const meta = (e: Record<string, unknown>, key: string) => {
      const id = typeof e.id === 'string' && isUuid(e.id) ? e.id : stableUuid(key);
      const created = typeof e.created_at === 'number' ? e.created_at : stamp;
      return { id, created_at: created, updated_at: typeof e.updated_at === 'number' ? e.updated_at : created };
    };
    const own = (e: Record<string, unknown>, drop: string[]) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(e)) if (!drop.includes(k) && !FOREIGN.has(k) && v !== undefined) out[k] = v;
      return out;
    };
    const serviceByName = new Map<string, string>();
    const routeByName = new Map<string, string>();
    const addPlugin = (p: Record<string, unknown>, key: string, service: ForeignKey, route: ForeignKey) => {
      const m = meta(p, key);
      state.plugins.set(m.id, { ...own(p, ['id', 'created_at', 'updated_at']), ...m, service, route } as Entity);
    };
    const addRoute = (r: Record<string, unknown>, key: string, service: ForeignKey) => {
      const m = meta(r, typeof r.name === 'string' ? `route:${r.name}` : key);
      state.routes.set(m.id, { ...own(r, ['id', 'created_at', 'updated_at', 'plugins']), ...m, service } as Entity);
      if (typeof r.name === 'string') routeByName.set(r.name, m.id);
      list(r.plugins).forEach((p, k) => addPlugin(p, `${key}.plugins[${k}]:${String(p.name)}`, null, { id: m.id }));
    };
    list(doc.services).forEach((s, i) => {
      const m = meta(s, typeof s.name === 'string' ? `service:${s.name}` : `services[${i}]`);
      state.services.set(m.id, { ...own(s, ['id', 'created_at', 'updated_at', 'routes', 'plugins']), ...m } as Entity);
      if (typeof s.name === 'string') serviceByName.set(s.name, m.id);
      list(s.routes).forEach((r, j) => addRoute(r, `services[${i}].routes[${j}]`, { id: m.id }));
      list(s.plugins).forEach((p, k) => addPlugin(p, `services[${i}].plugins[${k}]:${String(p.name)}`, { id: m.id }, null));
    });
    const findService = (v: unknown): ForeignKey => {
      const n = refName(v);
      if (n === undefined) return null;
      const id = serviceByName.get(n) ?? (state.services.has(n) ? n : undefined);
      // An unknown reference is kept by name so the schema reports it at its path.
      return id ? { id } : ({ id: n } as { id: string });
    };
    list(doc.routes).forEach((r, j) => addRoute(r, `routes[${j}]`, findService(r.service)));
    list(doc.plugins).forEach((p, k) => {
      const rn = refName(p.route);
      const route = rn === undefined ? null : { id: routeByName.get(rn) ?? rn };
      addPlugin(p, `plugins[${k}]:${String(p.name)}`, findService(p.service), route);
    });
    return state;
  }

  clone(): EntityState {
    const copy = new EntityState();
    for (const kind of ['services', 'routes', 'plugins'] as const) {
      for (const [id, e] of this[kind]) copy[kind].set(id, structuredClone(e));
    }
    return copy;
  }

  collection(kind: EntityKind): Map<string, Entity> {
    return this[kind];
  }

  /** By id, or by name (`instance_name` for plugins) when the key is not a UUID, as Kong's endpoints do. */
  find(kind: EntityKind, key: string): Entity | undefined {
    const c = this[kind];
    if (isUuid(key)) return c.get(key.toLowerCase());
    const field = kind === 'plugins' ? 'instance_name' : 'name';
    for (const e of c.values()) if (e[field] === key) return e;
    return undefined;
  }

  /**
   * The whole document, nested the way Kong's `deck` writes it: routes and
   * plugins inside their service, plugins inside their route, global plugins
   * and plugins bound to a service and a route at the top. Routes without a
   * service are listed at the top (the schema then says a service is required).
   */
  toDocument(): { document: Record<string, unknown>; layout: DocumentLayout } {
    const paths = new Map<string, { kind: EntityKind; id: string }>();
    const strip = (e: Entity) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(e)) if (!FOREIGN.has(k)) out[k] = v;
      return out;
    };
    const pluginsOf = (pred: (p: Entity) => boolean, at: string) =>
      [...this.plugins.values()].filter(pred).map((p, k) => {
        paths.set(`${at}.plugins[${k}]`, { kind: 'plugins', id: p.id });
        return strip(p);
      });
    const sid = (e: Entity) => (e.service as ForeignKey)?.id;
    const rid = (e: Entity) => (e.route as ForeignKey)?.id;

    const services = [...this.services.values()].map((s, i) => {
      paths.set(`services[${i}]`, { kind: 'services', id: s.id });
      const routes = [...this.routes.values()].filter((r) => sid(r) === s.id).map((r, j) => {
        const at = `services[${i}].routes[${j}]`;
        paths.set(at, { kind: 'routes', id: r.id });
        return { ...strip(r), plugins: pluginsOf((p) => rid(p) === r.id && !sid(p), at) };
      });
      return { ...strip(s), routes, plugins: pluginsOf((p) => sid(p) === s.id && !rid(p), `services[${i}]`) };
    });
    const orphanRoutes = [...this.routes.values()].filter((r) => !sid(r) || !this.services.has(sid(r)!));
    const routes = orphanRoutes.map((r, j) => {
      const at = `routes[${j}]`;
      paths.set(at, { kind: 'routes', id: r.id });
      const service = sid(r);
      return { ...strip(r), ...(service ? { service } : {}), plugins: pluginsOf((p) => rid(p) === r.id && !sid(p), at) };
    });
    const name = (kind: 'services' | 'routes', id: string | undefined) => {
      if (!id) return undefined;
      const e = this[kind].get(id);
      return (e?.name as string | undefined) ?? id;
    };
    const top = [...this.plugins.values()].filter((p) => {
      const s = sid(p);
      const r = rid(p);
      return (!s && !r) || (s && r) || (s && !this.services.has(s)) || (r && !this.routes.has(r));
    });
    const plugins = top.map((p, k) => {
      paths.set(`plugins[${k}]`, { kind: 'plugins', id: p.id });
      const service = name('services', sid(p));
      const route = name('routes', rid(p));
      return { ...strip(p), ...(service ? { service } : {}), ...(route ? { route } : {}) };
    });
    const document: Record<string, unknown> = { _format_version: '3.0', services };
    if (routes.length) document.routes = routes;
    if (plugins.length) document.plugins = plugins;
    return { document, layout: { paths } };
  }
}

/** Validated entities by id: the schema's output, with every default filled in. */
export function validatedById(config: DeclarativeConfig): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const add = (e: unknown) => {
    const r = record(e);
    if (typeof r.id === 'string') out.set(r.id, r);
  };
  for (const s of config.services) {
    add(s);
    for (const r of s.routes) {
      add(r);
      r.plugins.forEach(add);
    }
    s.plugins.forEach(add);
  }
  for (const r of config.routes) {
    add(r);
    r.plugins.forEach(add);
  }
  config.plugins.forEach(add);
  return out;
}

/** Kong's 404 for an entity named in the URL that does not exist. */
export function notFound(): AdminApiError {
  return new AdminApiError(404, { message: 'Not found' });
}

export function newEntityMeta(id?: string): { id: string; created_at: number; updated_at: number } {
  const t = now();
  return { id: id ?? randomUUID(), created_at: t, updated_at: t };
}

/** A document with an id on every entity (stable ids for those written without): what a writable store keeps. */
export function documentWithIds(document: unknown): Record<string, unknown> {
  const { document: out } = EntityState.fromDocument(document).toDocument();
  const source = record(document);
  for (const k of ['_comment', '_info', '_transform']) if (source[k] !== undefined) out[k] = source[k];
  return out;
}
