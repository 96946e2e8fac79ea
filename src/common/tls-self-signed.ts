import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * X.509 certificates made in-process (RFC 5280), ECDSA P-256: the TLS demo's
 * self-signed certificate and the test suites' CAs and server certificates,
 * without depending on an `openssl` binary being installed (the container
 * image has none). Only what a TLS server certificate needs: subject CN,
 * subjectAltName (DNS and IP), basicConstraints, keyUsage, extKeyUsage.
 */

export interface GeneratedCertificate {
  /** PEM certificate and PKCS#8 PEM private key. */
  cert: string;
  key: string;
}

export interface CertificateRequest {
  commonName: string;
  /** DNS names and IP addresses for subjectAltName. */
  altNames?: string[];
  /** A CA certificate that may sign others (basicConstraints CA:TRUE, keyCertSign). */
  isCA?: boolean;
  /** Signed by this CA; self-signed when absent. */
  issuer?: GeneratedCertificate;
  notBefore?: Date;
  notAfter?: Date;
}

export function generateCertificate(req: CertificateRequest): GeneratedCertificate {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const subject = name(req.commonName);
  let issuerName = subject;
  let signingKey: KeyObject = privateKey;
  if (req.issuer) {
    issuerName = subjectOf(Buffer.from(new X509Certificate(req.issuer.cert).raw));
    signingKey = createPrivateKey(req.issuer.key);
  }
  const notBefore = req.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = req.notAfter ?? new Date(Date.now() + 365 * 86_400_000);
  const extensions: Buffer[] = [];
  if (req.altNames?.length) {
    const names = req.altNames.map((n) =>
      isIPv4(n) ? tlv(0x87, Buffer.from(n.split('.').map(Number))) : isIPv6(n) ? tlv(0x87, ipv6Bytes(n)) : tlv(0x82, Buffer.from(n, 'ascii')),
    );
    extensions.push(extension('2.5.29.17', false, seq(...names)));
  }
  extensions.push(extension('2.5.29.19', true, req.isCA ? seq(tlv(0x01, Buffer.from([0xff]))) : seq()));
  // keyUsage: digitalSignature (bit 0) for a server; keyCertSign (bit 5) and cRLSign (bit 6) for a CA.
  extensions.push(extension('2.5.29.15', true, req.isCA ? tlv(0x03, Buffer.from([0x01, 0x06])) : tlv(0x03, Buffer.from([0x07, 0x80]))));
  if (!req.isCA) extensions.push(extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))));

  const algorithm = seq(oid('1.2.840.10045.4.3.2')); // ecdsa-with-SHA256
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // positive INTEGER
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    issuerName,
    seq(time(notBefore), time(notAfter)),
    subject,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: signingKey, dsaEncoding: 'der' });
  const der = seq(tbs, algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  return {
    cert: pem('CERTIFICATE', der),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

/**
 * A non-negative DER INTEGER in its minimal form (X.690 §8.3.2): leading zero
 * bytes dropped, one put back when the first remaining bit is set. OpenSSL
 * refuses a certificate whose serial has a superfluous leading zero, which a
 * random serial has once in 128 draws.
 */
function integer(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const minimal = bytes.subarray(start);
  return tlv(0x02, minimal[0] & 0x80 ? Buffer.concat([Buffer.from([0]), minimal]) : minimal);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0] + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

function name(commonName: string): Buffer {
  return seq(tlv(0x31, seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), tlv(0x01, Buffer.from([0xff])), tlv(0x04, value)) : seq(oid(id), tlv(0x04, value));
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/** Reads the DER-encoded subject Name out of a certificate (the issuer of the certificates it signs). */
function subjectOf(der: Buffer): Buffer {
  // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version, serial, signature, issuer, validity, subject, … } }
  let offset = header(der, 0).contentStart; // into Certificate
  offset = header(der, offset).contentStart; // into tbsCertificate
  for (let field = 0; field < 5; field++) {
    const h = header(der, offset);
    offset = h.contentStart + h.length;
  }
  const subject = header(der, offset);
  return der.subarray(offset, subject.contentStart + subject.length);
}

function header(der: Buffer, at: number): { contentStart: number; length: number } {
  const first = der[at + 1];
  if (first < 0x80) return { contentStart: at + 2, length: first };
  const bytes = first & 0x7f;
  let length = 0;
  for (let i = 0; i < bytes; i++) length = (length << 8) | der[at + 2 + i];
  return { contentStart: at + 2 + bytes, length };
}
