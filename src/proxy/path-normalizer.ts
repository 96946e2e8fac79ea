/**
 * Request-path normalisation, done once per request before routing; the same
 * normalised path is what the upstream receives, so the router and the upstream
 * can never disagree about which resource was asked for.
 *
 * - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded, other
 *   escapes have their hex upper-cased (§6.2.2.1);
 * - dot segments are removed (§5.2.4);
 * - anything that cannot be normalised without guessing is refused: an encoded
 *   "/" or "\" (upstreams disagree on whether it separates segments), a
 *   backslash, NUL or other control character, a malformed escape, or ".."
 *   climbing above the root.
 */
export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const NEEDS_WORK = /[%\\]|\/\.|[\x00-\x20\x7f]/;

export function normalizePath(raw: string): NormalizedPath {
  if (raw.charCodeAt(0) !== 47 /* / */) return { ok: false, reason: 'path must start with "/"' };
  // Fast path: the common request has nothing to decode and no dot segments.
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
  return removeDotSegments(decoded);
}

/** RFC 3986 §5.2.4 on an absolute path, refusing ".." above the root instead of clamping it. */
function removeDotSegments(path: string): NormalizedPath {
  if (!path.includes('/.')) return { ok: true, path };
  const segments = path.split('/');
  const out: string[] = [];
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i];
    const last = i === segments.length - 1;
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
    out.push(s);
  }
  return { ok: true, path: '/' + out.join('/') };
}
