import type { ConfigProblem } from '../config/config.loader.js';

/**
 * An Admin API answer other than success, in Kong's shapes (kong/db/errors.lua):
 * `{"code":2,"name":"schema violation","message":…,"fields":{…}}` and friends,
 * or a bare `{"message":…}` for 404/405/415.
 */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.message === 'string' ? body.message : `admin API error ${status}`);
    this.name = 'AdminApiError';
  }
}

/** Kong's error codes (kong/db/errors.lua `ERRORS`). */
export const KONG_ERROR = {
  SCHEMA_VIOLATION: { code: 2, name: 'schema violation' },
  FOREIGN_KEY_VIOLATION: { code: 4, name: 'foreign key violation' },
  UNIQUE_VIOLATION: { code: 5, name: 'unique constraint violation' },
  INVALID_OFFSET: { code: 7, name: 'invalid offset' },
  INVALID_SIZE: { code: 9, name: 'invalid size' },
  DATABASE_ERROR: { code: 8, name: 'database error' },
  OPERATION_UNSUPPORTED: { code: 12, name: 'operation unsupported' },
  DECLARATIVE_CONFIG: { code: 14, name: 'invalid declarative configuration' },
} as const;

/**
 * `services[0].routes[1].paths[0]` → `['services', 0, 'routes', 1, 'paths', 0]`:
 * the loader's path spelling read back into segments.
 */
export function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

/**
 * Kong's `fields`: the problems as a tree shaped like the entity, each leaf the
 * message (`{"config":{"issuer":"is required"}}`, `{"paths":["must start with \"/\""]}`).
 * Problems about the entity as a whole go under `@entity`, as in Kong.
 */
export function fieldsTree(problems: readonly ConfigProblem[]): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const p of problems) {
    const segments = pathSegments(p.path);
    if (!segments.length) {
      ((root['@entity'] ??= []) as string[]).push(p.message);
      continue;
    }
    let node: Record<string | number, unknown> = root;
    segments.forEach((seg, i) => {
      const last = i === segments.length - 1;
      if (last) {
        node[seg] = node[seg] === undefined ? p.message : `${String(node[seg])}; ${p.message}`;
        return;
      }
      const nextIsIndex = typeof segments[i + 1] === 'number';
      if (node[seg] === undefined || typeof node[seg] !== 'object') node[seg] = nextIsIndex ? [] : {};
      node = node[seg] as Record<string | number, unknown>;
    });
  }
  return root;
}

/** `schema violation (paths[0]: must start with "/")`, or `2 schema violations (a; b)`: kong/db/errors.lua's wording with the loader's paths. */
export function schemaViolation(problems: readonly ConfigProblem[]): AdminApiError {
  const parts = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  const message = parts.length === 1 ? `schema violation (${parts[0]})` : `${parts.length} schema violations (${parts.join('; ')})`;
  return new AdminApiError(400, { ...KONG_ERROR.SCHEMA_VIOLATION, message, fields: fieldsTree(problems) });
}

/** 409 `UNIQUE violation detected on '{name="openidconnect"}'`. */
export function uniqueViolation(fields: Record<string, unknown>): AdminApiError {
  const pretty = Object.entries(fields)
    .map(([k, v]) => `${k}=${v === null ? 'null' : typeof v === 'object' ? `{id="${(v as { id: string }).id}"}` : JSON.stringify(v)}`)
    .join(',');
  return new AdminApiError(409, { ...KONG_ERROR.UNIQUE_VIOLATION, message: `UNIQUE violation detected on '{${pretty}}'`, fields });
}

/** 400 when an entity still references the one being deleted (Kong refuses; routes are not cascaded). */
export function referencedBy(parent: string, child: string): AdminApiError {
  return new AdminApiError(400, {
    ...KONG_ERROR.FOREIGN_KEY_VIOLATION,
    message: `an existing '${child}' entity references this '${parent}' entity`,
    fields: { '@referenced_by': child },
  });
}

/** 400 when a body names a service or route that does not exist. */
export function foreignKeyMissing(field: string, key: { id: string } | { name: string }, parent: string): AdminApiError {
  const pretty = 'id' in key ? `{id="${key.id}"}` : `{name="${key.name}"}`;
  return new AdminApiError(400, {
    ...KONG_ERROR.FOREIGN_KEY_VIOLATION,
    message: `the foreign key '${pretty}' does not reference an existing '${parent}' entity.`,
    fields: { [field]: key },
  });
}

/** Kong's DB-less answer to a write (kong/api/endpoints.lua): 405, code 12. */
export function notWithoutDatabase(action: 'create' | 'update' | 'create or update' | 'delete', kind: string): AdminApiError {
  return new AdminApiError(405, {
    ...KONG_ERROR.OPERATION_UNSUPPORTED,
    message: `cannot ${action} '${kind}' entities when not using a database`,
  });
}

/**
 * The store refused or could not take a write, in Kong's `database error`
 * shape (code 8) with the status that tells a client what to do: 409 when the
 * stored configuration changed since this write read it (PostgreSQL
 * compare-and-set: another admin, maybe on another instance, saved first —
 * read again and retry), 503 when the database cannot be reached (retry
 * later; the gateway keeps serving its last good config). `error` carries the
 * store's own code for scripts. Undefined for anything else.
 */
export function storeWriteError(err: unknown): AdminApiError | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'GATEHOUSE_CONFIG_CONFLICT') {
    return new AdminApiError(409, {
      ...KONG_ERROR.DATABASE_ERROR,
      message: `the configuration changed since it was read (${(err as Error).message}); nothing was changed, read it again and retry`,
      error: code,
    });
  }
  if (code === 'GATEHOUSE_STORE_UNAVAILABLE') {
    // The cause (host, driver message) goes to the log, not to the client.
    return new AdminApiError(503, { ...KONG_ERROR.DATABASE_ERROR, message: 'the configuration database is unavailable; nothing was changed', error: code });
  }
  return undefined;
}
