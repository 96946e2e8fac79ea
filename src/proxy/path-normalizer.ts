/**
 * Request-path normalisation, done once per request before routing; the same
 * normalised path is what the upstream receives, so the router and the upstream
 * can never disagree about which resource was asked for.
 *
 * - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded, other
 *   escapes have their hex upper-cased (§6.2.2.1);
 * - runs of "/" are merged into one. RFC 3986 does not make "//" equivalent to
 *   "/", but nginx (merge_slashes), Tomcat, Spring and most frameworks serve
 *   "//admin" as "/admin"; a router that kept the empty segment would send it
 *   past an "/admin" route to a catch-all (APISIX, CVE-2021-43557). Kong's
 *   router matches on its own normalisation, which merges slashes too;
 * - dot segments are removed (§5.2.4), after the slashes are merged, so no empty
 *   segment counts as a level ("/a//../b" is "/b");
 * - anything that cannot be normalised without guessing is refused: an encoded
 *   "/" or "\" (upstreams disagree on whether it separates segments), a
 *   backslash, NUL or other control character, a malformed escape, ".."
 *   climbing above the root, and a segment that is ".", ".." or empty once its
 *   ";" parameters are removed ("..;", ".;x", "..;jsessionid=1", ";x").
 *
 * ";" parameters: RFC 3986 §3.3 lets a segment carry ";" parameters and says
 * nothing about how they combine with dot segments. Tomcat, Jetty and Spring
 * remove them from each segment before resolving dot segments (and then merge
 * the "//" an emptied segment leaves), so they serve "/public/..;/admin" and
 * "/;/admin" as "/admin"; nginx, Node and Go see ordinary names. Resolving
 * them either way is wrong for some upstream, hence 400. An encoded ";"
 * ("%3B") counts as well, for servers that decode before removing parameters.
 * Case cannot matter: "." is unreserved, so "%2E" and "%2e" are decoded before
 * the check, and "%3b" is upper-cased to "%3B" first. Parameters on any other
 * segment ("/a;v=1/b", "/b;jsessionid=1") are part of its name and kept.
 */
export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
/**
 * The one test on the hot path: a path with none of these has nothing to decode,
 * no dot segment, no repeated "/" and no segment starting with ";", so it is
 * already normal.
 */
const NEEDS_WORK = /[%\\]|\/[./;]|[\x00-\x20\x7f]/;
/** After decoding: something for the segment pass to do. */
const HAS_SEGMENT_WORK = /\/(?:[./;]|%3B)/;

const DOT_WITH_PARAMS = 'dot segment with ";" parameters in path';
const EMPTY_WITH_PARAMS = 'empty segment with ";" parameters in path';

export function normalizePath(raw: string): NormalizedPath {
  if (raw.charCodeAt(0) !== 47 /* / */) return { ok: false, reason: 'path must start with "/"' };
  // Fast path: the common request has nothing to decode, no dot segment and no "//".
  if (!NEEDS_WORK.test(raw)) return { ok: true, path: raw };

  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    const code = raw.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return { ok: false, reason: 'control character or space in path' };
    if (ch === '\\') return { ok: false, reason: 'backslash in path' };
    if (ch !== '%') {
      decoded += ch;
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { ok: false, reason: 'malformed percent-encoding in path' };
    const byte = parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c) return { ok: false, reason: 'encoded "/" or "\\" in path' };
    if (byte === 0x00) return { ok: false, reason: 'encoded NUL in path' };
    const c = String.fromCharCode(byte);
    decoded += UNRESERVED.test(c) ? c : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return normalizeSegments(decoded);
}

/**
 * Why `segment` (decoded, as normalizePath leaves it) must not be sent as a
 * segment of its own, or undefined when it may: a dot segment, or a segment
 * that is ".", ".." or empty once its ";" parameters are removed. The route
 * table uses it where strip_path makes a new segment out of what is left of a
 * path (`/api/x` matching `/api/x..`).
 */
export function unsafeSegment(segment: string): string | undefined {
  if (segment === '.' || segment === '..') return 'dot segment in path';
  return paramsReason(segment);
}

function paramsReason(segment: string): string | undefined {
  const c = segment.charCodeAt(0);
  // Only names starting with ".", ";" or "%" can be dot or empty before their parameters.
  if (c !== 46 /* . */ && c !== 59 /* ; */ && c !== 37 /* % */) return undefined;
  let end = segment.indexOf(';');
  const encoded = segment.indexOf('%3B');
  if (encoded !== -1 && (end === -1 || encoded < end)) end = encoded;
  if (end === -1) return undefined;
  const name = segment.slice(0, end);
  if (name === '') return EMPTY_WITH_PARAMS;
  if (name === '.' || name === '..') return DOT_WITH_PARAMS;
  return undefined;
}

/**
 * Merges repeated "/" and removes dot segments (RFC 3986 §5.2.4) of an absolute,
 * decoded path, refusing ".." above the root instead of clamping it and the
 * ";"-parameter forms of dot and empty segments.
 */
function normalizeSegments(path: string): NormalizedPath {
  if (!HAS_SEGMENT_WORK.test(path)) return { ok: true, path };
  const segments = path.split('/');
  const out: string[] = [];
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i];
    const last = i === segments.length - 1;
    if (s === '') {
      // Between two "/": merged. At the end: the trailing "/" is kept.
      if (last) out.push('');
      continue;
    }
    if (s === '.') {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      if (out.length === 0) return { ok: false, reason: 'path climbs above the root' };
      out.pop();
      if (last) out.push('');
      continue;
    }
    const refused = paramsReason(s);
    if (refused) return { ok: false, reason: refused };
    out.push(s);
  }
  return { ok: true, path: '/' + out.join('/') };
}
