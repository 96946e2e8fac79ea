import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey } from 'jose';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function signingKey(alg = 'RS256', kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export interface FakeIssuerOptions {
  /** A path the issuer lives under, Keycloak-style (`/realms/test`); default none. */
  path?: string;
  /** The `issuer` the discovery document claims instead of the real one (a misconfigured IdP). */
  claimedIssuer?: string;
  /** Publish a JWKS without any key. */
  emptyJwks?: boolean;
  /** More discovery metadata (endpoints the test serves through `handlers`). */
  metadata?: Record<string, unknown>;
  /** Extra endpoints by path (under the issuer's path), e.g. `/userinfo` or `/introspect`. */
  handlers?: Record<string, (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: string) => void>;
}

/**
 * A minimal issuer for tests that must control keys precisely (rotation, kid
 * floods, outages): a real HTTP server serving a discovery document and a JWKS,
 * counting JWKS fetches and recording every request path. Login flows use the
 * real OpenID Provider instead.
 */
export class FakeIssuer {
  server!: Server;
  port = 0;
  keys: SigningKey[] = [];
  jwksFetches = 0;
  discoveryFetches = 0;
  /** The path of every request received, in order. */
  requests: string[] = [];
  options: FakeIssuerOptions = {};

  get issuer() {
    return `http://127.0.0.1:${this.port}${this.options.path ?? ''}`;
  }

  static async start(keys?: SigningKey[], port = 0, options: FakeIssuerOptions = {}): Promise<FakeIssuer> {
    const f = new FakeIssuer();
    f.keys = keys ?? [await signingKey('RS256'), await signingKey('ES256')];
    f.options = options;
    await f.listen(port);
    return f;
  }

  async listen(port = this.port) {
    const path = this.options.path ?? '';
    this.server = createServer((req, res) => {
      this.requests.push(req.url!);
      if (req.url === `${path}/.well-known/openid-configuration`) {
        this.discoveryFetches++;
        const issuer = this.options.claimedIssuer ?? this.issuer;
        return json(res, { issuer, jwks_uri: `${this.issuer}/jwks`, token_endpoint: `${this.issuer}/token`, authorization_endpoint: `${this.issuer}/auth`, ...this.options.metadata });
      }
      if (req.url === `${path}/jwks`) {
        this.jwksFetches++;
        return json(res, { keys: this.options.emptyJwks ? [] : this.keys.map((k) => k.publicJwk) });
      }
      const handler = this.options.handlers?.[req.url!.slice(path.length).split('?')[0]];
      if (handler) {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => handler(req, res, body));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** An RFC 9068 access token signed with `key` (default: the first key). */
  async token(claims: Record<string, unknown>, opts: { key?: SigningKey; typ?: string; header?: Record<string, unknown>; expiresIn?: number } = {}) {
    const key = opts.key ?? this.keys[0];
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ client_id: 'test-client', jti: Math.random().toString(36).slice(2), ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: opts.typ ?? 'at+jwt', ...opts.header })
      .setIssuer((claims.iss as string) ?? this.issuer)
      .setSubject((claims.sub as string) ?? 'user-1')
      .setIssuedAt((claims.iat as number) ?? now)
      .setExpirationTime((claims.exp as number) ?? now + (opts.expiresIn ?? 300))
      // Let jose sign extension headers the test declares critical; the gateway must still refuse them.
      .sign(key.privateKey, opts.header?.crit ? { crit: Object.fromEntries((opts.header.crit as string[]).map((c) => [c, true])) } : undefined);
  }
}

export function json(res: import('node:http').ServerResponse, body: unknown, status = 200) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
