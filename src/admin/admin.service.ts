import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { stringify } from 'yaml';
import { ConfigError, type ConfigProblem } from '../config/config.loader.js';
import { ConfigRuntime } from '../config/config-runtime.js';
import { PostgresConfigStore } from '../config/stores/postgres-config.store.js';
import type { ConfigStore } from '../config/config-store.js';
import { formatPath, PLUGIN_SCHEMAS, type DeclarativeConfig } from '../config/declarative.schema.js';
import { coerceEntityBody } from './admin-body.js';
import { EntityState, isUuid, newEntityMeta, notFound, validatedById, type Entity, type EntityKind, type ForeignKey } from './admin-entities.js';
import {
  AdminApiError,
  fieldsTree,
  foreignKeyMissing,
  KONG_ERROR,
  notWithoutDatabase,
  referencedBy,
  schemaViolation,
  uniqueViolation,
} from './admin.errors.js';
import { ADMIN_LOGGER, CONFIG_STORE } from './admin.tokens.js';

/** Who is asking: the admin token's `sub`, or `local` on an unauthenticated loopback listener. */
export interface AdminActor {
  actor: string;
}

export type Scope = { service?: Entity; route?: Entity };

/** Kong's fields that Gatehouse shows with their Kong default when unset (`null` where Kong has none). */
const SHOWN_DEFAULTS: Record<EntityKind, Record<string, unknown>> = {
  services: { name: null, path: null, tags: null, tls_verify: null, tls_verify_depth: null, ca_certificates: null, client_certificate: null },
  routes: {
    name: null,
    paths: null,
    methods: null,
    hosts: null,
    headers: null,
    snis: null,
    sources: null,
    destinations: null,
    tags: null,
    https_redirect_status_code: 426,
    request_buffering: true,
    response_buffering: true,
  },
  plugins: { instance_name: null, tags: null, protocols: ['http', 'https'], consumer: null },
};

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const SERVICE_URL = /^(https?):\/\/(\[[^\]]+\]|[^/:?#]+)(?::(\d{1,5}))?(\/[^?#]*)?$/i;

export interface Page {
  data: Record<string, unknown>[];
  next: string | null;
  offset?: string;
}

/**
 * The Admin API's one service. Reads come from the applied document; every
 * write builds a new whole document and goes through the same steps, one at a
 * time: the declarative schema (`runtime.validate`), the store (`save`, durable
 * before anything changes), then the live swap (`runtime.apply`).
 */
@Injectable()
export class AdminService implements OnModuleInit {
  private state = new EntityState();
  private validated = new Map<string, Record<string, unknown>>();
  private queue: Promise<unknown> = Promise.resolve();
  /** PostgreSQL: the stored version `state` was built from (undefined: not known, read it before the next write). */
  private storedVersion?: number;

  constructor(
    private readonly runtime: ConfigRuntime,
    @Inject(CONFIG_STORE) readonly store: ConfigStore,
    @Inject(ADMIN_LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit() {
    this.adopt(this.runtime.current.document, this.runtime.current.declarative);
    // Changes from elsewhere (another worker or instance, an edited file) show up here too.
    this.runtime.onApplied((applied) => {
      this.adopt(applied.document, applied.declarative);
      // Another instance's change: the version it was stored as is read again before this process's next write.
      this.storedVersion = undefined;
    });
  }

  /**
   * PostgreSQL: the document a write starts from and the version it was read
   * at, for the compare-and-set save. Another instance's change that this
   * process has not applied yet (its notification is still on the way) is
   * read here, so an admin write is made on top of it, never over it; and a
   * write landing between this read and the save makes the save fail with
   * ConfigConflictError (409) instead of silently replacing it.
   */
  private async readStored(): Promise<number | undefined> {
    if (!(this.store instanceof PostgresConfigStore)) return undefined;
    const stored = await this.store.read();
    if (stored.version !== this.storedVersion && stored.document !== undefined) {
      try {
        this.adopt(stored.document, await this.runtime.validate(stored.document, this.store.source));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        // A stored document this build refuses (written by hand, or by a newer version): the write
        // is made on the config this process runs, and replaces it (still only at this version).
        this.logger.warn({ store: this.store.source, version: stored.version, problems: err.problems.length }, 'admin: the stored config does not validate; writing over it');
      }
    }
    this.storedVersion = stored.version;
    return stored.version;
  }

  /** Durable before anything changes; with PostgreSQL, only if the stored version is still the one read. */
  private async persist(document: unknown, actor: string, expectedVersion: number | undefined): Promise<number | undefined> {
    if (this.store instanceof PostgresConfigStore && expectedVersion !== undefined) return this.store.saveVersion(document, { actor, expectedVersion });
    await this.store.save(document, { actor });
    return undefined;
  }

  private adopt(document: unknown, declarative: DeclarativeConfig) {
    this.state = EntityState.fromDocument(document);
    this.validated = validatedById(declarative);
  }

  // ---- reads -----------------------------------------------------------------

  find(kind: EntityKind, key: string): Entity {
    const e = this.state.find(kind, key);
    if (!e) throw notFound();
    return e;
  }

  view(kind: EntityKind, e: Entity): Record<string, unknown> {
    const checked = this.validated.get(e.id) ?? {};
    const out: Record<string, unknown> = { ...SHOWN_DEFAULTS[kind] };
    for (const [k, v] of Object.entries(checked)) if (!['routes', 'plugins', 'service', 'route', 'url'].includes(k)) out[k] = v;
    for (const [k, v] of Object.entries(e)) if (k !== 'url') out[k] = v;
    if (kind === 'services') {
      // A service written with `url` shows it expanded, as Kong stores it.
      const url = typeof checked.url === 'string' ? checked.url : typeof e.url === 'string' ? e.url : undefined;
      if (url) Object.assign(out, expandServiceUrl(url) ?? { url });
    }
    if (kind === 'plugins') {
      out.config = { ...(checked.config as object | undefined), ...(e.config as object | undefined) };
      out.service ??= null;
      out.route ??= null;
    }
    if (kind === 'routes') out.service ??= null;
    return out;
  }

  list(kind: EntityKind, query: Record<string, unknown>, filter: (e: Entity) => boolean = () => true, basePath = `/${kind}`): Page {
    const size = pageSize(query.size);
    const start = pageOffset(query.offset);
    const tags = typeof query.tags === 'string' && query.tags ? query.tags : undefined;
    const matchesTags = tagFilter(tags);
    const all = [...this.state.collection(kind).values()].filter((e) => filter(e) && matchesTags(e));
    const data = all.slice(start, start + size).map((e) => this.view(kind, e));
    const more = start + size < all.length;
    const offset = more ? Buffer.from(String(start + size)).toString('base64url') : undefined;
    const params = new URLSearchParams();
    if (offset) params.set('offset', offset);
    if (query.size !== undefined) params.set('size', String(size));
    if (tags) params.set('tags', tags);
    return { data, next: more ? `${basePath}?${params}` : null, ...(offset ? { offset } : {}) };
  }

  exportDocument(): Record<string, unknown> {
    return this.state.toDocument().document;
  }

  exportYaml(): string {
    return stringify(this.exportDocument());
  }

  /** Every plugin this build can run: Kong's `GET /plugins/enabled` (the node's `plugins` setting). */
  get availablePlugins(): string[] {
    return Object.keys(PLUGIN_SCHEMAS);
  }

  get enabledPlugins(): string[] {
    return [...new Set([...this.state.plugins.values()].map((p) => String(p.name)))].sort();
  }

  // ---- writes ----------------------------------------------------------------

  create(kind: EntityKind, body: Record<string, unknown>, scope: Scope, who: AdminActor, form: boolean): Promise<Record<string, unknown>> {
    this.writable('create', kind);
    return this.write(who, (next) => {
      const fields = this.prepare(kind, body, form, undefined, scope);
      const meta = newEntityMeta(typeof fields.id === 'string' && isUuid(fields.id) ? fields.id.toLowerCase() : undefined);
      const entity = { ...fields, ...meta } as Entity;
      if (kind === 'routes') entity.service = this.foreign(next, 'service', scope.service ? { id: scope.service.id } : fields.service);
      if (kind === 'plugins') {
        entity.service = this.foreign(next, 'service', scope.service ? { id: scope.service.id } : fields.service);
        entity.route = this.foreign(next, 'route', scope.route ? { id: scope.route.id } : fields.route);
      }
      if (next.collection(kind).has(entity.id)) throw uniqueViolation({ id: entity.id });
      this.checkUnique(next, kind, entity);
      next.collection(kind).set(entity.id, entity);
      return { kind, entity, action: 'create' };
    });
  }

  update(kind: EntityKind, key: string, body: Record<string, unknown>, who: AdminActor, form: boolean): Promise<Record<string, unknown>> {
    this.writable('update', kind);
    return this.write(who, (next) => {
      const current = next.find(kind, key);
      if (!current) throw notFound();
      const fields = this.prepare(kind, body, form, current);
      const entity: Entity = { ...current, ...fields, id: current.id, created_at: current.created_at, updated_at: Math.floor(Date.now() / 1000) };
      if (kind === 'plugins' && fields.config && typeof fields.config === 'object') {
        // Kong merges a PATCHed plugin config into the one stored.
        entity.config = { ...(current.config as object | undefined), ...(fields.config as object) };
      }
      if (kind === 'services' && typeof body.url === 'string') for (const k of ['protocol', 'host', 'port', 'path']) if (!(k in fields)) delete entity[k];
      for (const [k, v] of Object.entries(fields)) if (v === null && !['service', 'route'].includes(k)) delete entity[k];
      if ('service' in fields) entity.service = this.foreign(next, 'service', fields.service);
      if ('route' in fields) entity.route = this.foreign(next, 'route', fields.route);
      this.checkUnique(next, kind, entity);
      next.collection(kind).set(entity.id, entity);
      return { kind, entity, action: 'update' };
    });
  }

  /** PUT: the entity named by the URL becomes exactly the body (its id and created_at kept when it exists). */
  upsert(kind: EntityKind, key: string, body: Record<string, unknown>, scope: Scope, who: AdminActor, form: boolean): Promise<{ created: boolean; view: Record<string, unknown> }> {
    this.writable('create or update', kind);
    let created = false;
    return this.write(who, (next) => {
      const current = next.find(kind, key);
      const fields = this.prepare(kind, body, form, current, scope);
      if (!isUuid(key)) fields[kind === 'plugins' ? 'instance_name' : 'name'] = key;
      const meta = current
        ? { id: current.id, created_at: current.created_at, updated_at: Math.floor(Date.now() / 1000) }
        : newEntityMeta(isUuid(key) ? key.toLowerCase() : undefined);
      created = !current;
      const entity = { ...fields, ...meta } as Entity;
      if (kind !== 'services') {
        entity.service = this.foreign(next, 'service', scope.service ? { id: scope.service.id } : fields.service);
        if (kind === 'plugins') entity.route = this.foreign(next, 'route', scope.route ? { id: scope.route.id } : fields.route);
      }
      this.checkUnique(next, kind, entity);
      next.collection(kind).set(entity.id, entity);
      return { kind, entity, action: created ? 'create' : 'replace' };
    }).then((view) => ({ created, view }));
  }

  /** DELETE: Kong answers 204 whether or not the entity existed; a service still used by routes is refused. */
  async remove(kind: EntityKind, key: string, who: AdminActor): Promise<void> {
    this.writable('delete', kind);
    if (!this.state.find(kind, key)) return;
    await this.write(who, (next) => {
      const current = next.find(kind, key);
      if (!current) return undefined;
      if (kind === 'services' && [...next.routes.values()].some((r) => (r.service as ForeignKey)?.id === current.id)) throw referencedBy('services', 'routes');
      next.collection(kind).delete(current.id);
      // A route's or service's plugins go with it (Kong's `on_delete = "cascade"`).
      if (kind !== 'plugins') {
        const field = kind === 'services' ? 'service' : 'route';
        for (const [id, p] of next.plugins) if ((p[field] as ForeignKey)?.id === current.id) next.plugins.delete(id);
      }
      return { kind, entity: current, action: 'delete' };
    });
  }

  /** `POST /config`: a whole document, every problem reported, nothing applied on failure. */
  async replaceConfig(document: unknown, who: AdminActor): Promise<Record<string, unknown>> {
    return this.serialized(async () => {
      if (!document || typeof document !== 'object' || Array.isArray(document)) {
        throw declarativeError([{ path: '', message: 'must be a mapping with _format_version, services, routes and plugins' }]);
      }
      // Ids are given to entities that have none, so the stored document and GET /config name every entity.
      const withIds = EntityState.fromDocument(document);
      const { document: stored } = withIds.toDocument();
      // Problems are reported against the document as posted, not as re-nested.
      try {
        await this.runtime.validate(document, 'admin:/config');
      } catch (err) {
        if (err instanceof ConfigError) throw declarativeError(err.problems);
        throw err;
      }
      let applied;
      try {
        await this.runtime.validate(stored, 'admin:/config');
      } catch (err) {
        if (err instanceof ConfigError) throw declarativeError(err.problems);
        throw err;
      }
      const saved = this.store.writable ? await this.persist(stored, who.actor, await this.readStored()) : undefined;
      applied = await this.runtime.apply(stored, { source: this.store.writable ? this.store.source : 'admin:/config', actor: who.actor });
      this.adopt(stored, applied.declarative);
      this.storedVersion = saved;
      this.logger.info({ actor: who.actor, action: 'replace', entity: 'config', services: withIds.services.size, routes: withIds.routes.size, plugins: withIds.plugins.size, persisted: this.store.writable }, 'admin change');
      return {
        services: [...this.state.services.values()].map((e) => this.view('services', e)),
        routes: [...this.state.routes.values()].map((e) => this.view('routes', e)),
        plugins: [...this.state.plugins.values()].map((e) => this.view('plugins', e)),
      };
    });
  }

  /** `POST /schemas/plugins/validate`: the plugin checked by the declarative schema, nothing stored. */
  async validatePlugin(body: Record<string, unknown>, form: boolean): Promise<void> {
    const fields = this.prepare('plugins', body, form);
    delete fields.service;
    delete fields.route;
    delete fields.consumer;
    try {
      await this.runtime.validate({ _format_version: '3.0', plugins: [fields] }, 'admin:/schemas/plugins/validate');
    } catch (err) {
      if (err instanceof ConfigError) throw schemaViolation(err.problems.map((p) => ({ ...p, path: p.path.replace(/^plugins\[0\]\.?/, '') })));
      throw err;
    }
  }

  // ---- internals ---------------------------------------------------------------

  private writable(action: 'create' | 'update' | 'create or update' | 'delete', kind: EntityKind) {
    if (!this.store.writable) throw notWithoutDatabase(action, kind);
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One entity write: change a copy, validate the whole document with the
   * declarative schema, persist, swap. Problems of the written entity are
   * reported as its fields; nothing is stored or applied when any exist.
   */
  private write(who: AdminActor, change: (next: EntityState) => { kind: EntityKind; entity: Entity; action: string } | undefined): Promise<Record<string, unknown>> {
    return this.serialized(async () => {
      const expectedVersion = await this.readStored();
      const next = this.state.clone();
      const result = change(next);
      if (!result) return {};
      const { document, layout } = next.toDocument();
      let declarative: DeclarativeConfig;
      try {
        declarative = await this.runtime.validate(document, 'admin');
      } catch (err) {
        if (err instanceof ConfigError) throw schemaViolation(problemsOf(err.problems, layout.paths, result.entity.id));
        throw err;
      }
      const saved = await this.persist(document, who.actor, expectedVersion);
      await this.runtime.apply(document, { source: this.store.source, actor: who.actor });
      // Set after the swap: applying it reset the version (as for any applied change).
      this.storedVersion = saved;
      this.state = next;
      this.validated = validatedById(declarative);
      const e = result.entity;
      this.logger.info(
        { actor: who.actor, action: result.action, entity: result.kind, id: e.id, ...(e.name ? { name: e.name } : {}), ...(result.kind === 'plugins' ? { plugin: e.name } : {}) },
        'admin change',
      );
      return result.action === 'delete' ? {} : this.view(result.kind, next.collection(result.kind).get(e.id)!);
    });
  }

  /** The body's own fields: form values typed by the schema, `url` expanded, foreign keys kept for `foreign()`. */
  private prepare(kind: EntityKind, body: Record<string, unknown>, form: boolean, current?: Entity, scope: Scope = {}): Record<string, unknown> {
    const typed = form ? coerceEntityBody(kind, body, typeof current?.name === 'string' ? current.name : undefined) : { ...body };
    for (const k of ['created_at', 'updated_at']) delete typed[k];
    if (kind === 'services' && typeof typed.url === 'string') {
      const parts = expandServiceUrl(typed.url);
      if (parts) {
        delete typed.url;
        Object.assign(typed, parts);
        if (parts.path === null) delete typed.path;
      }
    }
    if (kind === 'plugins' && !current && typed.name === 'openid-connect') {
      // Kong generates the session secret of an openid-connect plugin created without one; so does
      // Gatehouse, once, at creation: it is stored with the plugin (the store file is 0600), so
      // sessions survive restarts and every instance reading the store shares it.
      const config = (typed.config && typeof typed.config === 'object' ? typed.config : (typed.config = {})) as Record<string, unknown>;
      if (config.session_secret === undefined) config.session_secret = randomBytes(32).toString('base64url');
    }
    if (kind !== 'services' && scope.service) delete typed.service;
    if (kind === 'plugins' && scope.route) delete typed.route;
    return typed;
  }

  /** A foreign key from a body (`{id}`, `{name}`, a bare id or name, or null), checked to exist. */
  private foreign(next: EntityState, field: 'service' | 'route', value: unknown): ForeignKey {
    if (value === undefined || value === null) return null;
    const kind = field === 'service' ? 'services' : 'routes';
    const ref = typeof value === 'string' ? (isUuid(value) ? { id: value } : { name: value }) : (value as Record<string, unknown>);
    const key = typeof ref.id === 'string' ? ref.id : typeof ref.name === 'string' ? ref.name : undefined;
    if (key === undefined) throw schemaViolation([{ path: field, message: 'must be {"id": …} or {"name": …}' }]);
    const found = next.find(kind, key);
    if (!found) throw foreignKeyMissing(field, typeof ref.id === 'string' ? { id: ref.id } : { name: key }, kind);
    return { id: found.id };
  }

  /** Kong's unique keys: service and route names, a plugin's name per (service, route), a plugin's instance_name. */
  private checkUnique(next: EntityState, kind: EntityKind, entity: Entity) {
    for (const other of next.collection(kind).values()) {
      if (other.id === entity.id) continue;
      if (kind !== 'plugins' && entity.name !== undefined && other.name === entity.name) throw uniqueViolation({ name: entity.name });
      if (kind === 'plugins') {
        if (entity.instance_name !== undefined && other.instance_name === entity.instance_name) throw uniqueViolation({ instance_name: entity.instance_name });
        const same = (f: string) => ((other[f] as ForeignKey)?.id ?? null) === ((entity[f] as ForeignKey)?.id ?? null);
        if (other.name === entity.name && same('service') && same('route')) {
          throw uniqueViolation({ consumer: null, name: entity.name, route: entity.route ?? null, service: entity.service ?? null });
        }
      }
    }
  }
}

/**
 * The written entity's problems with paths relative to it (`paths[0]`,
 * `config.issuer`). A problem elsewhere in the document (a file that was
 * already invalid, a cross-reference) keeps its document path.
 */
function problemsOf(problems: readonly ConfigProblem[], layout: Map<string, { kind: EntityKind; id: string }>, id: string): ConfigProblem[] {
  const mine = [...layout.entries()].filter(([, v]) => v.id === id).map(([k]) => k);
  return problems.map((p) => {
    for (const prefix of mine) {
      if (p.path === prefix) return { path: '', message: p.message };
      if (p.path.startsWith(`${prefix}.`)) {
        const rest = p.path.slice(prefix.length + 1);
        // The route's service reference is the foreign key, not a field the caller wrote as such.
        return { path: rest, message: p.message };
      }
    }
    return p;
  });
}

function declarativeError(problems: readonly ConfigProblem[]): AdminApiError {
  const text = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ');
  return new AdminApiError(400, {
    ...KONG_ERROR.DECLARATIVE_CONFIG,
    message: `declarative config is invalid: ${text}`,
    fields: fieldsTree(problems),
    // Kong 3.x's flattened form: one entry per problem, with the loader's path.
    flattened_errors: problems.map((p) => ({ path: p.path, message: p.message })),
  });
}

/** `http://httpbin.org/anything` → protocol, host, port (Kong's default 80/443), path (null for none). */
export function expandServiceUrl(url: string): { protocol: string; host: string; port: number; path: string | null } | undefined {
  const m = SERVICE_URL.exec(url.trim());
  if (!m) return undefined;
  const protocol = m[1].toLowerCase();
  const port = m[3] ? Number(m[3]) : protocol === 'https' ? 443 : 80;
  if (port < 1 || port > 65535) return undefined;
  return { protocol, host: m[2], port, path: m[4] || null };
}

function pageSize(v: unknown): number {
  if (v === undefined || v === '') return DEFAULT_PAGE_SIZE;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new AdminApiError(400, { ...KONG_ERROR.INVALID_SIZE, message: 'size must be a number' });
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new AdminApiError(400, { ...KONG_ERROR.INVALID_SIZE, message: `size must be an integer between 1 and ${MAX_PAGE_SIZE}` });
  }
  return n;
}

function pageOffset(v: unknown): number {
  if (v === undefined || v === '') return 0;
  const s = String(v);
  const n = /^[A-Za-z0-9_-]+$/.test(s) ? Number(Buffer.from(s, 'base64url').toString('utf8')) : NaN;
  if (!Number.isInteger(n) || n < 0) throw new AdminApiError(400, { ...KONG_ERROR.INVALID_OFFSET, message: `'${s}' is not a valid offset: bad base64 encoding` });
  return n;
}

/** Kong's `tags` filter: `a,b` needs both, `a/b` either (one kind of separator per query). */
function tagFilter(tags: string | undefined): (e: Entity) => boolean {
  if (!tags) return () => true;
  const any = tags.includes('/');
  const wanted = tags.split(any ? '/' : ',').filter(Boolean);
  return (e) => {
    const have = Array.isArray(e.tags) ? (e.tags as string[]) : [];
    return any ? wanted.some((t) => have.includes(t)) : wanted.every((t) => have.includes(t));
  };
}

export { formatPath };
