import { STANDARD_SCOPES } from './accounts.js';
import { resourceServerInfo, type DemoIdpSettings } from './configuration.js';
import type { OidcProvider, OidcProviderModule } from './oidc-provider.js';

/**
 * DEMO ONLY: Keycloak's "direct access grants" (the OAuth 2.0 password grant,
 * RFC 6749 §4.3, removed by OAuth 2.1). It exists so the README can show one
 * curl command that gets a token for a demo user. Never enable this in a real IdP.
 */
export function registerPasswordGrant(
  p: OidcProvider,
  settings: DemoIdpSettings,
  signingAlg: string,
  errors: OidcProviderModule['errors'],
): void {
  const { accounts, resource, refreshTokens } = settings;
  p.registerGrantType(
    'password',
    async (ctx: any) => {
      const { params, client } = ctx.oidc;
      if (!params.username || !params.password) {
        throw new errors.InvalidRequest('missing required parameter(s) (username, password)');
      }
      const user = accounts.authenticate(params.username, params.password);
      if (!user) {
        throw new errors.InvalidGrant('invalid username or password');
      }
      if (params.resource !== undefined && params.resource !== resource) {
        throw new errors.InvalidTarget(`unknown resource indicator (this IdP serves ${resource})`);
      }
      const allowed = accounts.grantedScopes(user);
      const requested: string[] = params.scope ? String(params.scope).split(' ').filter(Boolean) : [...allowed].filter((s) => s !== 'offline_access');
      const granted = requested.filter((s) => allowed.has(s));
      const grantedResource = granted.filter((s) => accounts.resourceScopes.has(s));

      const grant = new p.Grant({ accountId: user.sub, clientId: client.clientId });
      const oidcScopes = granted.filter((s) => (STANDARD_SCOPES as readonly string[]).includes(s));
      if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
      if (grantedResource.length) grant.addResourceScope(resource, grantedResource.join(' '));
      const grantId = await grant.save();
      ctx.oidc.entity('Account', accounts.account(user));
      ctx.oidc.entity('Grant', grant);

      const at = new p.AccessToken({ accountId: user.sub, client, grantId, gty: 'password' });
      at.resourceServer = new p.ResourceServer(resource, resourceServerInfo(settings, signingAlg));
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
        const token = new p.IdToken(await accounts.account(user).claims(), { ctx });
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
}
