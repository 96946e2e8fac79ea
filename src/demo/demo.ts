import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificate } from '../common/tls-self-signed.js';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { loadDeclarativeConfigFile, validateDeclarativeDocument } from '../config/config.loader.js';
import { GatewayConfig } from '../config/gateway-config.js';
import type { GatewaySettings, ListenAddress } from '../config/gateway-settings.js';
import { DEMO_API_SCOPE, DEMO_PASSWORD, DEMO_USERS, startDemoIdp, type DemoIdp } from './idp/index.js';
import { startEchoUpstream, type EchoUpstream } from './echo-upstream.js';
import { freePort } from './free-port.js';

/**
 * `npm start` with no config: the reference scenario on one machine.
 * Starts the demo OpenID Provider and the echo upstream on loopback, generates
 * the client and session secrets, and loads config/demo.yaml through the normal
 * loader, with the values only known now passed as `{vault://env/...}` references.
 *
 * Demo-only environment variables (each with its default):
 *   GATEHOUSE_DEMO_IDP_LISTEN       127.0.0.1:8180  the demo IdP (port 0: any free port)
 *   GATEHOUSE_DEMO_UPSTREAM_LISTEN  127.0.0.1:8280  the echo upstream (port 0: any free port)
 *   GATEHOUSE_DEMO_TLS              1: the first proxy listener speaks TLS and HTTP/2 with a
 *                                   self-signed certificate made at start (unless
 *                                   GATEHOUSE_SSL_CERT is set); the public URL is https://
 *   GATEHOUSE_DEMO_ENTITIES         on; off: the IdP and echo upstream run, the store starts empty
 *                                   (its own directory under GATEHOUSE_DATA_DIR) and the banner
 *                                   prints the blog's three Admin API commands that fill it
 *   GATEHOUSE_DEMO_PUBLIC_URL       http://localhost:<proxy port> (http://<host>:<port> when
 *                                   the proxy listens on one specific address): the gateway's
 *                                   URL as the browser sees it; the redirect URI is <it>/oidc
 * Variables the demo sets for config/demo.yaml (overwritten at every start):
 *   GATEHOUSE_DEMO_ISSUER, GATEHOUSE_DEMO_UPSTREAM_URL, GATEHOUSE_DEMO_CLIENT_SECRET,
 *   GATEHOUSE_DEMO_SESSION_SECRET, GATEHOUSE_DEMO_REDIRECT_URI, GATEHOUSE_DEMO_LOGOUT_REDIRECT_URI,
 *   GATEHOUSE_DEMO_AUDIENCE
 */

export const DEMO_DEFAULTS = {
  GATEHOUSE_DEMO_IDP_LISTEN: '127.0.0.1:8180',
  GATEHOUSE_DEMO_UPSTREAM_LISTEN: '127.0.0.1:8280',
} as const;
export const DEMO_CLIENT_ID = 'gatehouse';
export const DEMO_ROUTE_PATH = '/oidc';

/** Project root: this file is compiled to dist/src/demo/demo.js. */
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEMO_CONFIG_PATH = resolve(PROJECT_ROOT, 'config/demo.yaml');

export class DemoStartError extends Error {
  readonly code = 'GATEHOUSE_DEMO_START_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DemoStartError';
  }
}

export async function startDemo(settings: GatewaySettings, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  const idpListen = parseListen(env, 'GATEHOUSE_DEMO_IDP_LISTEN');
  const upstreamListen = parseListen(env, 'GATEHOUSE_DEMO_UPSTREAM_LISTEN');

  // The demo binds nothing but loopback unless told otherwise: the gateway's own listeners too
  // (their production defaults are 0.0.0.0). The browser still uses http://localhost:<port>.
  let loopbackDefault = false;
  if (!env.GATEHOUSE_PROXY_LISTEN?.trim()) {
    settings.proxyListen.host = '127.0.0.1';
    loopbackDefault = true;
  }
  if (!env.GATEHOUSE_STATUS_LISTEN?.trim()) settings.statusListen.host = '127.0.0.1';

  // The redirect URI must name the port the gateway will really listen on. With
  // GATEHOUSE_PROXY_LISTEN=...:0 that port is only known after listen, so the
  // demo picks a free port now and rewrites settings.proxyListen to it. (Another
  // process could take it in between; the gateway would then fail to start with
  // EADDRINUSE, never listen on a port the redirect URI does not name.)
  if (settings.proxyListen.port === 0) {
    settings.proxyListen.port = await freePort(settings.proxyListen.host);
  }
  // Same for the status port, so the banner can name the readiness URL.
  if (settings.statusListen.port === 0) {
    settings.statusListen.port = await freePort(settings.statusListen.host);
  }
  // And the Admin API's, so the banner's commands name it.
  if (settings.adminListen?.port === 0) {
    settings.adminListen.port = await freePort(settings.adminListen.host);
  }
  const demoTls = env.GATEHOUSE_DEMO_TLS === '1' ? enableDemoTls(settings) : undefined;
  const scheme = demoTls ? 'https' : 'http';
  const publicUrl = (
    env.GATEHOUSE_DEMO_PUBLIC_URL?.trim() || (loopbackDefault ? `${scheme}://localhost:${settings.proxyListen.port}` : defaultPublicUrl(settings.proxyListen, scheme))
  ).replace(/\/$/, '');
  if (!/^https?:\/\/[^/]+$/.test(publicUrl)) {
    throw new DemoStartError(`GATEHOUSE_DEMO_PUBLIC_URL must be an origin like http://localhost:8000, got "${publicUrl}"`);
  }
  const routeUrl = `${publicUrl}${DEMO_ROUTE_PATH}`;
  const clientSecret = randomBytes(24).toString('base64url');
  const sessionSecret = randomBytes(32).toString('base64url');

  let idp: DemoIdp | undefined;
  let echo: EchoUpstream | undefined;
  const stopAll = () => Promise.all([idp?.stop(), echo?.stop()]).then(() => undefined);
  running.add(stopAll);
  try {
    idp = await startDemoIdp({
      host: idpListen.host,
      port: idpListen.port,
      clients: [
        {
          client_id: DEMO_CLIENT_ID,
          client_secret: clientSecret,
          client_name: 'Gatehouse demo',
          redirect_uris: [routeUrl],
          post_logout_redirect_uris: [routeUrl],
          grant_types: ['authorization_code', 'refresh_token', 'password'],
        },
      ],
      resource: publicUrl,
      loginHint: `Demo users: ${DEMO_USERS.map((u) => u.username).join(', ')}\nPassword: ${DEMO_PASSWORD}\nOnly ${DEMO_USERS[0].username} is granted ${DEMO_API_SCOPE}.`,
      logger: logger.child({ component: 'demo-idp' }),
      unref: true,
    }).catch((err) => {
      throw listenError('demo IdP', 'GATEHOUSE_DEMO_IDP_LISTEN', idpListen, err);
    });
    echo = await startEchoUpstream({ ...upstreamListen, unref: true }).catch((err) => {
      throw listenError('echo upstream', 'GATEHOUSE_DEMO_UPSTREAM_LISTEN', upstreamListen, err);
    });
  } catch (err) {
    await stopAll();
    throw err;
  }
  // The gateway process ends with process.exit (SIGTERM/SIGINT); the servers are
  // unref'd so they never hold it open, and closed on the way out.
  if (!exitHook) process.once('exit', (exitHook = () => void stopDemo()));

  Object.assign(env, {
    GATEHOUSE_DEMO_ISSUER: idp.issuer,
    GATEHOUSE_DEMO_UPSTREAM_URL: `${echo.url}/anything`,
    GATEHOUSE_DEMO_CLIENT_SECRET: clientSecret,
    GATEHOUSE_DEMO_SESSION_SECRET: sessionSecret,
    GATEHOUSE_DEMO_REDIRECT_URI: routeUrl,
    GATEHOUSE_DEMO_AUDIENCE: publicUrl,
    GATEHOUSE_DEMO_LOGOUT_REDIRECT_URI: routeUrl,
  });

  let loaded;
  try {
    // Without its entities the demo starts from an empty document (a fresh Kong with a database).
    loaded = settings.demoEntities
      ? await loadDeclarativeConfigFile(DEMO_CONFIG_PATH, env)
      : { config: validateDeclarativeDocument(EMPTY_DOCUMENT, DEMO_WITHOUT_ENTITIES_SOURCE), source: DEMO_WITHOUT_ENTITIES_SOURCE, document: { ...EMPTY_DOCUMENT } };
  } catch (err) {
    await stopAll();
    throw err;
  }

  const statusHost = settings.statusListen.host === '0.0.0.0' || settings.statusListen.host === '::' ? '127.0.0.1' : settings.statusListen.host;
  const statusUrl = `http://${hostForUrl(statusHost)}:${settings.statusListen.port}`;
  const curl =
    `curl -s -d grant_type=password -d client_id=${DEMO_CLIENT_ID} -d client_secret=${clientSecret} ` +
    `-d username=${DEMO_USERS[0].username} -d password=${DEMO_PASSWORD} -d scope="openid ${DEMO_API_SCOPE}" ${idp.issuer}/token`;

  logger.warn(
    {
      demo: true,
      route: routeUrl,
      issuer: idp.issuer,
      upstream: `${echo.url}/anything`,
      health: `${statusUrl}/health/ready`,
      users: DEMO_USERS.map((u) => u.username),
      client_id: DEMO_CLIENT_ID,
      config: settings.demoEntities ? DEMO_CONFIG_PATH : null,
      entities: settings.demoEntities,
    },
    'DEMO MODE: no declarative config given, running the built-in demo (embedded IdP, echo upstream); not for production',
  );
  process.stderr.write(
    banner({
      routeUrl,
      issuer: idp.issuer,
      upstream: `${echo.url}/anything`,
      statusUrl,
      curl,
      tls: demoTls,
      entities: settings.demoEntities,
      blog: settings.adminListen ? blogCommands({ admin: adminAuthority(settings.adminListen, demoTls !== undefined && settings.adminSsl), upstream: `${echo.url}/anything`, issuer: idp.issuer, clientSecret, routeUrl }) : undefined,
    }),
  );

  return new GatewayConfig(settings, loaded.config, loaded.source, true, loaded.document);
}

const running = new Set<() => Promise<void>>();
let exitHook: (() => void) | undefined;

/** Stops the demo IdP and echo upstream started by startDemo (tests; the process exit does it otherwise). */
export async function stopDemo(): Promise<void> {
  const all = [...running];
  running.clear();
  await Promise.all(all.map((stop) => stop()));
}

/**
 * GATEHOUSE_DEMO_TLS=1: the first proxy listener becomes `ssl http2`. Without
 * GATEHOUSE_SSL_CERT a certificate for localhost and 127.0.0.1 is made now and
 * written to a temporary directory (its path is in the banner, for curl --cacert).
 */
function enableDemoTls(settings: GatewaySettings): { certFile: string; selfSigned: boolean } {
  const first = settings.proxyListeners[0];
  first.ssl = true;
  first.http2 = true;
  if (settings.tls) return { certFile: settings.tls.certFiles[0], selfSigned: false };
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-demo-tls-'));
  const { cert, key } = generateCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1', '::1'] });
  const certFile = join(dir, 'demo.crt');
  const keyFile = join(dir, 'demo.key');
  writeFileSync(certFile, cert);
  writeFileSync(keyFile, key, { mode: 0o600 });
  settings.tls = { certFiles: [certFile], keyFiles: [keyFile], cipherSuite: settings.sslCipherSuite, ciphers: settings.sslCiphers };
  return { certFile, selfSigned: true };
}

const EMPTY_DOCUMENT = { _format_version: '3.0' } as const;
const DEMO_WITHOUT_ENTITIES_SOURCE = 'demo (GATEHOUSE_DEMO_ENTITIES=off)';

/**
 * The reference blog's three Admin API calls (httpie, as the blog writes them),
 * filled in with this demo's IdP, client, echo upstream and redirect URI. With
 * GATEHOUSE_DEMO_ENTITIES=off they create the demo's route exactly as Kong's
 * Admin API would; with the entities on, the first answers Kong's 409.
 */
export function blogCommands(o: { admin: string; upstream: string; issuer: string; clientSecret: string; routeUrl: string }): string[] {
  return [
    `http POST ${o.admin}/services name=openidconnect url=${o.upstream}`,
    `http POST ${o.admin}/services/openidconnect/routes name=openidconnectRoute paths=${DEMO_ROUTE_PATH} -f`,
    `http -f POST ${o.admin}/routes/openidconnectRoute/plugins name=openid-connect \\\n` +
      `  config.issuer=${o.issuer} config.client_id=${DEMO_CLIENT_ID} config.client_secret=${o.clientSecret} \\\n` +
      `  config.redirect_uri=${o.routeUrl} config.consumer_optional=true config.scopes_required=${DEMO_API_SCOPE}`,
  ];
}

/** httpie's shorthand for the admin listener: `localhost:8001` as the blog writes it for 127.0.0.1:8001. */
function adminAuthority(listen: ListenAddress, https: boolean): string {
  const host = listen.host === '127.0.0.1' || listen.host === '0.0.0.0' ? 'localhost' : hostForUrl(listen.host === '::' ? '::1' : listen.host);
  return `${https ? 'https://' : ''}${host}:${listen.port}`;
}

function banner(o: {
  routeUrl: string;
  issuer: string;
  upstream: string;
  statusUrl: string;
  curl: string;
  tls?: { certFile: string; selfSigned: boolean };
  entities: boolean;
  blog?: string[];
}): string {
  const [withScope, withoutScope] = DEMO_USERS;
  const blog = !o.blog
    ? ''
    : o.entities
      ? `
 The blog's Admin API commands: this demo already holds the entities they
 create (the first one answers 409). To type them yourself, start it with
 GATEHOUSE_DEMO_ENTITIES=off npm start
`
      : `
 GATEHOUSE_DEMO_ENTITIES=off: no services, routes or plugins yet (the route
 answers 404 until you create them). The blog's three commands, filled in:
${o.blog.map((c) => `   ${c.replaceAll('\n', '\n   ')}`).join('\n')}
 Changes persist in GATEHOUSE_DATA_DIR/demo-without-entities; the client secret
 is new at every start (delete that directory to start over).
`;
  return `
==============================================================================
 GATEHOUSE DEMO MODE - NOT FOR PRODUCTION
 No declarative config was given (GATEHOUSE_DECLARATIVE_CONFIG / --config), so
 the built-in demo runs: an embedded development IdP, an echo upstream, and
 ${o.entities ? 'config/demo.yaml' : 'an empty store'}. Keys and secrets are generated at every start.

   protected route  ${o.routeUrl}     (open it in a browser)
   demo IdP         ${o.issuer}     (issuer)
   echo upstream    ${o.upstream}
   readiness        ${o.statusUrl}/health/ready

 Users (password ${DEMO_PASSWORD}):
   ${withScope.username.padEnd(20)} granted ${DEMO_API_SCOPE}      -> 200, echo shows x-user-* headers
   ${withoutScope.username.padEnd(20)} not granted ${DEMO_API_SCOPE}  -> 403, "required scopes were not found"

 A bearer token in one command (demo-only password grant), then call the route:
   ${o.curl}
   curl ${o.tls ? `--cacert ${o.tls.certFile} ` : ''}-H "Authorization: Bearer <access_token>" ${o.routeUrl}
${
  o.tls
    ? `
 TLS (GATEHOUSE_DEMO_TLS=1): HTTPS and HTTP/2 on the proxy port with ${o.tls.selfSigned ? 'a SELF-SIGNED\n certificate made at this start (browsers warn once; curl needs --cacert or -k)' : 'GATEHOUSE_SSL_CERT'}:
   ${o.tls.certFile}
`
    : ''
}
${blog}
 Per-caller rate limiting and caching: uncomment the rate-limiting and
 proxy-cache plugins in config/demo.yaml (RateLimit-* and X-Cache-Status headers).
==============================================================================

`;
}

function parseListen(env: NodeJS.ProcessEnv, key: keyof typeof DEMO_DEFAULTS): ListenAddress {
  const value = (env[key] ?? DEMO_DEFAULTS[key]).trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new DemoStartError(`${key} must be "host:port" (e.g. 127.0.0.1:8180, port 0 for any free port), got "${value}"`);
  return { host: m[1] ?? m[2], port };
}

/** The browser's view of the gateway: a wildcard listen address is reached as localhost (Kong's http://localhost:8000). */
function defaultPublicUrl(listen: ListenAddress, scheme = 'http'): string {
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? 'localhost' : listen.host;
  return `${scheme}://${hostForUrl(host)}:${listen.port}`;
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}


function listenError(what: string, key: string, listen: ListenAddress, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new DemoStartError(
      `the ${what} cannot listen on ${hostForUrl(listen.host)}:${listen.port} (${code}); set ${key} to another host:port (port 0 picks a free one)`,
      { cause: err },
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}
