import { hkdfSync } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';

/** Encrypted and authenticated (JWE, `dir` + A256GCM): the one sealing used for sessions and login transactions. */
export function sealJwe(payload: object, key: Uint8Array): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(key);
}

/** The payload of a value sealJwe made with `key`; undefined for anything else (tampered, foreign, not JSON). */
export async function openJwe(value: string, key: Uint8Array): Promise<Record<string, unknown> | undefined> {
  try {
    const { plaintext } = await compactDecrypt(value, key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
    const parsed = JSON.parse(new TextDecoder().decode(plaintext)) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function deriveKey(secret: string, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, 'gatehouse', info, 32));
}

/**
 * The length of sealJwe's output for a payload whose JSON is `plaintextBytes`
 * bytes: the protected header, an empty key (`dir`), a 96-bit IV, the
 * ciphertext (as long as the plaintext) and a 128-bit tag, base64url, dot-joined.
 * Lets a size limit be checked before anything is sealed.
 */
export function sealedLength(plaintextBytes: number): number {
  return b64(JWE_HEADER_BYTES) + 1 + 0 + 1 + b64(12) + 1 + b64(plaintextBytes) + 1 + b64(16);
}

const JWE_HEADER_BYTES = Buffer.byteLength(JSON.stringify({ alg: 'dir', enc: 'A256GCM' }));

/** Unpadded base64url length of n bytes. */
function b64(n: number): number {
  return Math.ceil((n * 4) / 3);
}
