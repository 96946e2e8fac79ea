import { FastifyAdapter } from '@nestjs/platform-fastify';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { GatewaySettings } from '../config/gateway-settings.js';
import { clientErrorResponse, serverOptions } from '../proxy/proxy.server.js';

/**
 * The status listener's HTTP adapter (Kong's `status_listen`): Fastify on a
 * Node server with the proxy listeners' limits and timeouts, refusing
 * malformed requests with the same JSON answers.
 */
export function statusHttpAdapter(settings: GatewaySettings, logger: Logger): FastifyAdapter {
  return new FastifyAdapter({
    logger: false,
    exposeHeadRoutes: false,
    requestIdHeader: false,
    return503OnClosing: true,
    clientErrorHandler: (err, socket) => clientErrorResponse(err as NodeJS.ErrnoException, socket, logger),
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => createServer(serverOptions(settings), handler),
  });
}
