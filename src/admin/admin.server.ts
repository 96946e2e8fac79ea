import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { TlsContextStore } from '../common/tls-context.js';
import { NestPinoLogger } from '../common/logger.js';
import type { ConfigRuntime } from '../config/config-runtime.js';
import type { ConfigStore } from '../config/config-store.js';
import type { GatewaySettings, ListenAddress } from '../config/gateway-settings.js';
import { parseFormBody } from './admin-body.js';
import { AdminExceptionFilter } from './admin-exception.filter.js';
import { AdminModule, type AdminOptions } from './admin.module.js';

/** Admin bodies are configuration, not uploads: a whole declarative file for thousands of routes fits well inside. */
const ADMIN_BODY_LIMIT = 16 * 1024 * 1024;

export const GATEHOUSE_VERSION: string = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

export interface RunningAdmin {
  app: NestFastifyApplication;
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the Admin API listener (Kong's `admin_listen`, default
 * 127.0.0.1:8001). Bodies: JSON, form-encoded (`http -f`, `curl -d`) and, for
 * `POST /config`, YAML; anything else is 415.
 */
export async function startAdminListener(opts: {
  listen: ListenAddress;
  /** Serve HTTPS with these certificates (GATEHOUSE_ADMIN_LISTEN … ssl); they reload as the proxy's do. */
  tls?: TlsContextStore;
  runtime: ConfigRuntime;
  store: ConfigStore;
  logger: Logger;
  options: Omit<AdminOptions, 'version'> & { version?: string };
}): Promise<RunningAdmin> {
  const logger = opts.logger.child({ component: 'admin' });
  const adapter = new FastifyAdapter({
    logger: false,
    exposeHeadRoutes: false,
    requestIdHeader: false,
    bodyLimit: ADMIN_BODY_LIMIT,
    return503OnClosing: true,
    ...(opts.tls ? { https: opts.tls.serverOptions() } : {}),
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AdminModule.register(opts.runtime, opts.store, logger, { version: GATEHOUSE_VERSION, ...opts.options }),
    adapter,
    { logger: new NestPinoLogger(logger), abortOnError: false, bodyParser: false },
  );
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, parseFormBody(String(body))));
  fastify.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'], { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));
  // Errors raised before a handler (an unreadable body, an unknown media type) reach the filter too: Nest installs
  // Fastify's error handler at init and hands every error to the global filters.
  app.useGlobalFilters(new AdminExceptionFilter(logger));
  await app.listen(opts.listen.port, opts.listen.host);
  if (opts.tls) {
    const server = app.getHttpServer() as import('node:https').Server;
    const unsubscribe = opts.tls.onReload((defaults) => server.setSecureContext(defaults));
    server.once('close', unsubscribe);
  }
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : opts.listen.port;
  const host = opts.listen.host === '0.0.0.0' || opts.listen.host === '::' ? '127.0.0.1' : opts.listen.host;
  return {
    app,
    url: `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () => app.close(),
  };
}

/** What `GET /` shows of the settings (Kong's `configuration`), and the admin auth. */
export function adminOptions(settings: GatewaySettings): Omit<AdminOptions, 'version'> {
  const addr = (l?: ListenAddress) => (l ? `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}` : 'off');
  return {
    auth: settings.adminAuth,
    configuration: {
      database: settings.database,
      proxy_listen: [addr(settings.proxyListen)],
      status_listen: [addr(settings.statusListen)],
      admin_listen: [addr(settings.adminListen)],
      admin_issuer: settings.adminAuth?.issuer ?? null,
      admin_audience: settings.adminAuth?.audience ?? null,
      trusted_ips: settings.trustedIpsText ? settings.trustedIpsText.split(',').map((s) => s.trim()) : [],
      log_level: settings.logLevel,
      nginx_worker_processes: settings.workers,
      data_dir: settings.dataDir,
      client_header_timeout: settings.clientHeaderTimeoutMs,
      client_body_timeout: settings.clientBodyTimeoutMs,
      max_header_size: settings.maxHeaderSize,
      shutdown_timeout: settings.shutdownTimeoutMs,
    },
  };
}
