import type { DemoAccounts } from './accounts.js';
import { STANDARD_SCOPES } from './accounts.js';
import type { JwkSet } from './keys.js';
import { errorPage, logoutPage, postLogoutPage } from './login-page.js';
import { PAGE_CSP } from './http.js';
import type { MemoryStorage } from './memory.adapter.js';
import type { DemoIdpLogger, OidcProviderModule } from './oidc-provider.js';

/** Cookie names are prefixed so they never collide with the gateway's `session*` / `gatehouse*` cookies on the same host. */
export const DEMO_IDP_COOKIE_PREFIX = '_demo_idp_';
export const DEFAULT_ACCESS_TOKEN_TTL = 600;
export const DEFAULT_RESOURCE = 'http://localhost:8000';

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

/** What every part of one running demo IdP shares; fixed at start, kept across key rotation. */
export interface DemoIdpSettings {
  issuer: string;
  clients: readonly DemoIdpClient[];
  accounts: DemoAccounts;
  /** Resource indicator and `aud` of every access token. */
  resource: string;
  /** Seconds. */
  accessTokenTtl: number;
  /** Issue refresh tokens to clients allowed the refresh_token grant. */
  refreshTokens: boolean;
  /** Cookie signing keys: generated at start and kept across key rotation (sessions must survive it too). */
  cookieKeys: string[];
  /** Text under the login form. */
  loginHint?: string;
  log?: DemoIdpLogger;
}

/** oidc-provider's resource server entry for the gateway: JWT access tokens (RFC 9068) with `aud` = the resource. */
export function resourceServerInfo(settings: DemoIdpSettings, signingAlg: string) {
  return {
    scope: [...settings.accounts.resourceScopes].join(' '),
    audience: settings.resource,
    accessTokenFormat: 'jwt',
    accessTokenTTL: settings.accessTokenTtl,
    jwt: { sign: { alg: signingAlg } },
  };
}

/**
 * The oidc-provider configuration: a small Keycloak realm (as oidc-provider's
 * example `support/configuration.js`). Built anew for each signing key set.
 */
export function providerConfiguration(
  settings: DemoIdpSettings,
  keys: JwkSet,
  signingAlg: string,
  storage: MemoryStorage,
  errors: OidcProviderModule['errors'],
): object {
  const { accounts, resource, accessTokenTtl } = settings;
  return {
    responseTypes: ['code'],
    adapter: (model: string) => storage.adapter(model),
    clients: settings.clients.map((c) => ({
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
      keys: settings.cookieKeys,
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
      const user = accounts.findBySub(sub);
      return user ? accounts.account(user) : undefined;
    },
    async extraTokenClaims(_ctx: unknown, token: { accountId?: string; kind?: string }) {
      const user = accounts.findBySub(token.accountId);
      return user ? accounts.accessTokenClaims(user) : undefined;
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
          return resourceServerInfo(settings, signingAlg);
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
      return settings.refreshTokens && client.grantTypeAllowed('refresh_token');
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
  };
}
