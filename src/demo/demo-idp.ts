import { generateKeyPairSync, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import type { Logger } from 'pino';
import { errorPage, loginPage, logoutPage, postLogoutPage } from './login-page.js';
import { listenHttp } from './listen.js';

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
 */

/** The scope the demo's protected route requires; only Blog_with_scope is granted it. */
export const DEMO_API_SCOPE = 'kong_api_access';
export const DEMO_PASSWORD = 'veryComplexPa55word';
/** Cookie names are prefixed so they never collide with the gateway's `session*` / `gatehouse*` cookies on the same host. */
export const DEMO_IDP_COOKIE_PREFIX = '_demo_idp_';
/** Scopes every user is granted when asked; the rest come from `DemoUser.scopes`. */
export const STANDARD_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;
export const DEFAULT_ACCESS_TOKEN_TTL = 600;
export const DEFAULT_RESOURCE = 'http://localhost:8000';

export interface DemoUser {
  username: string;
  password: string;
  /** Stable subject identifier (Keycloak-style UUID). */
  sub: string;
  email: string;
  name: string;
  groups: string[];
  /** Published Keycloak-style as `realm_access.roles`. */
  roles: string[];
  /** Scopes beyond STANDARD_SCOPES this user may be granted (e.g. `kong_api_access`). */
  scopes: string[];
}

export const DEMO_USERS: readonly DemoUser[] = Object.freeze([
  {
    username: 'Blog_with_scope',
    password: DEMO_PASSWORD,
    sub: '5f0c8a1e-3b6d-4a47-9d1e-7c2b9e4f1a01',
    email: 'blog_with_scope@example.com',
    name: 'Blog With Scope',
    groups: ['bloggers'],
    roles: ['blog-reader', 'blog-writer'],
    scopes: [DEMO_API_SCOPE],
  },
  {
    username: 'Blog_without_scope',
    password: DEMO_PASSWORD,
    sub: '8b2e4d6f-1a3c-4e5b-8f7a-9c0d1e2f3a02',
    email: 'blog_without_scope@example.com',
    name: 'Blog Without Scope',
    groups: ['readers'],
    roles: ['blog-reader'],
    scopes: [],
  },
]);

export interface DemoIdpClient {
  client_id: string;
  /** Omit for a public client (token_endpoint_auth_method `none`). */
  client_secret?: string;
  client_name?: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  /** Default: `client_secret_basic` with a secret, `none` without. */
  token_endpoint_auth_method?: string;
  /** Default: authorization_code, refresh_token and the demo password grant. */
  grant_types?: string[];
}

export interface JwkSet {
  keys: JWK[];
}

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
  logger?: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** Do not keep the process alive (the built-in demo sets this). */
  unref?: boolean;
}

/** The parts of an oidc-provider instance callers use; it is untyped upstream. */
export interface OidcProvider {
  readonly issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: any[]) => void): unknown;
  [member: string]: any;
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

/** A fresh RS256 key (first: the default signing algorithm) and ES256 key, each with an RFC 7638 thumbprint `kid`. */
export async function generateSigningKeys(): Promise<JwkSet> {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }) as JWK;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JWK;
  const withKid = async (jwk: JWK, alg: string): Promise<JWK> => ({ ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' });
  return { keys: [await withKid(rsa, 'RS256'), await withKid(ec, 'ES256')] };
}

/** The public half of a private JWK set (what jwks_uri publishes). */
export function publicJwks(set: JwkSet): JwkSet {
  return {
    keys: set.keys.map(({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...pub }) => pub as JWK),
  };
}

export async function startDemoIdp(options: DemoIdpOptions): Promise<DemoIdp> {
  const { Provider, errors } = await loadOidcProvider(options.logger);
  const host = options.host ?? '127.0.0.1';
  const users = options.users ?? DEMO_USERS;
  const resource = options.resource ?? DEFAULT_RESOURCE;
  const accessTokenTtl = options.accessTokenTtl ?? DEFAULT_ACCESS_TOKEN_TTL;
  const refreshTokens = options.refreshTokens ?? true;
  const log = options.logger;
  // Cookie signing keys are generated at start and survive key rotation (sessions must too).
  const cookieKeys = [randomBytes(32).toString('base64url')];
  const storage = new MemoryStorage();
  const resourceScopes = new Set<string>(['openid', 'profile', 'email', ...users.flatMap((u) => u.scopes)]);

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log?.error({ err }, 'demo idp: request failed');
      if (!res.headersSent) send(res, 500, errorPage({ error: 'server_error', error_description: 'unexpected error' }));
      else res.destroy();
    });
  });
  const port = await listenHttp(server, host, options.port ?? 0, options.unref);
  const urlHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const issuer = (options.issuer ?? `http://${urlHost}:${port}`).replace(/\/$/, '');

  const findUser = (sub: string) => users.find((u) => u.sub === sub);
  const grantedScopes = (user: DemoUser) => new Set<string>([...STANDARD_SCOPES, ...user.scopes]);

  const account = (user: DemoUser) => ({
    accountId: user.sub,
    async claims() {
      return {
        sub: user.sub,
        name: user.name,
        preferred_username: user.username,
        email: user.email,
        email_verified: true,
        groups: [...user.groups],
        realm_access: { roles: [...user.roles] },
      };
    },
  });

  let jwks = options.jwks ?? (await generateSigningKeys());
  let provider: OidcProvider;
  let callback: (req: IncomingMessage, res: ServerResponse) => void;

  const build = (keys: JwkSet): OidcProvider => {
    const signingAlg = keys.keys.some((k) => k.kty === 'RSA') ? 'RS256' : 'ES256';
    const resourceServerInfo = () => ({
      scope: [...resourceScopes].join(' '),
      audience: resource,
      accessTokenFormat: 'jwt',
      accessTokenTTL: accessTokenTtl,
      jwt: { sign: { alg: signingAlg } },
    });

    const p: OidcProvider = new Provider(issuer, {
      responseTypes: ['code'],
      adapter: (model: string) => storage.adapter(model),
      clients: options.clients.map((c) => ({
        client_id: c.client_id,
        ...(c.client_secret ? { client_secret: c.client_secret } : {}),
        ...(c.client_name ? { client_name: c.client_name } : {}),
        redirect_uris: c.redirect_uris,
        post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
        token_endpoint_auth_method: c.token_endpoint_auth_method ?? (c.client_secret ? 'client_secret_basic' : 'none'),
        grant_types: c.grant_types ?? ['authorization_code', 'refresh_token', 'password'],
        response_types: ['code'],
        id_token_signed_response_alg: signingAlg,
      })),
      jwks: keys,
      cookies: {
        names: {
          session: `${DEMO_IDP_COOKIE_PREFIX}session`,
          interaction: `${DEMO_IDP_COOKIE_PREFIX}interaction`,
          resume: `${DEMO_IDP_COOKIE_PREFIX}interaction_resume`,
        },
        keys: cookieKeys,
        long: { httpOnly: true, sameSite: 'lax' },
        short: { httpOnly: true, sameSite: 'lax' },
      },
      // Keycloak-like claims: groups and realm_access.roles travel with `profile`.
      claims: {
        openid: ['sub'],
        profile: ['name', 'preferred_username', 'groups', 'realm_access'],
        email: ['email', 'email_verified'],
      },
      scopes: [...STANDARD_SCOPES],
      async findAccount(_ctx: unknown, sub: string) {
        const user = findUser(sub);
        return user ? account(user) : undefined;
      },
      // Keycloak puts identity claims into its access tokens too; so does the demo,
      // so `upstream_headers_claims: [email]` and roles/groups checks work with bearer tokens.
      async extraTokenClaims(_ctx: unknown, token: { accountId?: string; kind?: string }) {
        const user = token.accountId ? findUser(token.accountId) : undefined;
        if (!user) return undefined;
        return {
          email: user.email,
          name: user.name,
          preferred_username: user.username,
          groups: [...user.groups],
          realm_access: { roles: [...user.roles] },
        };
      },
      features: {
        devInteractions: { enabled: false },
        introspection: {
          enabled: true,
          // Any authenticated confidential client may introspect (as in Keycloak); public clients only their own tokens.
          async allowedPolicy(_ctx: unknown, client: any, token: any) {
            return !(client.clientAuthMethod === 'none' && token.clientId !== client.clientId);
          },
        },
        revocation: {
          enabled: true,
          async allowedPolicy(_ctx: unknown, client: any, token: any) {
            if (token.clientId === client.clientId) return true;
            if (client.clientAuthMethod === 'none') return false;
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          },
        },
        clientCredentials: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          async logoutSource(ctx: any, form: string) {
            ctx.type = 'html';
            ctx.set('content-security-policy', PAGE_CSP);
            ctx.body = logoutPage(form, ctx.host);
          },
          async postLogoutSuccessSource(ctx: any) {
            ctx.type = 'html';
            ctx.set('content-security-policy', PAGE_CSP);
            ctx.body = postLogoutPage(ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId);
          },
        },
        resourceIndicators: {
          enabled: true,
          // RFC 8707 made invisible: a client that sends no `resource` still gets a JWT for the gateway.
          async defaultResource() {
            return resource;
          },
          async useGrantedResource() {
            return true;
          },
          async getResourceServerInfo(_ctx: unknown, indicator: string) {
            if (indicator !== resource) throw new errors.InvalidTarget(`unknown resource indicator (this IdP serves ${resource})`);
            return resourceServerInfo();
          },
        },
        userinfo: { enabled: true },
      },
      pkce: { required: () => true },
      interactions: {
        url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
      },
      // Refresh tokens for every client allowed the grant, without requiring
      // offline_access (which oidc-provider drops unless prompt=consent), like Keycloak.
      async issueRefreshToken(_ctx: unknown, client: any) {
        return refreshTokens && client.grantTypeAllowed('refresh_token');
      },
      async expiresWithSession() {
        return false;
      },
      clientBasedCORS(_ctx: unknown, origin: string, client: any) {
        return client.redirectUris.some((uri: string) => URL.parse(uri)?.origin === origin);
      },
      async renderError(ctx: any, out: Record<string, unknown>) {
        ctx.type = 'html';
        ctx.set('content-security-policy', PAGE_CSP);
        ctx.body = errorPage(out);
      },
      ttl: {
        AccessToken: accessTokenTtl,
        AuthorizationCode: 60,
        ClientCredentials: accessTokenTtl,
        IdToken: 3600,
        Interaction: 3600,
        RefreshToken: 24 * 3600,
        Session: 24 * 3600,
        Grant: 24 * 3600,
        DeviceCode: 600,
        BackchannelAuthenticationRequest: 600,
        PreAuthorizedCode: 600,
      },
    });
    // Koa would print server errors to stderr; route them to the logger instead.
    p.silent = true;
    p.on('server_error', (_ctx: unknown, err: Error) => log?.error({ err }, 'demo idp: server error'));
    p.on('grant.error', (_ctx: unknown, err: any) => log?.debug({ error: err?.error, error_description: err?.error_description }, 'demo idp: token request refused'));

    // DEMO ONLY: Keycloak's "direct access grants" (the OAuth 2.0 password grant,
    // RFC 6749 §4.3, removed by OAuth 2.1). It exists so the README can show one
    // curl command that gets a token for a demo user. Never enable this in a real IdP.
    p.registerGrantType(
      'password',
      async (ctx: any) => {
        const { params, client } = ctx.oidc;
        if (!params.username || !params.password) {
          throw new errors.InvalidRequest('missing required parameter(s) (username, password)');
        }
        const user = users.find((u) => u.username === params.username);
        if (!user || !sameSecret(user.password, params.password)) {
          throw new errors.InvalidGrant('invalid username or password');
        }
        if (params.resource !== undefined && params.resource !== resource) {
          throw new errors.InvalidTarget(`unknown resource indicator (this IdP serves ${resource})`);
        }
        const allowed = grantedScopes(user);
        const requested: string[] = params.scope ? String(params.scope).split(' ').filter(Boolean) : [...allowed].filter((s) => s !== 'offline_access');
        const granted = requested.filter((s) => allowed.has(s));
        const grantedResource = granted.filter((s) => resourceScopes.has(s));

        const grant = new p.Grant({ accountId: user.sub, clientId: client.clientId });
        const oidcScopes = granted.filter((s) => (STANDARD_SCOPES as readonly string[]).includes(s));
        if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
        if (grantedResource.length) grant.addResourceScope(resource, grantedResource.join(' '));
        const grantId = await grant.save();
        ctx.oidc.entity('Account', account(user));
        ctx.oidc.entity('Grant', grant);

        const at = new p.AccessToken({ accountId: user.sub, client, grantId, gty: 'password' });
        at.resourceServer = new p.ResourceServer(resource, resourceServerInfo());
        at.scope = grantedResource.join(' ') || undefined;
        ctx.oidc.entity('AccessToken', at);
        const accessToken = await at.save();

        let refreshToken: string | undefined;
        if (refreshTokens && client.grantTypeAllowed('refresh_token')) {
          const rt = new p.RefreshToken({
            accountId: user.sub,
            client,
            grantId,
            gty: 'password',
            resource,
            scope: granted.join(' '),
            expiresWithSession: false,
            rotations: 0,
          });
          ctx.oidc.entity('RefreshToken', rt);
          refreshToken = await rt.save();
        }

        let idToken: string | undefined;
        if (granted.includes('openid')) {
          const token = new p.IdToken(await account(user).claims(), { ctx });
          token.scope = oidcScopes.join(' ');
          idToken = await token.issue({ use: 'idtoken' });
        }

        ctx.body = {
          access_token: accessToken,
          expires_in: at.expiration,
          token_type: at.tokenType,
          scope: at.scope,
          ...(refreshToken ? { refresh_token: refreshToken } : {}),
          ...(idToken ? { id_token: idToken } : {}),
        };
      },
      ['username', 'password', 'scope', 'resource'],
    );
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
    if (req.method === 'POST' && (path === '/token/introspection' || path === '/token/revocation')) {
      return tokenEndpointExtension(req, res, path);
    }
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/abort)?$/.exec(path);
    if (!m) return callback(req, res);
    const [, uid, action] = m;
    const current = provider;

    let details: any;
    try {
      details = await current.interactionDetails(req, res);
    } catch (err) {
      log?.debug({ err: (err as Error).message }, 'demo idp: interaction not found');
      return send(res, 400, errorPage({ error: 'invalid_request', error_description: 'this sign-in attempt expired or was not found; start again from the application' }));
    }
    if (details.uid !== uid) {
      return send(res, 400, errorPage({ error: 'invalid_request', error_description: 'interaction mismatch; start again from the application' }));
    }
    const client = await current.Client.find(details.params.client_id);
    const clientName: string = client?.clientName ?? details.params.client_id;

    if (action === '/abort') {
      return current.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
    }

    if (action === '/login') {
      if (req.method !== 'POST') return send(res, 405, errorPage({ error: 'invalid_request', error_description: 'use the sign-in form' }), { allow: 'POST' });
      if (details.prompt.name !== 'login') return redirect(res, `/interaction/${uid}`);
      const form = new URLSearchParams(await readBody(req, 16 * 1024));
      const username = form.get('username') ?? '';
      const password = form.get('password') ?? '';
      const user = users.find((u) => u.username === username);
      if (!user || !sameSecret(user.password, password)) {
        log?.debug({ username }, 'demo idp: wrong username or password');
        return send(res, 200, loginPage({ action: `/interaction/${uid}/login`, clientName, username, error: 'Invalid username or password.', hint: options.loginHint }));
      }
      return current.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, errorPage({ error: 'invalid_request' }), { allow: 'GET' });
    switch (details.prompt.name) {
      case 'login':
        return send(res, 200, loginPage({ action: `/interaction/${uid}/login`, clientName, hint: options.loginHint, username: details.params.login_hint }));
      case 'consent': {
        // Consent is auto-approved, limited to what the user may have: a scope the
        // user is not granted is recorded as rejected, so it is simply absent from
        // the tokens (the gateway, not the IdP, answers 403).
        const user = findUser(details.session?.accountId);
        if (!user) return send(res, 400, errorPage({ error: 'invalid_request', error_description: 'unknown account' }));
        const allowed = grantedScopes(user);
        const grant = details.grantId
          ? await current.Grant.find(details.grantId)
          : new current.Grant({ accountId: user.sub, clientId: details.params.client_id });
        const d = details.prompt.details ?? {};
        if (d.missingOIDCScope) {
          const [ok, no] = partition(d.missingOIDCScope as string[], (s) => allowed.has(s));
          if (ok.length) grant.addOIDCScope(ok.join(' '));
          if (no.length) grant.rejectOIDCScope(no.join(' '));
        }
        if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries((d.missingResourceScopes ?? {}) as Record<string, string[]>)) {
          const [ok, no] = partition(scopes, (s) => allowed.has(s));
          if (ok.length) grant.addResourceScope(indicator, ok.join(' '));
          if (no.length) grant.rejectResourceScope(indicator, no.join(' '));
        }
        const grantId = await grant.save();
        return current.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      default:
        return send(res, 501, errorPage({ error: 'invalid_request', error_description: `prompt ${details.prompt.name} is not supported by the demo IdP` }));
    }
  }

  /**
   * oidc-provider refuses to introspect or revoke JWT access tokens ("structured
   * tokens") and does not store them. The demo answers those requests itself, so
   * RFC 7662 introspection and RFC 7009 revocation work for its JWT access tokens
   * as they do with Keycloak: the JWT is verified against the current keys, and a
   * revoked `jti` is remembered until the token expires. Any other token (refresh
   * tokens, opaque tokens) goes to oidc-provider unchanged.
   */
  const revokedJtis = new Map<string, number>();
  async function tokenEndpointExtension(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const raw = await readBody(req, 56 * 1024);
    const form = new URLSearchParams(raw);
    const token = form.get('token');
    const urlencoded = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    if (!urlencoded || !token || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) return callback(replayRequest(req, raw), res);

    const caller = authenticateClient(req, form);
    if (!caller) {
      return sendJson(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' }, { 'www-authenticate': 'Basic realm="demo-idp"' });
    }
    let payload: Record<string, unknown> | undefined;
    try {
      ({ payload } = await jwtVerify(token, createLocalJWKSet(publicJwks(jwks)), { issuer, typ: 'at+jwt' }));
    } catch {
      payload = undefined; // not ours, tampered, expired or signed by a rotated-out key
    }
    const jti = typeof payload?.jti === 'string' ? payload.jti : undefined;
    const ownToken = payload?.client_id === caller.client_id;

    if (path === '/token/revocation') {
      if (!payload || !jti) return sendJson(res, 200, {}); // RFC 7009 §2.2: invalid tokens are not an error
      if (!ownToken) return sendJson(res, 400, { error: 'invalid_request', error_description: 'client is not authorized to revoke the presented token' });
      const now = Date.now();
      for (const [k, exp] of revokedJtis) if (exp * 1000 <= now) revokedJtis.delete(k);
      revokedJtis.set(jti, Number(payload.exp) || Math.floor(now / 1000) + accessTokenTtl);
      return sendJson(res, 200, {});
    }
    const active = !!payload && !!jti && !revokedJtis.has(jti) && (caller.confidential || ownToken);
    return sendJson(res, 200, active ? { active: true, ...payload, token_type: 'Bearer' } : { active: false });
  }

  /** client_secret_basic (RFC 6749 §2.3.1, form-encoded id and secret) or client_secret_post; public clients by client_id. */
  function authenticateClient(req: IncomingMessage, form: URLSearchParams): { client_id: string; confidential: boolean } | undefined {
    let id: string | null = form.get('client_id');
    let secret: string | null = form.get('client_secret');
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return undefined;
      try {
        id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
        secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      } catch {
        return undefined;
      }
    }
    const client = options.clients.find((c) => c.client_id === id);
    if (!client) return undefined;
    if (!client.client_secret) return secret ? undefined : { client_id: client.client_id, confidential: false };
    return sameSecret(client.client_secret, secret) ? { client_id: client.client_id, confidential: true } : undefined;
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

/** Pages may style themselves inline and nothing else: no scripts, no fetches, no frames. */
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'";

function send(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(html);
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
    'content-security-policy': PAGE_CSP,
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': text.length, 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/**
 * A stand-in for a request whose body was already read, for oidc-provider to
 * read again. (An IncomingMessage built on the same socket would close the
 * connection when destroyed, so this is a plain stream with the request's fields.)
 */
function replayRequest(req: IncomingMessage, body: string): IncomingMessage {
  const headers: Record<string, unknown> = { ...req.headers, 'content-length': String(Buffer.byteLength(body)) };
  delete headers['transfer-encoding'];
  const copy = Object.assign(Readable.from([Buffer.from(body)], { objectMode: false }), {
    method: req.method,
    url: req.url,
    httpVersion: req.httpVersion,
    httpVersionMajor: req.httpVersionMajor,
    httpVersionMinor: req.httpVersionMinor,
    socket: req.socket,
    connection: req.socket,
    headers,
    rawHeaders: [] as string[],
  });
  return copy as unknown as IncomingMessage;
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': 0 });
  res.end();
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function partition<T>(items: T[], pred: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const i of items) (pred(i) ? yes : no).push(i);
  return [yes, no];
}

/** Constant-time comparison of two secrets of any length. */
function sameSecret(expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/**
 * oidc-provider 9 supports Node 22+, prints a notice on import on Node 20 and
 * ships no types. It is imported lazily (only the demo and tests need it) with
 * that one notice routed to the logger, so the gateway's stderr stays clean.
 */
let loaded: Promise<{ Provider: new (issuer: string, config: object) => OidcProvider; errors: Record<string, any> }> | undefined;
function loadOidcProvider(logger?: DemoIdpOptions['logger']) {
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

/**
 * oidc-provider adapter backed by one Map shared by every provider instance of
 * this IdP (so key rotation keeps sessions and tokens). Expired entries are
 * dropped when read and swept every 1000 writes.
 */
class MemoryStorage {
  private readonly entries = new Map<string, { payload: Record<string, any>; expiresAt: number }>();
  /** grantId → keys of the tokens issued under it (for revokeByGrantId). */
  private readonly grants = new Map<string, Set<string>>();
  /** Session uid / device user code → storage key. */
  private readonly index = new Map<string, string>();
  private writes = 0;

  adapter(model: string) {
    const key = (id: string) => `${model}:${id}`;
    return {
      upsert: async (id: string, payload: Record<string, any>, expiresIn?: number) => {
        const k = key(id);
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
        this.entries.set(k, { payload: structuredClone(payload), expiresAt });
        if (payload.grantId) {
          let set = this.grants.get(payload.grantId);
          if (!set) this.grants.set(payload.grantId, (set = new Set()));
          set.add(k);
        }
        if (model === 'Session' && payload.uid) this.index.set(`uid:${payload.uid}`, k);
        if (payload.userCode) this.index.set(`userCode:${payload.userCode}`, k);
        if (++this.writes % 1000 === 0) this.sweep();
      },
      find: async (id: string) => this.get(key(id)),
      findByUid: async (uid: string) => this.get(this.index.get(`uid:${uid}`)),
      findByUserCode: async (code: string) => this.get(this.index.get(`userCode:${code}`)),
      consume: async (id: string) => {
        const e = this.entries.get(key(id));
        if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
      },
      destroy: async (id: string) => {
        this.entries.delete(key(id));
      },
      revokeByGrantId: async (grantId: string) => {
        for (const k of this.grants.get(grantId) ?? []) this.entries.delete(k);
        this.grants.delete(grantId);
      },
    };
  }

  private get(k: string | undefined) {
    if (!k) return undefined;
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.entries.delete(k);
      return undefined;
    }
    return structuredClone(e.payload);
  }

  private sweep() {
    const now = Date.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    for (const [k, v] of this.index) if (!this.entries.has(v)) this.index.delete(k);
    for (const [g, keys] of this.grants) {
      for (const k of keys) if (!this.entries.has(k)) keys.delete(k);
      if (!keys.size) this.grants.delete(g);
    }
  }
}
