import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OutgoingHttpHeaders, IncomingHttpHeaders } from 'node:http';
import type { SecureVersion, TLSSocket } from 'node:tls';
import { generateCertificate, type GeneratedCertificate } from '../../src/common/tls-self-signed.js';

/** A test CA made now, and server certificates it signs, written as PEM files in a fresh directory. */
export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'gatehouse-tls-'));
  readonly ca = generateCertificate({ commonName: 'Gatehouse Test CA', isCA: true });
  readonly caFile = join(this.dir, 'ca.crt');

  constructor() {
    writeFileSync(this.caFile, this.ca.cert);
  }

  /** A certificate for `names` (DNS names or IPs) signed by the CA; files `<file>.crt` / `<file>.key` in `dir`. */
  issue(file: string, names: string[], dir = this.dir): GeneratedCertificate & { certFile: string; keyFile: string } {
    const c = generateCertificate({ commonName: names[0], altNames: names, issuer: this.ca });
    const certFile = join(dir, `${file}.crt`);
    const keyFile = join(dir, `${file}.key`);
    writeFileSync(certFile, c.cert);
    writeFileSync(keyFile, c.key);
    return { ...c, certFile, keyFile };
  }
}

export interface TlsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json(): any;
  /** The server certificate's serial number and subject CN as the client saw them. */
  peerSerial: string;
  peerCn: string;
  protocol: string | null;
  alpn: string | false | null;
}

/** One HTTPS request, no keep-alive, trusting `ca`; SNI `servername` (default: the URL's host when it is a name). */
export function tlsRequest(
  url: string,
  opts: { ca?: string; servername?: string; method?: string; headers?: OutgoingHttpHeaders; body?: string; maxVersion?: SecureVersion; agent?: import('node:https').Agent } = {},
): Promise<TlsResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        ca: opts.ca,
        servername: opts.servername,
        maxVersion: opts.maxVersion,
        agent: opts.agent ?? false,
        timeout: 10_000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peer = socket.getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body,
            json: () => JSON.parse(body),
            peerSerial: peer.serialNumber,
            peerCn: peer.subject?.CN as string,
            protocol: socket.getProtocol?.() ?? null,
            alpn: socket.alpnProtocol,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(opts.body);
  });
}
