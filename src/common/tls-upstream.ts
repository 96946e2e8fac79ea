import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';

/** What a service needs to say about TLS toward its upstream (see UpstreamService). */
export interface UpstreamTlsTarget {
  protocol: 'http' | 'https';
  hostname: string;
  tlsVerify: boolean;
  caCertificates?: string[];
}

const caCache = new Map<string, string>();

/**
 * TLS options for connections to an `https` upstream: the certificate is
 * verified (unless `tls_verify: false`) against the service's CA files or
 * Node's CA store, and SNI names the service host (never an IP, RFC 6066 §3).
 * CA files are read once, at load (the schema already checked them).
 */
export function upstreamTlsOptions(t: UpstreamTlsTarget): ConnectionOptions | undefined {
  if (t.protocol !== 'https') return undefined;
  const options: ConnectionOptions = { rejectUnauthorized: t.tlsVerify };
  const host = t.hostname.replace(/^\[|\]$/g, '');
  if (!isIP(host)) options.servername = host;
  if (t.caCertificates?.length) {
    options.ca = t.caCertificates.map((file) => {
      let pem = caCache.get(file);
      if (pem === undefined) caCache.set(file, (pem = readFileSync(file, 'utf8')));
      return pem;
    });
  }
  return options;
}

/** OpenSSL's verification failures, as Node reports them on the socket error's `code`. */
const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** `TLS certificate verification failed (CERT_HAS_EXPIRED)` for a certificate problem, undefined otherwise. */
export function certificateFailure(code: string | undefined): string | undefined {
  return code && CERTIFICATE_ERRORS.has(code) ? `TLS certificate verification failed (${code})` : undefined;
}
