import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/**
 * A fake OpenID Provider for the bearer cases: discovery and JWKS only, served
 * from the bench process on a free port. Tokens are RFC 9068 JWT access tokens
 * signed with jose (RS256 and ES256 keys, both in the JWKS).
 */

export const BENCH_SCOPE = 'bench_scope';
export const BENCH_AUDIENCE = 'bench-api';
export const BENCH_CLIENT_ID = 'bench-client';
const TOKEN_LIFETIME_S = 3600;

export type BenchAlg = 'RS256' | 'ES256';

export interface FakeIssuer {
  issuer: string;
  keys: Record<BenchAlg, { privateJwk: JWK; kid: string }>;
  sign(alg: BenchAlg, jti: string): Promise<string>;
  close(): Promise<void>;
}

export function tokenClaims(issuer: string, jti: string, now = Math.floor(Date.now() / 1000)) {
  return {
    iss: issuer,
    sub: `user-${jti}`,
    aud: BENCH_AUDIENCE,
    iat: now,
    exp: now + TOKEN_LIFETIME_S,
    scope: BENCH_SCOPE,
    client_id: BENCH_CLIENT_ID,
    jti,
  };
}

export async function signToken(alg: BenchAlg, key: CryptoKey | JWK, kid: string, issuer: string, jti: string): Promise<string> {
  return new SignJWT(tokenClaims(issuer, jti)).setProtectedHeader({ alg, kid, typ: 'at+jwt' }).sign(key);
}

export async function startFakeIssuer(): Promise<FakeIssuer> {
  const rs = await generateKeyPair('RS256', { extractable: true });
  const es = await generateKeyPair('ES256', { extractable: true });
  const publicJwks = {
    keys: [
      { ...(await exportJWK(rs.publicKey)), kid: 'bench-rs256', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(es.publicKey)), kid: 'bench-es256', alg: 'ES256', use: 'sig' },
    ],
  };
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const json = (body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.url?.endsWith('/.well-known/openid-configuration') || req.url?.endsWith('/.well-known/oauth-authorization-server')) {
      return json({
        issuer,
        jwks_uri: `${issuer}/jwks`,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256', 'ES256'],
      });
    }
    if (req.url === '/jwks') return json(publicJwks);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const keys = {
    RS256: { privateJwk: await exportJWK(rs.privateKey), kid: 'bench-rs256' },
    ES256: { privateJwk: await exportJWK(es.privateKey), kid: 'bench-es256' },
  };
  return {
    issuer,
    keys,
    sign: (alg, jti) => signToken(alg, alg === 'RS256' ? rs.privateKey : es.privateKey, keys[alg].kid, issuer, jti),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Signs `count` distinct tokens (distinct `jti`/`sub`) in worker threads — RSA
 * signing costs ~0.4 ms a token, so tens of thousands take a few seconds.
 */
export async function signMany(fake: FakeIssuer, alg: BenchAlg, count: number): Promise<string[]> {
  const threads = Math.max(1, availableParallelism());
  const per = Math.ceil(count / threads);
  const workerUrl = new URL('./token-worker.js', import.meta.url);
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const from = t * per;
      const n = Math.max(0, Math.min(per, count - from));
      return new Promise<string[]>((resolve, reject) => {
        const w = new Worker(workerUrl, {
          workerData: { alg, jwk: fake.keys[alg].privateJwk, kid: fake.keys[alg].kid, issuer: fake.issuer, from, count: n },
        });
        w.once('message', (tokens: string[]) => resolve(tokens));
        w.once('error', reject);
      });
    }),
  );
  return parts.flat();
}
