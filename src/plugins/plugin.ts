import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../common/request-context.js';

/** The access phase answered the request itself (a redirect to log in, a preflight, a cached response). */
export const RESPONDED = 'responded';

/**
 * What an access step says: nothing (go on, synchronously — the common case
 * costs no promise), RESPONDED, or a promise of either. Refusals are thrown
 * GatewayErrors, which the one error mapping turns into responses.
 */
export type AccessResult = void | typeof RESPONDED | Promise<void | typeof RESPONDED>;

/** Sees the upstream response body as it streams to the client (e.g. to store it). */
export interface ResponseBodyTap {
  data(chunk: Buffer): void;
  /** The whole body has been sent to the client. */
  end(): void;
  /** The exchange failed or the client went away: what was seen is incomplete. */
  abort(): void;
}

/**
 * One plugin instance compiled for one route: the phases it takes part in,
 * after Kong's (access → header_filter/body_filter → log).
 */
export interface CompiledPlugin {
  readonly name: string;
  /** Kong's PRIORITY: higher runs first in every phase. */
  readonly priority: number;
  /** Before forwarding: may answer (RESPONDED), refuse (throw), or edit what is sent upstream (`ctx`). */
  access?(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): AccessResult;
  /**
   * The upstream's status and headers are known and not yet sent: `headers`
   * (Node's flat `[name, value, …]` list) may be edited in place. May return a
   * tap that sees the body as it streams.
   */
  response?(ctx: RequestContext, status: number, headers: string[]): ResponseBodyTap | void;
  /** After the response has finished or been aborted. */
  log?(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void;
}

/** Where a plugin instance applies: what compile() may want to know about its route. */
export interface PluginScope {
  /** The route's name (its position in the file when unnamed). */
  route: string;
  /** The service's name. */
  service: string;
}

/**
 * A plugin: a Nest provider that turns one instance's validated config into a
 * CompiledPlugin, once per route at load. Its config schema lives beside it and
 * is listed in PLUGIN_SCHEMAS (plugin-schemas.ts), so a bad config is a load
 * error with its path like any other.
 */
export interface GatewayPlugin<Config = unknown> {
  readonly name: string;
  readonly priority: number;
  compile(config: Config, scope: PluginScope): CompiledPlugin;
}

/** The injection token under which every plugin provider is collected. */
export const GATEWAY_PLUGINS = Symbol('GATEWAY_PLUGINS');
