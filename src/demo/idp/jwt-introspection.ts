import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { sameSecret } from './accounts.js';
import type { DemoIdpSettings } from './configuration.js';
import { readBody, replayRequest, sendJson } from './http.js';
import { publicJwks, type JwkSet } from './keys.js';

export const INTROSPECTION_PATH = '/token/introspection';
export const REVOCATION_PATH = '/token/revocation';

type Callback = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * oidc-provider refuses to introspect or revoke JWT access tokens ("structured
 * tokens") and does not store them. The demo answers those requests itself, so
 * RFC 7662 introspection and RFC 7009 revocation work for its JWT access tokens
 * as they do with Keycloak: the JWT is verified against the current keys, and a
 * revoked `jti` is remembered until the token expires. Any other token (refresh
 * tokens, opaque tokens) goes to oidc-provider unchanged.
 */
export class JwtIntrospection {
  /** jti → `exp` (seconds) of revoked JWT access tokens. */
  private readonly revokedJtis = new Map<string, number>();

  constructor(
    private readonly settings: DemoIdpSettings,
    /** The keys signing now (they change on rotation). */
    private readonly currentKeys: () => JwkSet,
    /** oidc-provider's request listener, for every token that is not a JWT. */
    private readonly provider: () => Callback,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const raw = await readBody(req, 56 * 1024);
    const form = new URLSearchParams(raw);
    const token = form.get('token');
    const urlencoded = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    if (!urlencoded || !token || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) return this.provider()(replayRequest(req, raw), res);

    const caller = this.authenticateClient(req, form);
    if (!caller) {
      return sendJson(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' }, { 'www-authenticate': 'Basic realm="demo-idp"' });
    }
    let payload: Record<string, unknown> | undefined;
    try {
      ({ payload } = await jwtVerify(token, createLocalJWKSet(publicJwks(this.currentKeys())), { issuer: this.settings.issuer, typ: 'at+jwt' }));
    } catch {
      payload = undefined; // not ours, tampered, expired or signed by a rotated-out key
    }
    const jti = typeof payload?.jti === 'string' ? payload.jti : undefined;
    const ownToken = payload?.client_id === caller.client_id;

    if (path === REVOCATION_PATH) {
      if (!payload || !jti) return sendJson(res, 200, {}); // RFC 7009 §2.2: invalid tokens are not an error
      if (!ownToken) return sendJson(res, 400, { error: 'invalid_request', error_description: 'client is not authorized to revoke the presented token' });
      const now = Date.now();
      for (const [k, exp] of this.revokedJtis) if (exp * 1000 <= now) this.revokedJtis.delete(k);
      this.revokedJtis.set(jti, Number(payload.exp) || Math.floor(now / 1000) + this.settings.accessTokenTtl);
      return sendJson(res, 200, {});
    }
    const active = !!payload && !!jti && !this.revokedJtis.has(jti) && (caller.confidential || ownToken);
    return sendJson(res, 200, active ? { active: true, ...payload, token_type: 'Bearer' } : { active: false });
  }

  /** client_secret_basic (RFC 6749 §2.3.1, form-encoded id and secret) or client_secret_post; public clients by client_id. */
  private authenticateClient(req: IncomingMessage, form: URLSearchParams): { client_id: string; confidential: boolean } | undefined {
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
    const client = this.settings.clients.find((c) => c.client_id === id);
    if (!client) return undefined;
    if (!client.client_secret) return secret ? undefined : { client_id: client.client_id, confidential: false };
    return sameSecret(client.client_secret, secret) ? { client_id: client.client_id, confidential: true } : undefined;
  }
}
