import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ConfigProblem } from '../config/config.loader.js';

/**
 * Server certificates for the TLS listeners: read from PEM files, chosen by
 * SNI, and reloaded when the files change without closing a connection.
 *
 * Reload: cert-manager (and most secret mounts) replace the files by swapping
 * a `..data` symlink in the directory, so a watch on the file itself misses
 * the change; the directories are watched instead and every change there
 * re-reads all pairs (debounced). A pair that no longer loads is logged and
 * the previous contexts stay in use: a half-written rotation never takes a
 * listener down. New contexts apply to new handshakes only; established TLS
 * sessions keep theirs (`server.setSecureContext`, and the SNI callback reads
 * the current map on every handshake).
 */

/**
 * Mozilla's "intermediate" TLS 1.2 suites (ECDHE with AES-GCM or ChaCha20,
 * forward secrecy only; the DHE ones are left out as no dhparam is shipped),
 * in the server's order of preference. TLS 1.3 suites are OpenSSL's defaults.
 * Kong's default `ssl_cipher_suite` is `intermediate` too.
 */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export type CipherSuite = 'intermediate' | 'modern' | 'custom';

export interface TlsSettings {
  /** PEM certificate (chain) files; one per hostname group, the first is the default. */
  certFiles: string[];
  /** The matching private key files, same order. */
  keyFiles: string[];
  cipherSuite: CipherSuite;
  /** OpenSSL cipher string when cipherSuite is `custom`. */
  ciphers?: string;
}

/** TLS version and cipher options of a suite: `modern` is TLS 1.3 only, the others TLS 1.2+. */
export function suiteOptions(s: Pick<TlsSettings, 'cipherSuite' | 'ciphers'>): SecureContextOptions {
  if (s.cipherSuite === 'modern') return { minVersion: 'TLSv1.3' };
  return { minVersion: 'TLSv1.2', ciphers: s.cipherSuite === 'custom' ? s.ciphers : INTERMEDIATE_CIPHERS, honorCipherOrder: true };
}

interface LoadedPair {
  context: SecureContext;
  options: SecureContextOptions;
  /** Lower-cased DNS names (SAN, or CN without SAN); `*.example.com` entries kept as written. */
  names: string[];
  notAfter: string;
}

/** Reads and checks one cert/key pair; throws with a one-line reason. */
function loadPair(certFile: string, keyFile: string, suite: SecureContextOptions): LoadedPair {
  const cert = readFileSync(certFile);
  const key = readFileSync(keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`${certFile}: not a PEM certificate`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error(`${keyFile}: the key does not match ${certFile}`);
  } catch (err) {
    if ((err as Error).message.includes('does not match')) throw err;
    throw new Error(`${keyFile}: not a PEM private key`);
  }
  const options: SecureContextOptions = { ...suite, cert, key };
  const context = createSecureContext(options);
  const names = (x509.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (!names.length) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
    if (cn) names.push(cn.toLowerCase());
  }
  return { context, options, names, notAfter: x509.validTo };
}

function samePem(a: SecureContextOptions, b: SecureContextOptions | undefined): boolean {
  return !!b && (a.cert as Buffer).equals(b.cert as Buffer) && (a.key as Buffer).equals(b.key as Buffer);
}

/** Checks every pair at start-up, so a bad file is a settings problem with its variable named, not a crash later. */
export function checkTlsSettings(s: TlsSettings): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (s.certFiles.length !== s.keyFiles.length) {
    problems.push({ path: 'GATEHOUSE_SSL_CERT_KEY', message: `lists ${s.keyFiles.length} key file(s) for ${s.certFiles.length} certificate(s); give one key per certificate, same order` });
    return problems;
  }
  s.certFiles.forEach((cert, i) => {
    try {
      loadPair(cert, s.keyFiles[i], suiteOptions(s));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const message = e.code === 'ENOENT' || e.code === 'EACCES' ? `cannot read ${e.path} (${e.code})` : e.message;
      problems.push({ path: e.path === s.keyFiles[i] || message.startsWith(s.keyFiles[i]) ? 'GATEHOUSE_SSL_CERT_KEY' : 'GATEHOUSE_SSL_CERT', message });
    }
  });
  return problems;
}

/**
 * The current server contexts and their reloading. One per process; every TLS
 * listener (proxy, admin) uses the same store through `serverOptions()`.
 */
export class TlsContextStore {
  private pairs: LoadedPair[];
  private exact = new Map<string, SecureContext>();
  private wildcard: [string, SecureContext][] = [];
  private readonly watchers: FSWatcher[] = [];
  private readonly listeners = new Set<(defaults: SecureContextOptions) => void>();
  private timer?: NodeJS.Timeout;
  /** Reloads done so far (successful ones), for logs and tests. */
  generation = 0;

  constructor(
    private readonly settings: TlsSettings,
    private readonly logger?: Logger,
  ) {
    this.pairs = this.load();
    this.index();
  }

  private load(): LoadedPair[] {
    const suite = suiteOptions(this.settings);
    return this.settings.certFiles.map((c, i) => loadPair(c, this.settings.keyFiles[i], suite));
  }

  private index(): void {
    this.exact = new Map();
    this.wildcard = [];
    for (const p of this.pairs) {
      for (const n of p.names) {
        if (n.startsWith('*.')) this.wildcard.push([n.slice(1), p.context]);
        else if (!this.exact.has(n)) this.exact.set(n, p.context);
      }
    }
  }

  /** The context for an SNI name: an exact name, then a `*.` name covering one label, then the first pair. */
  contextFor(servername: string | undefined): SecureContext {
    if (servername) {
      const name = servername.toLowerCase();
      const hit = this.exact.get(name);
      if (hit) return hit;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const suffix = name.slice(dot);
        for (const [s, ctx] of this.wildcard) if (s === suffix) return ctx;
      }
    }
    return this.pairs[0].context;
  }

  /** Options for `https.createServer` / `http2.createSecureServer`: the default pair plus SNI selection. */
  serverOptions(): SecureContextOptions & { SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void } {
    return {
      ...this.pairs[0].options,
      SNICallback: (name, cb) => cb(null, this.contextFor(name)),
    };
  }

  /** Called after each successful reload with the new default options (for `server.setSecureContext`). */
  onReload(fn: (defaults: SecureContextOptions) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Re-reads every pair now; keeps the old contexts (and logs why) if any pair fails. */
  reload(): boolean {
    let pairs: LoadedPair[];
    try {
      pairs = this.load();
    } catch (err) {
      this.logger?.error({ err: (err as Error).message }, 'TLS certificate reload failed; the previous certificates stay in use');
      return false;
    }
    // Other files in the directory changed, or a rotation rewrote the same bytes: nothing to swap.
    if (pairs.every((p, i) => samePem(p.options, this.pairs[i]?.options))) return false;
    this.pairs = pairs;
    this.index();
    this.generation++;
    for (const fn of this.listeners) fn(pairs[0].options);
    this.logger?.info({ certificates: pairs.map((p) => ({ names: p.names, not_after: p.notAfter })) }, 'TLS certificates reloaded');
    return true;
  }

  /** Watches the files' directories; changes are coalesced for `debounceMs` (a rotation writes several files). */
  watch(debounceMs = 250): void {
    const files = [...this.settings.certFiles, ...this.settings.keyFiles];
    const dirs = new Set(files.map((f) => dirname(resolve(f))));
    const names = new Set(files.map((f) => basename(f)));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          // Our files, or a Kubernetes secret volume's `..data` symlink swap (and its `..2026_…` targets).
          if (filename && !names.has(filename) && !filename.startsWith('..')) return;
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.reload(), debounceMs);
          this.timer.unref();
        });
        w.on('error', (err) => this.logger?.warn({ dir, err: err.message }, 'TLS certificate directory watch failed; certificates will not reload'));
        this.watchers.push(w);
      } catch (err) {
        this.logger?.warn({ dir, err: (err as Error).message }, 'cannot watch TLS certificate directory; certificates will not reload');
      }
    }
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
