import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, Agent, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { loadDeclarativeConfigFile, ConfigError } from '../../src/config/config.loader.js';
import { readGatewaySettings, SettingsError } from '../../src/config/gateway-settings.js';
import { parseListeners } from '../../src/proxy/listeners.js';
import { httpRequest, startGateway, writeConfig, type GatewayProcess } from '../helpers/gateway.js';
import { TestPki, tlsRequest } from '../helpers/tls.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Listener URLs from the start-up line, in GATEHOUSE_PROXY_LISTEN order. */
function listeners(gw: GatewayProcess): string[] {
  return gw.logs().find((l) => l.msg === 'gatehouse started')!.listeners;
}

describe('TLS termination: listeners, certificates, SNI, reload', () => {
  const pki = new TestPki();
  let upstream: Upstream;
  let gw: GatewayProcess;
  let plain: string;
  let tls: string;
  let certDir: string;
  let first: ReturnType<TestPki['issue']>;

  before(async () => {
    upstream = await startUpstream();
    // Kubernetes secret volume layout: tls.crt -> ..data/tls.crt, ..data -> ..v1 (swapped on rotation).
    certDir = join(pki.dir, 'secret');
    mkdirSync(join(certDir, '..v1'), { recursive: true });
    first = pki.issue('tls', ['localhost', '127.0.0.1'], join(certDir, '..v1'));
    symlinkSync('..v1', join(certDir, '..data'));
    symlinkSync('..data/tls.crt', join(certDir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(certDir, 'tls.key'));
    const other = pki.issue('other', ['other.test', '*.wild.test']);
    gw = await startGateway({
      env: {
        GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0, 127.0.0.1:0 ssl',
        GATEHOUSE_SSL_CERT: `${join(certDir, 'tls.crt')}, ${other.certFile}`,
        GATEHOUSE_SSL_CERT_KEY: `${join(certDir, 'tls.key')}, ${other.keyFile}`,
        GATEHOUSE_TRUSTED_IPS: '',
      },
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'api',
            url: upstream.url,
            routes: [
              { name: 'any', paths: ['/any'] },
              { name: 'https-only', paths: ['/secure'], protocols: ['https'] },
              { name: 'redirect', paths: ['/moved'], protocols: ['https'], https_redirect_status_code: 301 },
            ],
          },
        ],
      },
    });
    [plain, tls] = listeners(gw);
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('serves https on the ssl listener and plain http on the other, with the real scheme in X-Forwarded-Proto', async () => {
    assert.match(tls, /^https:\/\/127\.0\.0\.1:\d+$/);
    const secure = await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost' });
    assert.equal(secure.status, 200);
    assert.equal(secure.json().headers['x-forwarded-proto'], 'https');
    assert.equal(secure.json().headers['x-forwarded-port'], new URL(tls).port);
    const clear = await httpRequest(plain, '/any');
    assert.equal(clear.json().headers['x-forwarded-proto'], 'http');
  });

  it('refuses TLS 1.1 and older; negotiates TLS 1.2 or 1.3', async () => {
    await assert.rejects(tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost', maxVersion: 'TLSv1.1' }));
    const v12 = await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost', maxVersion: 'TLSv1.2' });
    assert.equal(v12.protocol, 'TLSv1.2');
  });

  it('chooses the certificate by SNI: exact names, a *. wildcard, the first pair otherwise', async () => {
    assert.equal((await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'other.test' })).peerCn, 'other.test');
    assert.equal((await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'api.wild.test' })).peerCn, 'other.test');
    assert.equal((await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost' })).peerCn, 'localhost');
    // No SNI at all (an IP address): the default, first certificate, which names 127.0.0.1.
    assert.equal((await tlsRequest(`${tls}/any`, { ca: pki.ca.cert })).peerCn, 'localhost');
  });

  it('answers http on a route limited to https as Kong does: 426 by default, or the configured redirect', async () => {
    const refused = await httpRequest(plain, '/secure/x');
    assert.equal(refused.status, 426);
    assert.deepEqual(refused.json(), { message: 'Please use HTTPS protocol' });
    assert.equal(refused.headers.upgrade, 'TLS/1.2, HTTP/1.1');
    assert.match(String(refused.headers.connection), /upgrade/i);
    const moved = await httpRequest(plain, '/moved/a?b=1', { headers: { host: 'api.example.com:8000' } });
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, 'https://api.example.com/moved/a?b=1');
    assert.equal(upstream.requests.filter((r) => r.url.includes('secure') || r.url.includes('moved')).length, 0, 'nothing reached the upstream');
    const ok = await tlsRequest(`${tls}/secure/x`, { ca: pki.ca.cert, servername: 'localhost' });
    assert.equal(ok.status, 200);
  });

  it('a client-sent X-Forwarded-Proto does not pass an https-only route when the peer is not trusted', async () => {
    const spoofed = await httpRequest(plain, '/secure', { headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(spoofed.status, 426);
  });

  it('reloads rotated certificates (a Kubernetes ..data symlink swap) without dropping open connections', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.cert, servername: 'localhost' });
    try {
      const before = await tlsRequest(`${tls}/any`, { agent });
      assert.equal(before.peerSerial, tlsSerial(first.cert));
      // cert-manager's way: write the new pair in a new directory, then swap the ..data link atomically.
      mkdirSync(join(certDir, '..v2'));
      const second = pki.issue('tls', ['localhost', '127.0.0.1'], join(certDir, '..v2'));
      symlinkSync('..v2', join(certDir, '..data_tmp'));
      renameSync(join(certDir, '..data_tmp'), join(certDir, '..data'));
      await gw.waitForLog((l) => l.msg === 'TLS certificates reloaded');
      const fresh = await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost' });
      assert.equal(fresh.peerSerial, tlsSerial(second.cert), 'a new handshake gets the new certificate');
      // The keep-alive connection made before the rotation is still open and still served.
      const reused = await tlsRequest(`${tls}/any`, { agent });
      assert.equal(reused.status, 200);
      assert.equal(reused.peerSerial, tlsSerial(first.cert), 'the same TLS connection, not a new one');
    } finally {
      agent.destroy();
    }
  });

  it('keeps the previous certificate when a rotation leaves a broken pair, and logs why', async () => {
    const current = (await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost' })).peerSerial;
    // A rotation whose key file is broken (a half-written secret), swapped in like any other.
    mkdirSync(join(certDir, '..v3'));
    pki.issue('tls', ['localhost'], join(certDir, '..v3'));
    writeFileSync(join(certDir, '..v3', 'tls.key'), 'not a key');
    symlinkSync('..v3', join(certDir, '..data_tmp'));
    renameSync(join(certDir, '..data_tmp'), join(certDir, '..data'));
    await gw.waitForLog((l) => l.msg?.startsWith('TLS certificate reload failed'));
    const still = await tlsRequest(`${tls}/any`, { ca: pki.ca.cert, servername: 'localhost' });
    assert.equal(still.peerSerial, current);
  });
});

function tlsSerial(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

describe('TLS settings and route protocols are checked at start', () => {
  const pki = new TestPki();
  const pair = pki.issue('srv', ['localhost']);

  it('parses Kong-style listener lists and reports every bad entry with its position', () => {
    const ok = parseListeners('0.0.0.0:8000 reuseport backlog=16384, [::]:8443 http2 ssl', 'GATEHOUSE_PROXY_LISTEN');
    assert.deepEqual(ok.problems, []);
    assert.deepEqual(
      ok.listeners.map((l) => [l.host, l.port, l.ssl, l.http2, l.backlog]),
      [
        ['0.0.0.0', 8000, false, false, 16384],
        ['::', 8443, true, true, undefined],
      ],
    );
    const bad = parseListeners('0.0.0.0:8000 http2, nope, 0.0.0.0:8443 ssl proxy_protocol, 0.0.0.0:9 sll', 'GATEHOUSE_PROXY_LISTEN');
    assert.deepEqual(
      bad.problems.map((p) => p.path),
      ['GATEHOUSE_PROXY_LISTEN[0]', 'GATEHOUSE_PROXY_LISTEN[1]', 'GATEHOUSE_PROXY_LISTEN[2]', 'GATEHOUSE_PROXY_LISTEN[3]'],
    );
    assert.match(bad.problems[0].message, /http2 needs ssl/);
    assert.match(bad.problems[3].message, /unknown flag "sll"/);
  });

  it('an ssl listener needs certificate files that load; problems name the variable', () => {
    const problems = (env: Record<string, string>) => {
      try {
        readGatewaySettings({ GATEHOUSE_DECLARATIVE_CONFIG: '/x.yaml', ...env });
        return [];
      } catch (err) {
        assert.ok(err instanceof SettingsError);
        return err.problems.map((p) => `${p.path}: ${p.message}`);
      }
    };
    assert.match(problems({ GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0 ssl' })[0], /^GATEHOUSE_SSL_CERT: is required/);
    assert.match(problems({ GATEHOUSE_SSL_CERT: '/nonexistent.crt', GATEHOUSE_SSL_CERT_KEY: pair.keyFile })[0], /^GATEHOUSE_SSL_CERT: cannot read \/nonexistent\.crt \(ENOENT\)/);
    const otherKey = pki.issue('other', ['x.test']).keyFile;
    assert.match(problems({ GATEHOUSE_SSL_CERT: pair.certFile, GATEHOUSE_SSL_CERT_KEY: otherKey })[0], /^GATEHOUSE_SSL_CERT_KEY: .*does not match/);
    assert.match(problems({ GATEHOUSE_SSL_CERT: pair.certFile, GATEHOUSE_SSL_CERT_KEY: `${pair.keyFile},${otherKey}` })[0], /one key per certificate/);
    assert.match(problems({ GATEHOUSE_SSL_CIPHER_SUITE: 'custom' })[0], /^GATEHOUSE_SSL_CIPHERS: is required/);
    assert.deepEqual(problems({ GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0 ssl http2', GATEHOUSE_SSL_CERT: pair.certFile, GATEHOUSE_SSL_CERT_KEY: pair.keyFile }), []);
  });

  it('refuses grpc routes, unknown redirect codes and unreadable CA files at load, each with its path', async () => {
    const file = writeConfig({
      _format_version: '3.0',
      services: [
        {
          name: 'a',
          url: 'https://127.0.0.1:1',
          ca_certificates: ['/nonexistent/ca.pem', pair.keyFile],
          routes: [
            { paths: ['/g'], protocols: ['grpc', 'grpcs'] },
            { paths: ['/r'], protocols: ['https'], https_redirect_status_code: 303 },
          ],
        },
      ],
    });
    const err = await loadDeclarativeConfigFile(file).then(
      () => assert.fail('loaded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError);
    const text = err.message;
    assert.match(text, /services\[0\]\.routes\[0\]\.protocols: a route for gRPC only is not supported/);
    assert.match(text, /services\[0\]\.routes\[1\]\.https_redirect_status_code: must be one of 426, 301, 302, 307, 308/);
    assert.match(text, /services\[0\]\.ca_certificates\[0\]: cannot read "\/nonexistent\/ca\.pem" \(ENOENT\)/);
    assert.match(text, /services\[0\]\.ca_certificates\[1\]: ".*" holds no PEM certificate/);
  });
});

describe('upstream TLS: https services verify the certificate, set SNI, and fail with a clear 502', () => {
  const pki = new TestPki();
  let good: HttpsServer;
  let wrongName: HttpsServer;
  let gw: GatewayProcess;
  const sni: (string | false | null)[] = [];

  const serve = (names: string[]) =>
    new Promise<HttpsServer>((resolve) => {
      const c = pki.issue(names[0], names);
      const s = createHttpsServer({ cert: c.cert, key: c.key }, (req, res) => {
        sni.push((req.socket as TLSSocket).servername);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true, host: req.headers.host }));
      });
      s.listen(0, '127.0.0.1', () => resolve(s));
    });

  before(async () => {
    good = await serve(['localhost']);
    wrongName = await serve(['elsewhere.test']);
    const port = (s: HttpsServer) => (s.address() as AddressInfo).port;
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          { name: 'trusted', url: `https://localhost:${port(good)}`, ca_certificates: [pki.caFile], retries: 0, routes: [{ paths: ['/trusted'] }] },
          { name: 'unknown-ca', url: `https://localhost:${port(good)}`, retries: 0, routes: [{ paths: ['/unknown-ca'] }] },
          { name: 'unverified', url: `https://localhost:${port(good)}`, tls_verify: false, retries: 0, routes: [{ paths: ['/unverified'] }] },
          { name: 'wrong-name', url: `https://localhost:${port(wrongName)}`, ca_certificates: [pki.caFile], retries: 0, routes: [{ paths: ['/wrong-name'] }] },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    good?.close();
    wrongName?.close();
  });

  it('reaches an upstream whose certificate chains to ca_certificates, with SNI set to the service host', async () => {
    const res = await httpRequest(gw.proxyUrl, '/trusted');
    assert.equal(res.status, 200);
    assert.equal(res.json().ok, true);
    assert.equal(sni.at(-1), 'localhost');
  });

  it('refuses an upstream certificate from an unknown CA: 502, and the log says why', async () => {
    const res = await httpRequest(gw.proxyUrl, '/unknown-ca');
    assert.equal(res.status, 502);
    assert.deepEqual(res.json(), { message: 'An invalid response was received from the upstream server' });
    const line = await gw.waitForLog((l) => l.msg === 'request failed' && /unknown-ca/.test(l.reason));
    assert.match(line.reason, /TLS certificate verification failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
  });

  it('refuses a certificate for another host name', async () => {
    const res = await httpRequest(gw.proxyUrl, '/wrong-name');
    assert.equal(res.status, 502);
    const line = await gw.waitForLog((l) => l.msg === 'request failed' && /wrong-name/.test(l.reason));
    assert.match(line.reason, /ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  it('tls_verify: false skips verification (Kong\'s default, opt-in here)', async () => {
    const res = await httpRequest(gw.proxyUrl, '/unverified');
    assert.equal(res.status, 200);
  });
});

describe('the demo with GATEHOUSE_DEMO_TLS=1', () => {
  it('serves the demo over HTTPS with a self-signed certificate the banner names; login cookies are Secure and __Host-', async () => {
    const gw = await startGateway({
      env: { GATEHOUSE_DEMO_TLS: '1', GATEHOUSE_DEMO_IDP_LISTEN: '127.0.0.1:0', GATEHOUSE_DEMO_UPSTREAM_LISTEN: '127.0.0.1:0' },
    });
    try {
      const banner = gw.lines.join('\n');
      assert.match(banner, /SELF-SIGNED/);
      const certFile = /(\S+gatehouse-demo-tls-\S+\/demo\.crt)/.exec(banner)?.[1];
      assert.ok(certFile, 'the banner prints the certificate path');
      assert.match(gw.proxyUrl, /^https:\/\//);
      assert.match(banner, new RegExp(`protected route\\s+${gw.proxyUrl}/oidc`));
      const ca = readFileSync(certFile, 'utf8');
      // An API call without a token: the JSON 401, over TLS verified against the printed certificate.
      const res = await tlsRequest(`${gw.proxyUrl}/oidc`, { ca, headers: { accept: 'application/json' } });
      assert.equal(res.status, 401);
      assert.equal(res.peerCn, 'localhost');
      // A browser is sent to log in with a Secure, __Host- login-transaction cookie (the redirect URI is https).
      const browserish = await tlsRequest(`${gw.proxyUrl}/oidc`, { ca, headers: { accept: 'text/html' } });
      assert.equal(browserish.status, 302);
      const cookies = [browserish.headers['set-cookie'] ?? []].flat();
      assert.ok(cookies.some((c) => c.startsWith('__Host-') && /;\s*Secure/i.test(c)), `cookies: ${cookies}`);
    } finally {
      await gw.stop();
    }
  });
});

describe('the Admin API over TLS (GATEHOUSE_ADMIN_LISTEN … ssl)', () => {
  it('serves the Admin API with the same certificates', async () => {
    const pki = new TestPki();
    const pair = pki.issue('srv', ['localhost', '127.0.0.1']);
    const upstream = await startUpstream();
    const gw = await startGateway({
      env: { GATEHOUSE_ADMIN_LISTEN: '127.0.0.1:0 ssl', GATEHOUSE_SSL_CERT: pair.certFile, GATEHOUSE_SSL_CERT_KEY: pair.keyFile },
      config: { _format_version: '3.0', services: [{ name: 'api', url: upstream.url, routes: [{ paths: ['/'] }] }] },
    });
    try {
      const admin = gw.logs().find((l) => l.msg === 'gatehouse started')!.admin as string;
      assert.match(admin, /^https:\/\/127\.0\.0\.1:\d+$/);
      const res = await tlsRequest(`${admin}/services`, { ca: pki.ca.cert });
      assert.equal(res.status, 200);
      assert.equal(res.json().data[0].name, 'api');
      assert.equal(res.peerSerial, new X509Certificate(pair.cert).serialNumber);
    } finally {
      await gw.stop();
      await upstream.close();
    }
  });
});
