/** Minimal RFC 6265 cookie reading and writing: no dependency, no surprises. */

export function parseCookies(header: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq <= 0) continue;
      const name = part.slice(0, eq).trim();
      let value = part.slice(eq + 1).trim();
      // RFC 6265 §4.1.1: a DQUOTE-wrapped value; a lone `"` is not wrapped.
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      // The first occurrence wins, as browsers send the most specific path first.
      if (name && !out.has(name)) out.set(name, value);
    }
  }
  return out;
}

export interface CookieAttributes {
  path: string;
  domain?: string;
  httpOnly: boolean;
  secure: boolean;
  sameSite?: 'Strict' | 'Lax' | 'None';
  /** Seconds; 0 deletes the cookie. Omitted: a browser-session cookie. */
  maxAge?: number;
}

export function serializeCookie(name: string, value: string, a: CookieAttributes): string {
  let out = `${name}=${value}; Path=${a.path}`;
  if (a.domain) out += `; Domain=${a.domain}`;
  if (a.maxAge !== undefined) {
    out += `; Max-Age=${a.maxAge}`;
    if (a.maxAge === 0) out += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  }
  if (a.httpOnly) out += '; HttpOnly';
  if (a.secure) out += '; Secure';
  if (a.sameSite) out += `; SameSite=${a.sameSite}`;
  return out;
}

/** The Cookie header without the named cookies, or undefined when nothing is left. */
export function cookieHeaderWithout(header: string | string[] | undefined, drop: (name: string) => boolean): string | undefined {
  if (!header) return undefined;
  const kept: string[] = [];
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const trimmed = part.trim();
      if (!trimmed) continue;
      const eq = trimmed.indexOf('=');
      const name = eq === -1 ? trimmed : trimmed.slice(0, eq);
      if (!drop(name)) kept.push(trimmed);
    }
  }
  return kept.length ? kept.join('; ') : undefined;
}
