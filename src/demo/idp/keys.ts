import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';

export interface JwkSet {
  keys: JWK[];
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

/** RS256 when the set holds an RSA key (the most widely supported), else ES256. */
export function signingAlgorithm(set: JwkSet): 'RS256' | 'ES256' {
  return set.keys.some((k) => k.kty === 'RSA') ? 'RS256' : 'ES256';
}
