import { Body, Controller, Get, Header, HttpCode, Inject, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { GatewayError } from '../common/gateway.error.js';
import { CONFIGURATION_HASH, PROCESS_STATUSES, type ConfigurationHashSource, type ProcessStatusSource } from './gateway-state.module.js';
import { mebibytes, sumServerCounters } from './process-status.js';
import { ReadinessState } from './readiness.state.js';
import { ReadinessService } from './readiness.service.js';

/**
 * Kong's Status API on the status listener, so a Kong Helm chart's probes and
 * `kong drain` work unchanged: `GET /status` (node counters, memory,
 * `configuration_hash`), `GET /status/ready` and `POST /status/ready` with
 * `status=draining`.
 */
@Controller('status')
export class StatusController {
  constructor(
    private readonly readiness: ReadinessService,
    private readonly state: ReadinessState,
    @Inject(CONFIGURATION_HASH) private readonly configurationHash: ConfigurationHashSource,
    @Inject(PROCESS_STATUSES) private readonly processStatuses: ProcessStatusSource,
  ) {}

  /**
   * Kong's node status. `server` sums every worker process (Kong sums its nginx
   * workers); `memory.workers_lua_vms` keeps Kong's name for each worker's
   * garbage-collected heap (V8's here), `memory.workers` adds what Node reports.
   */
  @Get()
  @Header('cache-control', 'no-store')
  async status() {
    const all = await this.processStatuses();
    return {
      database: { reachable: true },
      memory: {
        workers_lua_vms: all.map((p) => ({ http_allocated_gc: mebibytes(p.memory.heap_used), pid: p.pid })),
        workers: all.map((p) => ({
          pid: p.pid,
          rss: mebibytes(p.memory.rss),
          heap_used: mebibytes(p.memory.heap_used),
          heap_total: mebibytes(p.memory.heap_total),
          external: mebibytes(p.memory.external),
        })),
      },
      server: sumServerCounters(all),
      configuration_hash: this.configurationHash(),
    };
  }

  @Get('ready')
  @Header('cache-control', 'no-store')
  async ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const verdict = await this.readiness.kongReadiness();
    if (verdict.ready) return { message: 'ready' };
    reply.status(503);
    return { message: verdict.message };
  }

  /**
   * `kong drain`: `{"status":"draining"}` (JSON, or form-encoded as Kong's
   * Admin API accepts) turns readiness to 503 for good; 204 as Kong answers.
   */
  @Post('ready')
  @HttpCode(204)
  drain(@Body() body: unknown): void {
    const status = body && typeof body === 'object' ? (body as Record<string, unknown>).status : undefined;
    if (status !== 'draining') {
      const reason = 'status must be "draining"';
      throw new GatewayError(400, 'Bad request', { reason, body: { reason } });
    }
    this.state.startDraining('status-api');
  }
}
