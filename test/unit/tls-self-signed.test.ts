import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { generateCertificate } from '../../src/common/tls-self-signed.js';

describe('generateCertificate (the TLS demo and the tests\' PKI)', () => {
  it('every certificate parses: random serials are minimal DER integers (a superfluous leading zero is refused by OpenSSL)', () => {
    // One serial in 512 starts with a zero byte followed by one below 0x80; 3,000 draws make missing the case unlikely (≈ 0.3 %).
    for (let i = 0; i < 3_000; i++) {
      const c = generateCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
      assert.doesNotThrow(() => new X509Certificate(c.cert), `certificate ${i} does not parse`);
    }
  });
});
