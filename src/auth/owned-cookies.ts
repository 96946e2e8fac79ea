import type { CookieFilter } from '../proxy/forwarding-headers.js';
import { cookieHeaderWithout } from './cookies.js';

/** Login-transaction cookies: one per login in progress, named after a hash of its `state`. */
export const TRANSACTION_COOKIE_PREFIX = 'gatehouse_auth_';

/**
 * Every cookie name the gateway sets, known at load: each plugin instance's
 * session cookie (its chunks `name_2`, `name_3`, … and its `__Host-`/`__Secure-`
 * spellings included) and the login-transaction cookies. None of them is ever
 * the upstream's business — a session cookie carries the refresh token — so
 * they are removed from the Cookie header of every forwarded request, on every
 * route, whether or not the route runs the plugin that set them.
 *
 * The common request has no Cookie header, or one without any of these names:
 * one regular-expression test decides that, and the header is passed on as it
 * came.
 */
export class OwnedCookies implements CookieFilter {
  private readonly names = new Set<string>();
  private mention!: RegExp;
  /** Sets made by `with()`: they own whatever this set comes to own. */
  private readonly derived = new Set<WeakRef<OwnedCookies>>();

  constructor(sessionCookieNames: Iterable<string>, extraNames: Iterable<string> = []) {
    this.add([...sessionCookieNames, ...extraNames]);
  }

  /**
   * Owns `names` from now on (a reloaded config's new plugin instances), here
   * and in every set derived with `with()`. Never forgets a name: a cookie a
   * previous config set may still be in browsers and carries a token.
   */
  add(names: Iterable<string>): void {
    const before = this.names.size;
    const added = [...names].map(unprefixed);
    for (const n of added) this.names.add(n);
    if (this.mention && this.names.size === before) return;
    const alternatives = [...this.names].map(escapeRegExp);
    alternatives.push(TRANSACTION_COOKIE_PREFIX);
    this.mention = new RegExp(`(?:^|[;\\s])(?:__Host-|__Secure-)?(?:${alternatives.join('|')})`);
    for (const ref of this.derived) {
      const d = ref.deref();
      if (d) d.add(added);
      else this.derived.delete(ref);
    }
  }

  /** The same set plus `names` (e.g. a route's bearer-token cookie when credentials are hidden). */
  with(names: Iterable<string>): OwnedCookies {
    const d = new OwnedCookies(this.names, names);
    this.derived.add(new WeakRef(d));
    return d;
  }

  isOwned = (name: string): boolean => {
    const n = unprefixed(name);
    if (n.startsWith(TRANSACTION_COOKIE_PREFIX) || this.names.has(n)) return true;
    const chunk = /^(.+)_\d{1,2}$/.exec(n);
    return chunk !== null && this.names.has(chunk[1]);
  };

  filter(value: string): string | undefined {
    if (!this.mention.test(value)) return value;
    return cookieHeaderWithout(value, this.isOwned);
  }
}

/** RFC 6265bis §4.1.3: the prefixes only constrain how a cookie was set; the name behind them is the same cookie to us. */
function unprefixed(name: string): string {
  if (name.startsWith('__Host-')) return name.slice(7);
  if (name.startsWith('__Secure-')) return name.slice(9);
  return name;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
