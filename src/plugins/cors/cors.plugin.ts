import { Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../../common/request-context.js';
import { RESPONDED, type AccessResult, type CompiledPlugin, type GatewayPlugin } from '../plugin.js';
import { allowedOrigin, compileOrigins } from './cors.origins.js';
import type { CorsConfig } from './cors.schema.js';

type Headers = Record<string, string | string[]>;

/**
 * Kong's `cors` (PRIORITY 2000: before authentication, so a preflight is
 * answered without a token). A preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered here with 200, unless
 * `preflight_continue`; any other request gets its CORS headers through
 * `ctx.responseHeaders`, so they are on the upstream's response and on every
 * error a later plugin produces (a 401 the browser can read is a 401 the page
 * can act on).
 *
 * `Access-Control-Allow-Origin: *` is sent only when every origin is allowed
 * and credentials are off: the Fetch standard refuses `*` with credentials, so
 * then the request's origin is reflected (with Vary: Origin), as Kong does.
 */
@Injectable()
export class CorsPlugin implements GatewayPlugin<CorsConfig> {
  readonly name = 'cors';
  readonly priority = 2000;

  compile(config: CorsConfig): CompiledPlugin {
    const origins = compileOrigins(config.origins);
    const { credentials, preflight_continue: preflightContinue, private_network: privateNetwork, allow_origin_absent: allowAbsent } = config;
    const methods = config.methods.join(',');
    const allowHeaders = config.headers?.length ? config.headers.join(',') : undefined;
    const maxAge = config.max_age === undefined ? undefined : String(config.max_age);
    const exposed = config.exposed_headers?.length ? config.exposed_headers.join(',') : undefined;

    /** The headers for `origin` (undefined: no Origin header), or just Vary when it is not allowed. */
    const originHeaders = (origin: string | undefined): Headers => {
      if (origins.any) {
        if (!credentials) return { 'access-control-allow-origin': '*' };
        // No `*` with credentials: reflect the origin; without one there is nothing to allow.
        if (origin === undefined) return { 'access-control-allow-origin': '*' };
        return { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-allow-credentials': 'true' };
      }
      const allowed = origin === undefined ? undefined : allowedOrigin(origins, origin);
      // Vary even when refused: a cache must not hand this answer to an allowed origin (or the reverse).
      if (allowed === undefined) return { vary: 'Origin' };
      const h: Headers = { 'access-control-allow-origin': allowed, vary: 'Origin' };
      if (credentials) h['access-control-allow-credentials'] = 'true';
      return h;
    };

    return {
      name: this.name,
      priority: this.priority,
      access(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): AccessResult {
        const origin = req.headers.origin;
        if (req.method === 'OPTIONS' && origin !== undefined && req.headers['access-control-request-method'] !== undefined) {
          // Delegated to the upstream (or the next plugins): Kong adds no header to it then.
          if (preflightContinue) return;
          const h = originHeaders(origin);
          if (h['access-control-allow-origin'] !== undefined) {
            const requested = req.headers['access-control-request-headers'];
            const headers = allowHeaders ?? requested;
            if (headers !== undefined) h['access-control-allow-headers'] = headers;
            h['access-control-allow-methods'] = methods;
            if (maxAge !== undefined) h['access-control-max-age'] = maxAge;
            if (privateNetwork && req.headers['access-control-request-private-network'] === 'true') h['access-control-allow-private-network'] = 'true';
          }
          h['x-request-id'] = ctx.requestId;
          h['content-length'] = '0';
          res.writeHead(200, h);
          res.end();
          return RESPONDED;
        }
        if (origin === undefined && !allowAbsent) return;
        const h = originHeaders(origin);
        if (exposed !== undefined && h['access-control-allow-origin'] !== undefined) h['access-control-expose-headers'] = exposed;
        ctx.responseHeaders = ctx.responseHeaders ? { ...ctx.responseHeaders, ...h } : h;
      },
    };
  }
}
