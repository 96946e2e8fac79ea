/**
 * Every error a client can see is a GatewayError: status, a JSON `message`
 * (Kong's words where Kong has words), optional RFC 6750 challenge, and a log
 * reason that never reaches the client. One filter (gateway-exception.filter.ts)
 * turns them into responses; nothing else writes error responses.
 */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    /** The `message` of the JSON body. */
    readonly publicMessage: string,
    options: {
      /** Why, for the log line only (never sent to the client). */
      reason?: string;
      headers?: Record<string, string>;
      /** Extra members of the JSON body (e.g. RFC 6749 `error`). */
      body?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(options.reason ?? publicMessage, { cause: options.cause });
    this.name = new.target.name;
    this.headers = options.headers;
    this.body = options.body;
  }
  readonly headers?: Record<string, string>;
  readonly body?: Record<string, unknown>;
}

// 431 (oversized headers) and 400 for malformed requests are answered before any handler runs,
// by clientErrorResponse in proxy/proxy.server.ts: Node's parser refuses them.

export class NoRouteError extends GatewayError {
  constructor() {
    super(404, 'no Route matched with those values', { reason: 'no route matched' });
  }
}

/** The upstream refused the connection, reset it, or answered with something that is not HTTP. */
export class BadGatewayError extends GatewayError {
  constructor(reason: string, cause?: unknown) {
    super(502, 'An invalid response was received from the upstream server', { reason, cause });
  }
}

/** Something the gateway needs (an IdP, a session store, DNS) is unavailable: retry later, keep your token. */
export class ServiceUnavailableError extends GatewayError {
  constructor(publicMessage: string, reason: string, cause?: unknown) {
    super(503, publicMessage, { reason, cause, headers: { 'retry-after': '5' } });
  }
}

export class GatewayTimeoutError extends GatewayError {
  constructor(reason: string, cause?: unknown) {
    super(504, 'The upstream server is timing out', { reason, cause });
  }
}
