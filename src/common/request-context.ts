import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../auth/principal.js';
import type { CookieFilter, HeaderEdits } from '../proxy/forwarding-headers.js';
import type { RouteMatch } from '../proxy/route-table.js';
import type { RequestSpans } from '../telemetry/otel.tracing.js';

/**
 * Per-request state, created once when the request arrives and hung off the
 * raw request. Guards, the proxy and the access log read it; nothing re-parses.
 */
export class RequestContext {
  readonly startedAt = performance.now();
  /** Normalised request path (no query) and the raw query string including "?" (or ""). */
  path = '';
  query = '';
  match?: RouteMatch;
  upstreamStartedAt = 0;
  upstreamLatencyMs?: number;
  /** Header changes the route's plugins ask for (identity headers set, client copies removed). */
  headerEdits?: HeaderEdits;
  /** Replaces the gateway-wide filter of its own cookies for this request (hide_credentials with a bearer-token cookie). */
  cookieFilter?: CookieFilter;
  /** Headers the gateway adds to the client response (session cookies, no-store on login callbacks). */
  responseHeaders?: Record<string, string | string[]>;
  /** The authenticated caller, set by the openid-connect guard. */
  principal?: Principal;
  /** Who called (the `credential_claim` of a verified token), for logs. */
  caller?: string;
  /** Why the request was refused, for the access log. */
  denial?: string;
  /**
   * What a plugin's access step leaves for its own later phases, by plugin
   * name. Declared here rather than added by each plugin, so every context has
   * the same shape (a field added on some requests only would make V8's
   * property lookups on every context polymorphic).
   */
  pluginState?: Record<string, unknown>;
  /** The W3C trace id of this request, for the access log: set when the request is traced or forwarded (src/telemetry). */
  traceId?: string;
  /** The request's spans, only while spans are recorded (OTEL_EXPORTER_OTLP_ENDPOINT set). */
  spans?: RequestSpans;
  constructor(
    readonly requestId: string,
    /** True when the connection's peer is in GATEHOUSE_TRUSTED_IPS. */
    readonly peerTrusted: boolean,
  ) {}
}

declare module 'node:http' {
  interface IncomingMessage {
    gatehouse?: RequestContext;
  }
}

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** A trusted proxy's request id is kept; anyone else's is replaced, so ids in logs can be believed. */
export function requestIdFor(req: IncomingMessage, peerTrusted: boolean): string {
  if (peerTrusted) {
    const sent = req.headers['x-request-id'];
    if (typeof sent === 'string' && REQUEST_ID.test(sent)) return sent;
  }
  return randomUUID();
}
