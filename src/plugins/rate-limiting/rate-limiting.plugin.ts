import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { GatewayError, ServiceUnavailableError } from '../../common/gateway.error.js';
import { LOGGER } from '../../common/logger.js';
import { redisClients } from '../../common/redis-client.registry.js';
import type { RequestContext } from '../../common/request-context.js';
import { gatewayMetrics } from '../../metrics/gateway-metrics.js';
import type { AccessResult, CompiledPlugin, GatewayPlugin, PluginScope } from '../plugin.js';
import { LocalCounters, RedisCounters, type LimitWindow, type Take } from './rate-limiting.counters.js';
import { WINDOWS, type RateLimitingConfig, type WindowName } from './rate-limiting.schema.js';
import { windowEnd, windowStart } from './rate-limiting.windows.js';

/** Fault-tolerant passes log at most one warning per this interval per plugin instance: a Redis outage is one event, not one line per request. */
const WARN_INTERVAL_MS = 1_000;

interface Budget {
  windows: readonly LimitWindow[];
  counters: LocalCounters | RedisCounters;
}

interface Tier {
  claim: string;
  value: string;
  budget: Budget;
}

/** An instance's counters, shared by every route it applies to (a service or global instance is one budget, as in Kong). */
interface InstanceState {
  base: Budget;
  tiers: Tier[];
}

/**
 * Kong's `rate-limiting` (PRIORITY 910): after openid-connect (1050), so a
 * caller refused by authentication or authorization consumes nothing, and
 * `limit_by: consumer` sees the authenticated caller. Fixed windows (see
 * rate-limiting.windows.ts); `local` decides synchronously, `redis` in one
 * atomic script call per request.
 */
@Injectable()
export class RateLimitingPlugin implements GatewayPlugin<RateLimitingConfig> {
  readonly name = 'rate-limiting';
  readonly priority = 910;
  private readonly instances = new WeakMap<RateLimitingConfig, InstanceState>();

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  compile(config: RateLimitingConfig, scope: PluginScope): CompiledPlugin {
    let state = this.instances.get(config);
    if (!state) {
      state = this.instanceState(config);
      this.instances.set(config, state);
    }
    const { base, tiers } = state;
    const identify = identifier(config, scope);
    const hide = config.hide_client_headers;
    const { error_code: errorCode, error_message: errorMessage, retry_after_jitter_max: jitterMax, fault_tolerant: faultTolerant } = config;
    const logger = this.logger;
    let lastWarn = 0;
    // gatehouse_rate_limit_decisions_total for this route, bound at load.
    const decisions = gatewayMetrics.rateLimitFor(scope.route);

    const budgetFor = (ctx: RequestContext): Budget => {
      const claims = ctx.principal?.claims;
      if (claims) for (const t of tiers) if (claimHas(claims[t.claim], t.value)) return t.budget;
      return base;
    };

    const settle = (ctx: RequestContext, windows: readonly LimitWindow[], take: Take, now: number): void => {
      (take.passed ? decisions.allowed : decisions.limited).value++;
      if (take.passed && hide) return;
      // Kong's headers: each window's limit and remaining; RateLimit-* for the window closest to refusing.
      const headers: Record<string, string> = {};
      let limit = 0;
      let remaining = Infinity;
      let reset = 0;
      let retryAfter = 0;
      for (let i = 0; i < windows.length; i++) {
        const w = windows[i];
        const left = Math.max(0, w.limit - take.counts[i]);
        const end = windowEnd(w.name, windowStart(w.name, now));
        const secondsLeft = Math.max(1, Math.ceil((end - now) / 1000));
        if (!take.passed && left === 0 && secondsLeft > retryAfter) retryAfter = secondsLeft;
        if (left < remaining || (left === remaining && w.limit > limit)) {
          limit = w.limit;
          remaining = left;
          reset = secondsLeft;
        }
        if (!hide) {
          headers[w.limitHeader] = w.limitText;
          headers[w.remainingHeader] = String(left);
        }
      }
      if (!hide) {
        headers['ratelimit-limit'] = String(limit);
        headers['ratelimit-remaining'] = String(remaining);
        headers['ratelimit-reset'] = String(reset);
      }
      if (!take.passed) {
        // Retry-After: when every exhausted window has rolled over (not merely the first).
        headers['retry-after'] = String(retryAfter + (jitterMax ? Math.floor(Math.random() * (jitterMax + 1)) : 0));
        throw new GatewayError(errorCode, errorMessage, { reason: 'rate limit exceeded', headers });
      }
      if (!hide) ctx.responseHeaders = ctx.responseHeaders ? Object.assign(ctx.responseHeaders, headers) : headers;
    };

    const redisDown = (ctx: RequestContext, err: unknown): void => {
      const message = err instanceof Error ? err.message : String(err);
      (faultTolerant ? decisions.passedStoreDown : decisions.refusedStoreDown).value++;
      if (!faultTolerant) throw new ServiceUnavailableError('Rate limiting is unavailable', `rate-limiting: Redis unavailable: ${message}`, err);
      const now = Date.now();
      if (now - lastWarn >= WARN_INTERVAL_MS) {
        lastWarn = now;
        logger.warn({ request_id: ctx.requestId, plugin: 'rate-limiting', route: scope.route, err: message }, 'rate-limiting: Redis unavailable, request let through (fault_tolerant)');
      }
    };

    return {
      name: this.name,
      priority: this.priority,
      access(req: IncomingMessage, _res: ServerResponse, ctx: RequestContext): AccessResult {
        const budget = tiers.length ? budgetFor(ctx) : base;
        const id = identify(req, ctx);
        const now = Date.now();
        const counters = budget.counters;
        if (counters instanceof LocalCounters) {
          settle(ctx, budget.windows, counters.take(id, now), now);
          return;
        }
        return counters.take(id).then(
          (take) => settle(ctx, budget.windows, take, Date.now()),
          (err: unknown) => redisDown(ctx, err),
        );
      },
    };
  }

  private instanceState(config: RateLimitingConfig): InstanceState {
    // Redis keys name the instance by its config, so every gateway loading the same file shares the same counters.
    const instance = createHash('sha256').update(JSON.stringify(config)).digest('base64url').slice(0, 16);
    const budget = (limits: Partial<Record<WindowName, number>>, tag: string): Budget => {
      const windows: LimitWindow[] = WINDOWS.filter((w) => limits[w] !== undefined).map((w) => ({
        name: w,
        limit: limits[w]!,
        limitText: String(limits[w]),
        limitHeader: `x-ratelimit-limit-${w}`,
        remainingHeader: `x-ratelimit-remaining-${w}`,
      }));
      if (config.policy === 'local') return { windows, counters: new LocalCounters(windows) };
      const r = config.redis;
      const lease = redisClients.acquire({ host: r.host!, port: r.port, db: r.database, username: r.username, password: r.password });
      return { windows, counters: new RedisCounters(lease, windows, `gatehouse:ratelimit:${instance}:${tag}:`) };
    };
    return {
      base: budget(config, 'base'),
      tiers: config.tiers.map((t, i) => ({ claim: t.claim, value: t.value, budget: budget(t, `tier${i}`) })),
    };
  }
}

/** True when a claim grants `value`: equal, an array containing it, or a space-separated list (`scope`) containing it. */
function claimHas(claim: unknown, value: string): boolean {
  if (typeof claim === 'string') return claim === value || (claim.includes(' ') && claim.split(' ').includes(value));
  return Array.isArray(claim) && claim.includes(value);
}

/** The client's address: the peer, or what a trusted proxy in front says (X-Real-IP, else the first X-Forwarded-For). */
function clientIp(req: IncomingMessage, ctx: RequestContext): string {
  if (ctx.peerTrusted) {
    const real = req.headers['x-real-ip'];
    if (typeof real === 'string' && real) return real;
    const xff = req.headers['x-forwarded-for'];
    if (typeof xff === 'string' && xff) return xff.split(',')[0].trim();
  }
  return req.socket.remoteAddress ?? '';
}

/** Whose budget a request spends, decided at load; every kind falls back to the client IP when it has no answer (Kong). */
function identifier(config: RateLimitingConfig, scope: PluginScope): (req: IncomingMessage, ctx: RequestContext) => string {
  switch (config.limit_by) {
    case 'consumer':
    case 'credential':
      return (req, ctx) => (ctx.caller !== undefined ? `c:${ctx.caller}` : `ip:${clientIp(req, ctx)}`);
    case 'ip':
      return (req, ctx) => `ip:${clientIp(req, ctx)}`;
    case 'service': {
      const id = `s:${scope.service}`;
      return () => id;
    }
    case 'header': {
      const name = config.header_name!.toLowerCase();
      return (req, ctx) => {
        const v = req.headers[name];
        const value = Array.isArray(v) ? v.join(', ') : v;
        return value ? `h:${value}` : `ip:${clientIp(req, ctx)}`;
      };
    }
    case 'path': {
      const path = config.path!;
      const id = `p:${path}`;
      return (req, ctx) => (ctx.path === path ? id : `ip:${clientIp(req, ctx)}`);
    }
    case 'claim': {
      const claim = config.claim_name!;
      return (req, ctx) => {
        const v = ctx.principal?.claims[claim];
        return typeof v === 'string' || typeof v === 'number' ? `cl:${v}` : `ip:${clientIp(req, ctx)}`;
      };
    }
  }
}
