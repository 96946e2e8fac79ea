import { BlockList, isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { ConfigProblem } from './config.loader.js';
import { checkTlsSettings, type CipherSuite, type TlsSettings } from '../common/tls-context.js';
import { parseListeners, type ListenerSpec } from '../proxy/listeners.js';
import type { DatabaseKind } from './config-store.js';

/**
 * Gateway-level settings from the environment, named like Kong's `KONG_*`
 * variables. Every variable, its default and its meaning is listed here and in
 * docs/configuration.md; nothing else reads `process.env` for settings.
 */
export const SETTINGS_DEFAULTS = {
  GATEHOUSE_DECLARATIVE_CONFIG: '',
  GATEHOUSE_PROXY_LISTEN: '0.0.0.0:8000',
  GATEHOUSE_STATUS_LISTEN: '0.0.0.0:8100',
  GATEHOUSE_TRUSTED_IPS: '',
  GATEHOUSE_LOG_LEVEL: 'info',
  GATEHOUSE_CLIENT_HEADER_TIMEOUT: '60000',
  GATEHOUSE_CLIENT_BODY_TIMEOUT: '60000',
  GATEHOUSE_SHUTDOWN_TIMEOUT: '10000',
  GATEHOUSE_SHUTDOWN_DELAY: '5',
  GATEHOUSE_MAX_HEADER_SIZE: '16384',
  GATEHOUSE_WORKERS: '1',
  GATEHOUSE_SSL_CERT: '',
  GATEHOUSE_SSL_CERT_KEY: '',
  GATEHOUSE_SSL_CIPHER_SUITE: 'intermediate',
  GATEHOUSE_SSL_CIPHERS: '',
  /** Unset: `off` when a declarative file is given (Kong's DB-less), `embedded` otherwise. */
  GATEHOUSE_DATABASE: '',
  /** Kong's `admin_listen`; `off` disables the Admin API. */
  GATEHOUSE_ADMIN_LISTEN: '127.0.0.1:8001',
  /** Admin bearer tokens' issuer and audience: required when the admin listener is not loopback-only. */
  GATEHOUSE_ADMIN_ISSUER: '',
  GATEHOUSE_ADMIN_AUDIENCE: '',
  /** Where the embedded store keeps its file (must be writable; a volume in a container). */
  GATEHOUSE_DATA_DIR: 'data',
  // Kong's pg_* settings and defaults (database and user named after the product, as Kong's are `kong`).
  GATEHOUSE_PG_HOST: '127.0.0.1',
  GATEHOUSE_PG_PORT: '5432',
  GATEHOUSE_PG_USER: 'gatehouse',
  GATEHOUSE_PG_PASSWORD: '',
  GATEHOUSE_PG_DATABASE: 'gatehouse',
  GATEHOUSE_PG_SSL: 'off',
  GATEHOUSE_PG_SSL_VERIFY: 'off',
  GATEHOUSE_PG_TIMEOUT: '5000',
  GATEHOUSE_PG_MIGRATIONS: 'auto',
  /**
   * The built-in demo's services, routes and plugins (config/demo.yaml). `off`: the demo IdP and echo
   * upstream run but the store starts empty, so the blog's three Admin API commands create them.
   */
  GATEHOUSE_DEMO_ENTITIES: 'on',
} as const;

const CIPHER_SUITES = ['intermediate', 'modern', 'custom'] as const;

export interface ListenAddress {
  host: string;
  port: number;
}

export interface GatewaySettings {
  /** Path of the declarative config, or undefined for the built-in demo. */
  declarativeConfig?: string;
  /** The first proxy listener (the one logs and the demo name); `proxyListeners` has them all. */
  proxyListen: ListenAddress;
  /** Every proxy listener, Kong's `proxy_listen` syntax (see listeners.ts). */
  proxyListeners: ListenerSpec[];
  /**
   * Server certificates for `ssl` listeners; undefined when none are configured
   * (then no listener may be `ssl`, except the TLS demo, which makes its own).
   */
  tls?: TlsSettings;
  /** TLS version and cipher policy, also used by the demo's self-signed certificate. */
  sslCipherSuite: CipherSuite;
  sslCiphers?: string;
  statusListen: ListenAddress;
  /** Peers whose X-Forwarded-* and X-Request-Id are believed. Empty: nobody. */
  trustedIps: BlockList;
  trustedIpsText: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** Slow-client limits: time to receive all headers, and the whole request. */
  clientHeaderTimeoutMs: number;
  clientBodyTimeoutMs: number;
  /** How long SIGTERM waits for in-flight requests before closing them. */
  shutdownTimeoutMs: number;
  /**
   * How long SIGTERM keeps serving with readiness at 503 before it stops
   * accepting: the time load balancers and Kubernetes endpoints need to stop
   * sending (GATEHOUSE_SHUTDOWN_DELAY, in seconds). 0 in the built-in demo
   * unless set: nothing routes to it by readiness.
   */
  shutdownDelayMs: number;
  maxHeaderSize: number;
  /** Processes serving the listeners (node:cluster); `auto` is one per core. */
  workers: number;
  /** Where the declarative config lives (Kong's `database`): see ConfigStore. */
  database: DatabaseKind;
  /** True for `npm start` with neither a config file nor GATEHOUSE_DATABASE: the built-in demo. */
  demo: boolean;
  /** The Admin API listener, or undefined when GATEHOUSE_ADMIN_LISTEN is `off`. */
  adminListen?: ListenAddress;
  /** `GATEHOUSE_ADMIN_LISTEN=… ssl`: the Admin API over TLS with the GATEHOUSE_SSL_CERT certificates. */
  adminSsl: boolean;
  /** Admin bearer authentication; undefined on a loopback-only listener without GATEHOUSE_ADMIN_ISSUER. */
  adminAuth?: { issuer: string; audience: string };
  /** The embedded store's directory. */
  dataDir: string;
  /** False with GATEHOUSE_DEMO_ENTITIES=off: the demo starts with an empty store (only meaningful when `demo`). */
  demoEntities: boolean;
  /** The `postgres` store's connection (used only when the database is `postgres`). */
  postgres: PostgresSettings;
}

/** 127.0.0.0/8, ::1 and localhost: an admin listener only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface PostgresSettings {
  host: string;
  port: number;
  user: string;
  /** Never logged; `source` strings leave it out. */
  password: string;
  database: string;
  ssl: boolean;
  /** Verify the server's certificate and name (Kong's `pg_ssl_verify`); CAs beyond Node's come from NODE_EXTRA_CA_CERTS. */
  sslVerify: boolean;
  /** Kong's `pg_timeout`: ms for connecting and for every query. */
  timeoutMs: number;
  /** `auto`: every start applies pending schema migrations (under an advisory lock); `manual`: start refuses until `migrations up` ran. */
  migrations: 'auto' | 'manual';
}

const DATABASES: readonly DatabaseKind[] = ['off', 'embedded', 'postgres'];

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

export class SettingsError extends Error {
  readonly code = 'GATEHOUSE_SETTINGS_INVALID';
  constructor(readonly problems: ConfigProblem[]) {
    super(`invalid gateway settings\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

export function readGatewaySettings(env: NodeJS.ProcessEnv, argv: readonly string[] = []): GatewaySettings {
  const problems: ConfigProblem[] = [];
  // An empty variable (`FOO=` in a compose file or a ConfigMap) means "use the default".
  const get = (k: keyof typeof SETTINGS_DEFAULTS) => env[k]?.trim() || SETTINGS_DEFAULTS[k];

  const listen = (k: 'GATEHOUSE_STATUS_LISTEN' | 'GATEHOUSE_ADMIN_LISTEN'): ListenAddress => {
    const value = get(k).trim();
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) {
      problems.push({ path: k, message: `must be "host:port" (e.g. 0.0.0.0:8000 or [::]:8000), got "${value}"` });
      return { host: '127.0.0.1', port: 0 };
    }
    return { host: m[1] ?? m[2], port };
  };
  const proxy = parseListeners(get('GATEHOUSE_PROXY_LISTEN'), 'GATEHOUSE_PROXY_LISTEN');
  problems.push(...proxy.problems);
  const sslCipherSuite = get('GATEHOUSE_SSL_CIPHER_SUITE').toLowerCase() as CipherSuite;
  const sslCiphers = get('GATEHOUSE_SSL_CIPHERS') || undefined;
  if (!CIPHER_SUITES.includes(sslCipherSuite)) {
    problems.push({ path: 'GATEHOUSE_SSL_CIPHER_SUITE', message: `must be one of ${CIPHER_SUITES.join(', ')}, got "${get('GATEHOUSE_SSL_CIPHER_SUITE')}"` });
  } else if (sslCipherSuite === 'custom' && !sslCiphers) {
    problems.push({ path: 'GATEHOUSE_SSL_CIPHERS', message: 'is required when GATEHOUSE_SSL_CIPHER_SUITE is custom (an OpenSSL cipher list)' });
  }
  const list = (k: 'GATEHOUSE_SSL_CERT' | 'GATEHOUSE_SSL_CERT_KEY') => get(k).split(',').map((f) => f.trim()).filter(Boolean);
  let tls: TlsSettings | undefined;
  const certFiles = list('GATEHOUSE_SSL_CERT');
  const keyFiles = list('GATEHOUSE_SSL_CERT_KEY');
  if (certFiles.length || keyFiles.length) {
    tls = { certFiles, keyFiles, cipherSuite: sslCipherSuite, ciphers: sslCiphers };
    if (!certFiles.length) problems.push({ path: 'GATEHOUSE_SSL_CERT', message: 'is required with GATEHOUSE_SSL_CERT_KEY' });
    else if (CIPHER_SUITES.includes(sslCipherSuite)) problems.push(...checkTlsSettings(tls));
  }

  const positiveInt = (k: keyof typeof SETTINGS_DEFAULTS, alternative = '') => {
    const n = Number(get(k));
    if (!Number.isInteger(n) || n <= 0) problems.push({ path: k, message: `must be a positive integer${alternative}, got "${get(k)}"` });
    return n;
  };

  // Kong reads on/off (and true/false) for its boolean settings.
  const onOff = (k: 'GATEHOUSE_PG_SSL' | 'GATEHOUSE_PG_SSL_VERIFY' | 'GATEHOUSE_DEMO_ENTITIES') => {
    const value = get(k).toLowerCase();
    if (value === 'on' || value === 'true') return true;
    if (value === 'off' || value === 'false') return false;
    problems.push({ path: k, message: `must be "on" or "off", got "${get(k)}"` });
    return false;
  };
  const pgPort = positiveInt('GATEHOUSE_PG_PORT');
  if (pgPort > 65535) problems.push({ path: 'GATEHOUSE_PG_PORT', message: `must be a TCP port (1-65535), got "${get('GATEHOUSE_PG_PORT')}"` });
  const pgMigrations = get('GATEHOUSE_PG_MIGRATIONS').toLowerCase();
  if (pgMigrations !== 'auto' && pgMigrations !== 'manual') {
    problems.push({ path: 'GATEHOUSE_PG_MIGRATIONS', message: `must be "auto" or "manual", got "${get('GATEHOUSE_PG_MIGRATIONS')}"` });
  }
  // The password is the one setting where an empty value is meaningful as itself, and it is never trimmed.
  const postgres: PostgresSettings = {
    host: get('GATEHOUSE_PG_HOST'),
    port: pgPort,
    user: get('GATEHOUSE_PG_USER'),
    password: env.GATEHOUSE_PG_PASSWORD ?? '',
    database: get('GATEHOUSE_PG_DATABASE'),
    ssl: onOff('GATEHOUSE_PG_SSL'),
    sslVerify: onOff('GATEHOUSE_PG_SSL_VERIFY'),
    timeoutMs: positiveInt('GATEHOUSE_PG_TIMEOUT'),
    migrations: pgMigrations as PostgresSettings['migrations'],
  };

  const trustedIps = new BlockList();
  const trustedIpsText = get('GATEHOUSE_TRUSTED_IPS').trim();
  for (const entry of trustedIpsText.split(',').map((s) => s.trim()).filter(Boolean)) {
    // `addr` or `addr/bits`; "10.0.0.0/" must not read as /0, which would trust everyone.
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(entry);
    const addr = m?.[1] ?? '';
    const family = isIP(addr);
    const prefix = m?.[2] === undefined ? (family === 6 ? 128 : 32) : Number(m[2]);
    if (!m || !family || prefix > (family === 6 ? 128 : 32)) {
      problems.push({ path: 'GATEHOUSE_TRUSTED_IPS', message: `"${entry}" is not an IP address or CIDR block` });
      continue;
    }
    trustedIps.addSubnet(addr, prefix, family === 6 ? 'ipv6' : 'ipv4');
    // A v4 proxy reached over a dual-stack socket shows up as ::ffff:a.b.c.d.
    if (family === 4) trustedIps.addSubnet(`::ffff:${addr}`, 96 + prefix, 'ipv6');
  }

  const logLevel = get('GATEHOUSE_LOG_LEVEL').toLowerCase() as GatewaySettings['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push({ path: 'GATEHOUSE_LOG_LEVEL', message: `must be one of ${LOG_LEVELS.join(', ')}, got "${get('GATEHOUSE_LOG_LEVEL')}"` });
  }

  let declarativeConfig = get('GATEHOUSE_DECLARATIVE_CONFIG') || undefined;
  const flag = argv.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (flag >= 0) {
    const value = argv[flag].includes('=') ? argv[flag].slice('--config='.length) : argv[flag + 1];
    if (!value || (!argv[flag].includes('=') && value.startsWith('--'))) problems.push({ path: '--config', message: 'needs a file path' });
    else declarativeConfig = value;
  }

  const databaseText = get('GATEHOUSE_DATABASE').toLowerCase();
  const database = (databaseText || (declarativeConfig ? 'off' : 'embedded')) as DatabaseKind;
  if (!DATABASES.includes(database)) {
    problems.push({ path: 'GATEHOUSE_DATABASE', message: `must be one of ${DATABASES.join(', ')}, got "${get('GATEHOUSE_DATABASE')}"` });
  } else if (database === 'off' && !declarativeConfig) {
    problems.push({ path: 'GATEHOUSE_DATABASE', message: 'is "off", which needs a declarative config (--config PATH or GATEHOUSE_DECLARATIVE_CONFIG)' });
  }

  // Kong's admin_listen: one `host:port`, optionally `ssl` (the GATEHOUSE_SSL_CERT certificates), or `off`.
  let adminListen: ListenAddress | undefined;
  let adminSsl = false;
  const adminText = get('GATEHOUSE_ADMIN_LISTEN');
  if (adminText.toLowerCase() !== 'off') {
    if (/\s/.test(adminText.trim())) {
      const admin = parseListeners(adminText, 'GATEHOUSE_ADMIN_LISTEN');
      problems.push(...admin.problems);
      if (admin.listeners.length > 1) problems.push({ path: 'GATEHOUSE_ADMIN_LISTEN', message: 'takes one listener' });
      if (admin.listeners[0]?.http2) problems.push({ path: 'GATEHOUSE_ADMIN_LISTEN', message: 'http2 is not offered on the admin listener (ssl is)' });
      adminListen = admin.listeners[0] && { host: admin.listeners[0].host, port: admin.listeners[0].port };
      adminSsl = admin.listeners[0]?.ssl ?? false;
    } else {
      adminListen = listen('GATEHOUSE_ADMIN_LISTEN');
    }
  }
  const adminIssuer = get('GATEHOUSE_ADMIN_ISSUER');
  const adminAudience = get('GATEHOUSE_ADMIN_AUDIENCE');
  let adminAuth: GatewaySettings['adminAuth'];
  if (adminIssuer || adminAudience) {
    if (!/^https?:\/\/[^\s]+$/.test(adminIssuer)) problems.push({ path: 'GATEHOUSE_ADMIN_ISSUER', message: `must be the admin tokens' issuer URL, got "${adminIssuer}"` });
    if (!adminAudience) problems.push({ path: 'GATEHOUSE_ADMIN_AUDIENCE', message: 'is required with GATEHOUSE_ADMIN_ISSUER: admin tokens must be issued for the Admin API (RFC 9068 §4)' });
    adminAuth = { issuer: adminIssuer, audience: adminAudience };
  } else if (adminListen && !isLoopbackHost(adminListen.host)) {
    // Kong's Admin API has no authentication of its own; exposed without it, anyone reaching the port could reroute traffic.
    problems.push({
      path: 'GATEHOUSE_ADMIN_LISTEN',
      message: `listens beyond loopback (${adminListen.host}) without authentication: set GATEHOUSE_ADMIN_ISSUER and GATEHOUSE_ADMIN_AUDIENCE, or listen on 127.0.0.1, or set it to off`,
    });
  }
  const shutdownDelay = () => {
    const text = env.GATEHOUSE_SHUTDOWN_DELAY?.trim();
    if (!text && !declarativeConfig) return 0;
    const seconds = Number(get('GATEHOUSE_SHUTDOWN_DELAY'));
    // Bounded so a typo (ms instead of s) cannot hold a pod for hours.
    if (!/^\d+(\.\d+)?$/.test(get('GATEHOUSE_SHUTDOWN_DELAY')) || seconds > 3600) {
      problems.push({ path: 'GATEHOUSE_SHUTDOWN_DELAY', message: `must be a number of seconds from 0 to 3600, got "${get('GATEHOUSE_SHUTDOWN_DELAY')}"` });
      return 0;
    }
    return Math.round(seconds * 1000);
  };

  const settings: GatewaySettings = {
    declarativeConfig,
    database,
    demo: !declarativeConfig && !databaseText,
    adminListen,
    adminSsl,
    adminAuth,
    dataDir: get('GATEHOUSE_DATA_DIR'),
    demoEntities: onOff('GATEHOUSE_DEMO_ENTITIES'),
    proxyListen: proxy.listeners[0] ? { host: proxy.listeners[0].host, port: proxy.listeners[0].port } : { host: '127.0.0.1', port: 0 },
    proxyListeners: proxy.listeners,
    tls,
    sslCipherSuite,
    sslCiphers,
    statusListen: listen('GATEHOUSE_STATUS_LISTEN'),
    trustedIps,
    trustedIpsText,
    logLevel,
    clientHeaderTimeoutMs: positiveInt('GATEHOUSE_CLIENT_HEADER_TIMEOUT'),
    clientBodyTimeoutMs: positiveInt('GATEHOUSE_CLIENT_BODY_TIMEOUT'),
    shutdownTimeoutMs: positiveInt('GATEHOUSE_SHUTDOWN_TIMEOUT'),
    shutdownDelayMs: shutdownDelay(),
    maxHeaderSize: positiveInt('GATEHOUSE_MAX_HEADER_SIZE'),
    workers: get('GATEHOUSE_WORKERS').trim() === 'auto' ? availableParallelism() : positiveInt('GATEHOUSE_WORKERS', ' or "auto"'),
    postgres,
  };
  // The TLS demo makes its own self-signed certificate; anything else needs files.
  const demoTls = settings.demo && env.GATEHOUSE_DEMO_TLS === '1';
  if (!tls && !demoTls && proxy.listeners.some((l) => l.ssl)) {
    problems.push({ path: 'GATEHOUSE_SSL_CERT', message: 'is required: GATEHOUSE_PROXY_LISTEN has an ssl listener (set GATEHOUSE_SSL_CERT and GATEHOUSE_SSL_CERT_KEY to PEM files)' });
  } else if (!tls && adminSsl) {
    problems.push({ path: 'GATEHOUSE_SSL_CERT', message: 'is required: GATEHOUSE_ADMIN_LISTEN is ssl (set GATEHOUSE_SSL_CERT and GATEHOUSE_SSL_CERT_KEY to PEM files)' });
  }
  if (problems.length) throw new SettingsError(problems);
  return settings;
}
