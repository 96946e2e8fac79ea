import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  /** Extra endpoints by path (under the issuer's path), e.g. `/userinfo`; they take precedence over the built-in ones. */
  handlers?: Record<string, (req: IncomingMessage, res: ServerResponse, body: string) => void>;
  /** The JWKS endpoint answers with this status and no keys (a broken key endpoint). */
  jwksStatus?: number;
  /**
   * Serve this endpoint as a valid JSON document of about `bytes` bytes (a
   * `padding` member), chunked without a Content-Length, as fast as the client
   * reads: a hostile or broken IdP. `introspect` answers `active: true`.
   */
  huge?: { endpoint: 'discovery' | 'jwks' | 'introspect'; bytes: number };
  /** Members added to (or replacing those of) the discovery document. */
  metadata?: (issuer: string) => Record<string, unknown>;
  /** Serve https with the test certificate (TEST_CA_FILE; a client must trust it, e.g. NODE_EXTRA_CA_CERTS). */
  tls?: boolean;
}

/** Self-signed certificate for 127.0.0.1 and localhost (test only, valid until 2126) and its key. */
const TLS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/tls');
export const TEST_CA_FILE = join(TLS_DIR, 'issuer.crt');

/**
 * A minimal issuer for tests that must control keys precisely (rotation, kid
 * floods, outages): a real HTTP server serving a discovery document and a JWKS,
 * counting JWKS fetches and recording every request path. Login flows use the
 * real OpenID Provider instead.
 */
export class FakeIssuer {
  server!: Server | HttpsServer;
  port = 0;
  keys: SigningKey[] = [];
  jwksFetches = 0;
  discoveryFetches = 0;
  introspections = 0;
  /** Bytes of `huge` bodies handed to the socket before the client went away or the body ended. */
  hugeBytesSent = 0;
  /** How many `huge` bodies were started. */
  hugeResponses = 0;
  /** The path of every request received, in order. */
  requests: string[] = [];
  options: FakeIssuerOptions = {};

  get issuer() {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.port}${this.options.path ?? ''}`;
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
    const huge = this.options.huge;
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.requests.push(req.url!);
      const custom = this.options.handlers?.[req.url!.slice(path.length).split('?')[0]];
      if (custom) {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => custom(req, res, body));
        return;
      }
      if (req.url === `${path}/.well-known/openid-configuration`) {
        this.discoveryFetches++;
        const issuer = this.options.claimedIssuer ?? this.issuer;
        const doc = {
          issuer,
          jwks_uri: `${this.issuer}/jwks`,
          token_endpoint: `${this.issuer}/token`,
          authorization_endpoint: `${this.issuer}/auth`,
          introspection_endpoint: `${this.issuer}/introspect`,
          ...this.options.metadata?.(this.issuer),
        };
        if (huge?.endpoint === 'discovery') return this.streamHuge(res, doc, huge.bytes);
        return json(res, doc);
      }
      if (req.url === `${path}/jwks`) {
        this.jwksFetches++;
        if (this.options.jwksStatus) return json(res, { error: 'unavailable' }, this.options.jwksStatus);
        const jwks = { keys: this.options.emptyJwks ? [] : this.keys.map((k) => k.publicJwk) };
        if (huge?.endpoint === 'jwks') return this.streamHuge(res, jwks, huge.bytes);
        return json(res, jwks);
      }
      if (req.url === `${path}/introspect` && req.method === 'POST') {
        this.introspections++;
        req.resume();
        const answer = { active: true, iss: this.issuer, sub: 'user-1', scope: 'x', exp: Math.floor(Date.now() / 1000) + 300 };
        if (huge?.endpoint === 'introspect') return req.once('end', () => this.streamHuge(res, answer, huge.bytes));
        return req.once('end', () => json(res, { active: false }));
      }
      res.writeHead(404).end();
    };
    this.server = this.options.tls ? createHttpsServer({ key: readFileSync(join(TLS_DIR, 'issuer.key')), cert: readFileSync(TEST_CA_FILE) }, handler) : createServer(handler);
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** `body` with a `padding` member that makes it about `bytes` long, written chunk by chunk as the client reads. */
  private streamHuge(res: ServerResponse, body: Record<string, unknown>, bytes: number) {
    const head = JSON.stringify({ ...body, padding: '' }).slice(0, -2);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let remaining = bytes;
    this.hugeResponses++;
    res.writeHead(200, { 'content-type': 'application/json' });
    const pump = () => {
      while (remaining > 0 && !res.destroyed) {
        remaining -= chunk.length;
        this.hugeBytesSent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end('"}');
    };
    res.write(head);
    pump();
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

export function json(res: ServerResponse, body: unknown, status = 200) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
