import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenHttp } from '../listen.js';
import { DEMO_USERS, DemoAccounts, type DemoUser } from './accounts.js';
import {
  DEFAULT_ACCESS_TOKEN_TTL,
  DEFAULT_RESOURCE,
  providerConfiguration,
  type DemoIdpClient,
  type DemoIdpSettings,
} from './configuration.js';
import { send } from './http.js';
import { handleInteraction, matchInteraction } from './interactions.js';
import { INTROSPECTION_PATH, JwtIntrospection, REVOCATION_PATH } from './jwt-introspection.js';
import { generateSigningKeys, signingAlgorithm, type JwkSet } from './keys.js';
import { errorPage } from './login-page.js';
import { MemoryStorage } from './memory.adapter.js';
import { loadOidcProvider, type DemoIdpLogger, type OidcProvider } from './oidc-provider.js';
import { registerPasswordGrant } from './password.grant.js';

/**
 * The built-in demo's OpenID Provider: oidc-provider 9 configured like a
 * small Keycloak realm, for `npm start` with no config and for the gateway's
 * tests. DEVELOPMENT ONLY: in-memory state, users in code, keys and secrets
 * generated at start.
 *
 * What it speaks: authorization code flow with PKCE (S256, required), RFC 9207
 * `iss` in authorization responses, RFC 9068 JWT access tokens (`typ: at+jwt`)
 * for one resource server (RFC 8707, defaulted, so clients need not send
 * `resource`), refresh tokens, RFC 7662 introspection, RFC 7009 revocation,
 * RP-initiated logout, and a demo-only password grant for one-command tokens.
 *
 * Access tokens are JWTs with an `aud`, so the userinfo endpoint rejects them
 * (oidc-provider only serves userinfo for audience-less tokens); the ID token
 * carries every claim the granted scopes allow instead.
 *
 * Laid out as oidc-provider's own `example/`: configuration.ts (the provider
 * configuration), accounts.ts (users and claims), interactions.ts and
 * login-page.ts (login and consent), password.grant.ts, jwt-introspection.ts,
 * memory.adapter.ts (storage); this file wires them to one HTTP server.
 */

export { DEMO_API_SCOPE, DEMO_PASSWORD, DEMO_USERS, STANDARD_SCOPES, type DemoUser } from './accounts.js';
export { DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_RESOURCE, DEMO_IDP_COOKIE_PREFIX, type DemoIdpClient } from './configuration.js';
export { generateSigningKeys, publicJwks, type JwkSet } from './keys.js';
export type { OidcProvider } from './oidc-provider.js';

export interface DemoIdpOptions {
  /** Interface to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Override the issuer URL (default `http://<host>:<port>`, with a wildcard host shown as `localhost`). */
  issuer?: string;
  clients: DemoIdpClient[];
  /** Default: DEMO_USERS. */
  users?: readonly DemoUser[];
  /** Private signing keys; default: a fresh RS256 and ES256 key. */
  jwks?: JwkSet;
  /** Seconds (default DEFAULT_ACCESS_TOKEN_TTL). */
  accessTokenTtl?: number;
  /** Issue refresh tokens to clients allowed the refresh_token grant (default true). */
  refreshTokens?: boolean;
  /** Resource indicator and `aud` of every access token (default DEFAULT_RESOURCE). */
  resource?: string;
  /** Text under the login form (the demo lists its users there). */
  loginHint?: string;
  logger?: DemoIdpLogger;
  /** Do not keep the process alive (the built-in demo sets this). */
  unref?: boolean;
}

export interface DemoIdp {
  issuer: string;
  port: number;
  /** The resource indicator, i.e. the `aud` of access tokens. */
  resource: string;
  /** The provider currently answering (replaced by rotateKeys). */
  readonly provider: OidcProvider;
  /** The private key set currently signing (replaced by rotateKeys). */
  readonly jwks: JwkSet;
  users: readonly DemoUser[];
  /**
   * Signs with new keys from now on, on the same port, keeping every session,
   * grant and token (state lives outside the provider). Only the new set is
   * published: pass `[...newKeys, ...idp.jwks.keys]` to keep old tokens verifiable.
   * Without an argument, fresh keys are generated. Returns the set in use.
   */
  rotateKeys(newJwks?: JwkSet): Promise<JwkSet>;
  stop(): Promise<void>;
}

export async function startDemoIdp(options: DemoIdpOptions): Promise<DemoIdp> {
  const { Provider, errors } = await loadOidcProvider(options.logger);
  const host = options.host ?? '127.0.0.1';
  const users = options.users ?? DEMO_USERS;
  const resource = options.resource ?? DEFAULT_RESOURCE;
  const log = options.logger;
  const storage = new MemoryStorage();

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log?.error({ err }, 'demo idp: request failed');
      if (!res.headersSent) send(res, 500, errorPage({ error: 'server_error', error_description: 'unexpected error' }));
      else res.destroy();
    });
  });
  const port = await listenHttp(server, host, options.port ?? 0, options.unref);
  const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const settings: DemoIdpSettings = {
    issuer: (options.issuer ?? `http://${urlHost}:${port}`).replace(/\/$/, ''),
    clients: options.clients,
    accounts: new DemoAccounts(users),
    resource,
    accessTokenTtl: options.accessTokenTtl ?? DEFAULT_ACCESS_TOKEN_TTL,
    refreshTokens: options.refreshTokens ?? true,
    cookieKeys: [randomBytes(32).toString('base64url')],
    loginHint: options.loginHint,
    log,
  };
  const { issuer } = settings;

  let jwks = options.jwks ?? (await generateSigningKeys());
  let provider: OidcProvider;
  let callback: (req: IncomingMessage, res: ServerResponse) => void;
  const introspection = new JwtIntrospection(settings, () => jwks, () => callback);

  const build = (keys: JwkSet): OidcProvider => {
    const signingAlg = signingAlgorithm(keys);
    const p: OidcProvider = new Provider(issuer, providerConfiguration(settings, keys, signingAlg, storage, errors));
    // Koa would print server errors to stderr; route them to the logger instead.
    p.silent = true;
    p.on('server_error', (_ctx: unknown, err: Error) => log?.error({ err }, 'demo idp: server error'));
    p.on('grant.error', (_ctx: unknown, err: any) => log?.debug({ error: err?.error, error_description: err?.error_description }, 'demo idp: token request refused'));
    registerPasswordGrant(p, settings, signingAlg, errors);
    return p;
  };

  const install = async (keys: JwkSet) => {
    const next = build(keys);
    // Validate every client now, so bad metadata fails at start rather than at the first login.
    for (const c of options.clients) {
      if (!(await next.Client.find(c.client_id))) throw new Error(`demo idp: client ${c.client_id} is invalid`);
    }
    provider = next;
    callback = next.callback();
    jwks = keys;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && (path === INTROSPECTION_PATH || path === REVOCATION_PATH)) {
      return introspection.handle(req, res, path);
    }
    const interaction = matchInteraction(path);
    if (!interaction) return callback(req, res);
    return handleInteraction(provider, settings, req, res, interaction.uid, interaction.action);
  }

  await install(jwks);
  log?.debug({ issuer, resource }, 'demo idp: started');

  let stopped: Promise<void> | undefined;
  return {
    issuer,
    port,
    resource,
    users,
    get provider() {
      return provider;
    },
    get jwks() {
      return jwks;
    },
    async rotateKeys(newJwks?: JwkSet) {
      await install(newJwks ?? (await generateSigningKeys()));
      log?.debug({ kids: jwks.keys.map((k) => k.kid) }, 'demo idp: signing keys rotated');
      return jwks;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
