import { constants, createHmac, KeyObject, timingSafeEqual, verify } from 'node:crypto';

/**
 * The JWS signature step (RFC 7515 §5.2, RFC 7518 §3) for access tokens, done
 * with node:crypto on KeyObjects, synchronously.
 *
 * Why not jose's `jwtVerify` for this one step: jose 6 verifies only through
 * WebCrypto, whose every call is a job handed to libuv's thread pool and back.
 * On the gateway's hot path that hand-off cost more than the RSA check itself
 * (bench/README.md: RS256 ≈ 50 µs of CPU through jose, ≈ 24 µs here, and a
 * verification that needs no await keeps the whole request synchronous). jose
 * still parses the protected header and selects and imports the issuer's keys
 * (createLocalJWKSet); this module only checks that the key fits the algorithm
 * and that the signature is right.
 *
 * The algorithm is always one from the route's allow-list, checked before a key
 * is looked for (RFC 8725 §3.1); the key always comes from the issuer's JWKS or
 * the configured secret, never from the token (§3.10).
 */

interface AlgorithmSpec {
  /** node:crypto digest name; null for EdDSA, which hashes internally. */
  digest: string | null;
  kind: 'rsa' | 'rsa-pss' | 'ec' | 'okp' | 'hmac';
  /** ES*: the curve the key must be on (node's name) and the signature length (IEEE P1363 r||s). */
  curve?: string;
  signatureLength?: number;
}

const ALGORITHMS: Record<string, AlgorithmSpec> = {
  RS256: { digest: 'sha256', kind: 'rsa' },
  RS384: { digest: 'sha384', kind: 'rsa' },
  RS512: { digest: 'sha512', kind: 'rsa' },
  PS256: { digest: 'sha256', kind: 'rsa-pss' },
  PS384: { digest: 'sha384', kind: 'rsa-pss' },
  PS512: { digest: 'sha512', kind: 'rsa-pss' },
  ES256: { digest: 'sha256', kind: 'ec', curve: 'prime256v1', signatureLength: 64 },
  ES384: { digest: 'sha384', kind: 'ec', curve: 'secp384r1', signatureLength: 96 },
  ES512: { digest: 'sha512', kind: 'ec', curve: 'secp521r1', signatureLength: 132 },
  EdDSA: { digest: null, kind: 'okp' },
  Ed25519: { digest: null, kind: 'okp' },
  HS256: { digest: 'sha256', kind: 'hmac' },
  HS384: { digest: 'sha384', kind: 'hmac' },
  HS512: { digest: 'sha512', kind: 'hmac' },
};

/** RFC 7518 §3.3 and §3.5: RSA keys of at least 2048 bits. */
const MIN_RSA_BITS = 2048;

/** The asymmetric algorithms accepted by default (RFC 8725 §3.1: an allow-list, never the token's own say-so). */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = Object.keys(ALGORITHMS).filter((alg) => ALGORITHMS[alg].kind !== 'hmac');

export function isHmacAlgorithm(alg: string): boolean {
  return ALGORITHMS[alg]?.kind === 'hmac';
}

/** Why `key` cannot verify `alg`, or undefined when it can. Checked once per key and algorithm, not per token. */
export function keyProblem(alg: string, key: KeyObject): string | undefined {
  const spec = ALGORITHMS[alg];
  if (!spec || spec.kind === 'hmac') return `algorithm ${alg} needs a secret, not a public key`;
  if (key.type !== 'public') return 'not a public key';
  const type = key.asymmetricKeyType;
  switch (spec.kind) {
    case 'rsa':
    case 'rsa-pss': {
      if (type !== 'rsa' && !(spec.kind === 'rsa-pss' && type === 'rsa-pss')) return `a ${type} key cannot verify ${alg}`;
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      return bits < MIN_RSA_BITS ? `RSA key of ${bits} bits is shorter than ${MIN_RSA_BITS}` : undefined;
    }
    case 'ec':
      if (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== spec.curve) return `the key's curve does not match ${alg}`;
      return undefined;
    case 'okp':
      return type === 'ed25519' ? undefined : `a ${type} key cannot verify ${alg}`;
  }
}

/** Checks a signature over `signingInput` (the ASCII of `header.payload`). Never throws for a bad signature. */
export function verifySignature(alg: string, key: KeyObject | Uint8Array, signingInput: Buffer, signature: Buffer): boolean {
  const spec = ALGORITHMS[alg];
  if (!spec) return false;
  if (spec.kind === 'hmac') {
    if (key instanceof KeyObject) return false;
    const expected = createHmac(spec.digest!, key).update(signingInput).digest();
    return expected.length === signature.length && timingSafeEqual(expected, signature);
  }
  if (!(key instanceof KeyObject)) return false;
  try {
    switch (spec.kind) {
      case 'rsa':
        return verify(spec.digest, signingInput, key, signature);
      case 'rsa-pss':
        // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash.
        return verify(spec.digest, signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
      case 'ec':
        // RFC 7518 §3.4: R || S, each the size of the curve's order; not DER.
        if (signature.length !== spec.signatureLength) return false;
        return verify(spec.digest, signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'okp':
        return verify(null, signingInput, key, signature);
    }
  } catch {
    // OpenSSL refuses malformed signatures by throwing; for the caller it is just a bad signature.
    return false;
  }
}
