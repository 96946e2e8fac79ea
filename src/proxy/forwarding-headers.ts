import type { IncomingMessage } from 'node:http';
import type { BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * Header rules between client, gateway and upstream (RFC 9110 §7.6.1, §7.6.2).
 * Pure functions: they take what the connection says and return what to send.
 */

/** Hop-by-hop headers never forwarded in either direction (RFC 9110 §7.6.1, plus the de-facto ones). */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // The gateway answered the client's 100-continue itself; the upstream request is a new exchange.
  'expect',
]);

/**
 * The headers upstreamRequestHeaders adds to upstream requests, by these exact (lower-case) names. The W3C Trace
 * Context pair is the client's only after checking it (src/telemetry/trace-context.ts), or the gateway's own.
 */
export const GATEWAY_UPSTREAM_HEADERS: readonly string[] = [
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-path',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
];

/** Headers the gateway sets itself, or that would contradict what it sets; whatever a client sent under these names is dropped first. */
const GATEWAY_OWNED = new Set(['host', 'x-forwarded-prefix', 'forwarded', ...GATEWAY_UPSTREAM_HEADERS]);

/** `X_User-ID` → `x-user-id`: how the gateway compares header names it owns, so `_` spellings cannot slip past. */
export function canonicalHeaderName(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/**
 * Headers through which an upstream could be told who the caller is, by the
 * gateway or by something in front of it: Kong's (`X-Consumer-*`,
 * `X-Credential-Identifier`, `X-Userinfo`, …), oauth2-proxy's and nginx
 * auth_request's (`X-Auth-Request-*`, `X-Forwarded-User`, …), Kubernetes'
 * authenticating-proxy headers (`X-Remote-*`), and the method and URL
 * overrides some frameworks honour (a client could turn an authorized GET into
 * a DELETE, or a checked path into another). On a route the gateway
 * authenticates, no client copy of any of them reaches the upstream, whichever
 * headers the route's plugin itself sets.
 */
export const IDENTITY_HEADERS: HeaderStripRule = {
  names: new Set([
    'x-userinfo',
    'x-id-token',
    'x-access-token',
    'x-credential-identifier',
    'x-credential-username',
    'x-anonymous-consumer',
    'x-forwarded-user',
    'x-forwarded-email',
    'x-forwarded-groups',
    'x-forwarded-preferred-username',
    'x-forwarded-access-token',
    'x-http-method-override',
    'x-http-method',
    'x-method-override',
    'x-original-url',
    'x-original-uri',
    'x-original-method',
    'x-rewrite-url',
  ]),
  prefixes: ['x-consumer-', 'x-authenticated-', 'x-auth-request-', 'x-remote-'],
};

/** Canonical header names (see canonicalHeaderName) and name prefixes a route drops from what the client sent. */
export interface HeaderStripRule {
  names: ReadonlySet<string>;
  prefixes: readonly string[];
}

/** IDENTITY_HEADERS plus the names a route's plugin sets itself. */
export function identityStripRule(pluginHeaders: Iterable<string>): HeaderStripRule {
  const names = new Set(IDENTITY_HEADERS.names);
  for (const h of pluginHeaders) names.add(canonicalHeaderName(h));
  return { names, prefixes: IDENTITY_HEADERS.prefixes };
}

function stripped(rule: HeaderStripRule, canonical: string): boolean {
  if (rule.names.has(canonical)) return true;
  // Every prefix starts with "x-": most headers are decided by their first character.
  if (canonical.charCodeAt(0) !== 120 /* x */) return false;
  for (const p of rule.prefixes) if (canonical.startsWith(p)) return true;
  return false;
}

/** Filters the gateway's own cookies out of a Cookie header value (see OwnedCookies). */
export interface CookieFilter {
  /** The value without the gateway's cookies; undefined when nothing is left. */
  filter(value: string): string | undefined;
}

export interface ConnectionFacts {
  /** The TCP peer (the client, or the proxy in front of us). */
  peer: string;
  peerTrusted: boolean;
  /** `http` or `https` as seen on our own socket. */
  scheme: 'http' | 'https';
  localPort: number;
  /** The normalised request path, as X-Forwarded-Path. */
  path: string;
  requestId: string;
  /** Value of the upstream Host header. */
  upstreamHost: string;
  /** The matched route's rule for identity headers (routes the gateway authenticates). */
  stripHeaders?: HeaderStripRule;
  /** The gateway's own cookies (sessions, login transactions), removed on every route. */
  ownedCookies?: CookieFilter;
  /** W3C `traceparent` / `tracestate` for the upstream (RequestTracing.upstream); the client's own are never copied unchecked. */
  traceparent?: string;
  tracestate?: string;
}

export interface HeaderEdits {
  /** Canonical names (see canonicalHeaderName) to drop from what the client sent. */
  remove?: ReadonlySet<string>;
  /** Headers to add after the client's were filtered. */
  add?: ReadonlyArray<readonly [string, string]>;
}

/**
 * Builds the upstream request headers as undici's flat `[name, value, ...]` list.
 * Order matters: the Connection-nominated names are collected first, the
 * client's headers filtered, and only then the gateway adds its own, so no
 * client header can remove or override what the gateway sets.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  facts: ConnectionFacts,
  edits?: HeaderEdits,
  /**
   * The request's Connection header as Node already parsed it (`req.headers.connection`), which spares
   * a pass over the raw headers; `null` (the default) means "not known: find it in rawHeaders".
   */
  connection: string | undefined | null = null,
): string[] {
  let nominated: Set<string> | undefined;
  let incoming: Record<'xff' | 'proto' | 'host' | 'port' | 'path' | 'realIp' | 'hostHeader', string | undefined> | undefined;
  const out: string[] = [];
  let sawAuthorization = false;

  if (connection === null) {
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (rawHeaders[i].length === 10 && rawHeaders[i].toLowerCase() === 'connection') nominated = connectionTokens(rawHeaders[i + 1], nominated);
    }
  } else if (connection !== undefined) {
    nominated = connectionTokens(connection);
  }

  for (let i = 0; i < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i];
    const value = rawHeaders[i + 1];
    // HTTP/2 pseudo-headers (RFC 9113 §8.3) are never forwarded as fields; `:authority` is the Host.
    if (raw.charCodeAt(0) === 58 /* : */) {
      if (raw === ':authority') {
        incoming ??= { xff: undefined, proto: undefined, host: undefined, port: undefined, path: undefined, realIp: undefined, hostHeader: undefined };
        incoming.hostHeader = value;
      }
      continue;
    }
    const name = raw.toLowerCase();
    // Host is the request's own, not a hop's: a client cannot nominate it away.
    if (HOP_BY_HOP.has(name) || (nominated?.has(name) && name !== 'host')) continue;
    // `X_Forwarded_For` counts as the gateway's header too: CGI-style upstreams read
    // `_` and `-` alike, so a spelling variant must not slip past as a spoofed value.
    const canonical = name.includes('_') ? canonicalHeaderName(name) : name;
    if (GATEWAY_OWNED.has(canonical)) {
      if (canonical === name && (facts.peerTrusted || name === 'host')) {
        incoming ??= { xff: undefined, proto: undefined, host: undefined, port: undefined, path: undefined, realIp: undefined, hostHeader: undefined };
        switch (name) {
          case 'x-forwarded-for': incoming.xff = incoming.xff ? `${incoming.xff}, ${value}` : value; break;
          case 'x-forwarded-proto': incoming.proto ??= value; break;
          case 'x-forwarded-host': incoming.host ??= value; break;
          case 'x-forwarded-port': incoming.port ??= value; break;
          case 'x-forwarded-path': incoming.path ??= value; break;
          case 'x-real-ip': incoming.realIp ??= value; break;
          case 'host': incoming.hostHeader ??= value; break;
        }
      }
      continue;
    }
    if (facts.stripHeaders && stripped(facts.stripHeaders, canonical)) continue;
    if (edits?.remove && edits.remove.has(canonical)) continue;
    if (name === 'cookie' && facts.ownedCookies) {
      const rest = facts.ownedCookies.filter(value);
      if (rest !== undefined) out.push(raw, rest);
      continue;
    }
    if (name === 'authorization') {
      // A singleton field (RFC 9110 §11.6.2): only the first, the one the gateway read and verified,
      // may reach the upstream; a second one could carry other credentials past the check.
      if (sawAuthorization) continue;
      sawAuthorization = true;
    }
    out.push(raw, value);
  }

  const trusted = facts.peerTrusted;
  const hostHeader = incoming?.hostHeader ?? '';
  out.push(
    'host', facts.upstreamHost,
    'x-forwarded-for', trusted && incoming?.xff ? `${incoming.xff}, ${facts.peer}` : facts.peer,
    'x-forwarded-proto', (trusted && incoming?.proto) || facts.scheme,
  );
  // An HTTP/1.0 request may have no Host at all: then there is no X-Forwarded-Host to send.
  const forwardedHost = (trusted && incoming?.host) || hostHeader;
  if (forwardedHost) out.push('x-forwarded-host', forwardedHost);
  out.push(
    'x-forwarded-port', (trusted && incoming?.port) || String(facts.localPort),
    'x-forwarded-path', (trusted && incoming?.path) || facts.path,
    'x-real-ip', (trusted && (incoming?.realIp || incoming?.xff?.split(',')[0].trim())) || facts.peer,
    'x-request-id', facts.requestId,
  );
  if (facts.traceparent !== undefined) {
    out.push('traceparent', facts.traceparent);
    if (facts.tracestate !== undefined) out.push('tracestate', facts.tracestate);
  }
  if (edits?.add) for (const [n, v] of edits.add) out.push(n, v);
  return out;
}

/** Tokens named in a Connection header; none for the everyday `keep-alive` / `close` (hop-by-hop anyway). */
function connectionTokens(value: string, into?: Set<string>): Set<string> | undefined {
  const lower = value.toLowerCase();
  if (lower === 'keep-alive' || lower === 'close') return into;
  for (const token of lower.split(',')) {
    const t = token.trim();
    if (t) (into ??= new Set()).add(t);
  }
  return into;
}

/**
 * The upstream's response headers as Node's flat `[name, value, …]` list, minus
 * hop-by-hop ones, any the upstream nominated in its own Connection header and
 * its X-Request-Id (the gateway's own is added). Works on undici's raw header
 * buffers: one pass, no intermediate object, repeated fields (Set-Cookie) kept
 * as they came. Only names as long as one of those it drops are lowercased and
 * compared; `Date`, `Content-Type`, `Content-Length`, … of most responses are not.
 */
export function clientResponseHeaders(raw: readonly (Buffer | string)[], requestId: string): string[] {
  let out: string[] = [];
  let nominated: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]);
    if (name.length < DROPPED_NAME_LENGTHS.length && DROPPED_NAME_LENGTHS[name.length] === 1) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) {
        if (lower === 'connection') nominated = connectionTokens(latin1(raw[i + 1]), nominated);
        continue;
      }
      if (lower === 'x-request-id') continue;
    }
    out.push(name, latin1(raw[i + 1]));
  }
  // Names in Connection other than keep-alive/close are rare: filter only then.
  if (nominated) out = out.filter((_, i, all) => !nominated.has((i % 2 === 0 ? all[i] : all[i - 1]).toLowerCase()));
  out.push('x-request-id', requestId);
  return out;
}

/** 1 at the lengths of HOP_BY_HOP's names and of `x-request-id`: a name of any other length is kept without a look. */
const DROPPED_NAME_LENGTHS = (() => {
  const lengths = new Uint8Array(32);
  for (const name of [...HOP_BY_HOP, 'x-request-id']) lengths[name.length] = 1;
  return lengths;
})();

/** A raw header as a string: undici's buffers are latin1 (RFC 9110 §5.5), decoded without Buffer#toString's argument handling. */
function latin1(value: Buffer | string): string {
  return typeof value === 'string' ? value : (value as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(0, value.length);
}

/**
 * The scheme the client used, as Kong's `forwarded_proto`: a trusted proxy's
 * X-Forwarded-Proto (it terminated TLS), otherwise whether our own socket is TLS.
 */
export function requestScheme(req: IncomingMessage, peerTrusted: boolean): 'http' | 'https' {
  if (peerTrusted) {
    const sent = req.headers['x-forwarded-proto'];
    if (typeof sent === 'string') {
      const first = sent.split(',', 1)[0].trim().toLowerCase();
      if (first === 'https' || first === 'http') return first;
    }
  }
  return (req.socket as TLSSocket).encrypted ? 'https' : 'http';
}

export function isTrustedPeer(list: BlockList, address: string | undefined): boolean {
  if (!address) return false;
  return list.check(address, address.includes(':') ? 'ipv6' : 'ipv4');
}
