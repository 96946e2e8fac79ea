/**
 * Kong's reading of a `cors.origins` list, compiled once at load.
 *
 * - `*` anywhere in the list (or an empty/absent list) allows every origin.
 * - An entry made only of `A-Z a-z 0-9 . : / -` is an exact origin. It is
 *   normalized as Kong normalizes it (scheme and host lower-cased, the default
 *   port of http/https dropped) and compared with the request's normalized
 *   origin for equality — no wildcard meaning for `.`.
 * - Any other entry is a regular expression (JavaScript syntax, case-sensitive),
 *   anchored to the whole subject: a leading `^` and a trailing `$` are
 *   accepted and dropped, and the rest is wrapped as `^(?:entry)$`, so an
 *   alternation is anchored in every branch. The subject is, as in Kong, the
 *   request origin's host alone when the entry contains no `:` (e.g.
 *   `.*\.example\.com`), and the whole normalized origin (`scheme://host[:port]`)
 *   otherwise (e.g. `https://.*\.example\.com`).
 */

/** Kong's test for "this entry is not a plain origin". */
const REGEX_MARKER = /[^A-Za-z0-9.:/-]/;

export interface OriginRule {
  readonly regex: RegExp;
  /** Matched against the origin's host only (the entry has no `:`), as Kong does. */
  readonly byHost: boolean;
}

export interface CompiledOrigins {
  /** Every origin is allowed (`*`, or no list). */
  readonly any: boolean;
  /** Normalized exact origins. */
  readonly exact: ReadonlySet<string>;
  readonly rules: readonly OriginRule[];
}

export function isOriginRegex(entry: string): boolean {
  return entry !== '*' && REGEX_MARKER.test(entry);
}

/** The entry as an anchored RegExp; throws SyntaxError when it does not compile. */
export function originRegex(entry: string): RegExp {
  let body = entry;
  if (body.startsWith('^')) body = body.slice(1);
  // A trailing "$" is the user's own anchor, unless it is escaped ("\$" is a literal dollar).
  if (body.endsWith('$') && !body.endsWith('\\$')) body = body.slice(0, -1);
  return new RegExp(`^(?:${body})$`);
}

/** `scheme://host[:port]` with scheme and host lower-cased and the default port dropped; the input itself when it is no URL (`null`). */
export function normalizeOrigin(origin: string): { origin: string; host: string } {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return { origin, host: origin };
  }
  // Only hierarchical URLs have an origin to compare; "null" and the like stay as they are.
  if (!url.host) return { origin, host: origin };
  return { origin: `${url.protocol}//${url.host}`, host: url.hostname };
}

export function compileOrigins(origins: readonly string[] | undefined): CompiledOrigins {
  if (!origins?.length || origins.includes('*')) return { any: true, exact: new Set(), rules: [] };
  const exact = new Set<string>();
  const rules: OriginRule[] = [];
  for (const entry of origins) {
    if (isOriginRegex(entry)) rules.push({ regex: originRegex(entry), byHost: !entry.includes(':') });
    else exact.add(normalizeOrigin(entry).origin);
  }
  return { any: false, exact, rules };
}

/**
 * The value for Access-Control-Allow-Origin when `origin` (the request's Origin
 * header) is allowed, or undefined. Browsers send the serialized origin, which
 * is already normalized, so the common case is one Set lookup; the URL parse
 * happens only on a miss.
 */
export function allowedOrigin(compiled: CompiledOrigins, origin: string): string | undefined {
  if (compiled.exact.has(origin)) return origin;
  const normalized = normalizeOrigin(origin);
  if (normalized.origin !== origin && compiled.exact.has(normalized.origin)) return normalized.origin;
  for (const rule of compiled.rules) {
    if (rule.regex.test(rule.byHost ? normalized.host : normalized.origin)) return normalized.origin;
  }
  return undefined;
}
