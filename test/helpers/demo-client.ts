import { randomBytes } from 'node:crypto';

export interface DemoClient {
  id: 'gatehouse';
  secret: string;
  /** Its registration at the demo IdP (an entry of startDemoIdp's `clients`). */
  registration(redirectUris: string[], postLogoutRedirectUris?: string[]): {
    client_id: string;
    client_secret: string;
    redirect_uris: string[];
    post_logout_redirect_uris?: string[];
  };
  /** The openid-connect plugin fields naming it at `issuer`: issuer, client_id, client_secret. */
  pluginConfig(issuer: string): { issuer: string; client_id: string[]; client_secret: string[] };
}

/** The gateway's confidential client at the demo IdP: client id 'gatehouse' with a fresh random secret. */
export function gatehouseClient(): DemoClient {
  const secret = randomBytes(24).toString('base64url');
  return {
    id: 'gatehouse',
    secret,
    registration: (redirectUris, postLogoutRedirectUris) => ({
      client_id: 'gatehouse',
      client_secret: secret,
      redirect_uris: redirectUris,
      ...(postLogoutRedirectUris ? { post_logout_redirect_uris: postLogoutRedirectUris } : {}),
    }),
    pluginConfig: (issuer) => ({ issuer, client_id: ['gatehouse'], client_secret: [secret] }),
  };
}
