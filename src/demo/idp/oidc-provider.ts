import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

export type DemoIdpLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/** The parts of an oidc-provider instance callers use; it is untyped upstream. */
export interface OidcProvider {
  readonly issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: any[]) => void): unknown;
  [member: string]: any;
}

export interface OidcProviderModule {
  Provider: new (issuer: string, config: object) => OidcProvider;
  /** oidc-provider's OAuth error classes (`InvalidRequest`, `InvalidGrant`, …). */
  errors: Record<string, any>;
}

/**
 * oidc-provider 9 supports Node 22+, prints a notice on import on Node 20 and
 * ships no types. It is imported lazily (only the demo and tests need it) with
 * that one notice routed to the logger, so the gateway's stderr stays clean.
 */
let loaded: Promise<OidcProviderModule> | undefined;
export function loadOidcProvider(logger?: DemoIdpLogger): Promise<OidcProviderModule> {
  loaded ??= (async () => {
    const specifier = 'oidc-provider';
    const original = console.warn;
    console.warn = (...args: unknown[]) => {
      const text = args.map(String).join(' ');
      if (text.includes('oidc-provider')) logger?.debug({ notice: text.replace(/\x1b\[[0-9;]*m/g, '') }, 'demo idp: oidc-provider notice');
      else original(...args);
    };
    try {
      const mod = await import(specifier);
      return { Provider: mod.Provider ?? mod.default, errors: mod.errors };
    } finally {
      console.warn = original;
    }
  })();
  return loaded;
}
