import { z } from 'zod';
import { inertShape, kongEntity, kongShorthands } from '../../config/kong-fields.js';

/**
 * Kong's `rate-limiting` parameters (Kong 3.8 names, meanings and defaults
 * unless a comment says otherwise), plus `limit_by: claim` and `tiers`, which
 * Kong cannot offer without a consumer database: here the IdP's claims decide.
 */

/** Kong's windows, shortest first: the order of the headers and of Kong's "cannot be lower" check. */
export const WINDOWS = ['second', 'minute', 'hour', 'day', 'month', 'year'] as const;
export type WindowName = (typeof WINDOWS)[number];

const limit = z.number().int().positive().optional();
const windowLimits = {
  second: limit,
  minute: limit,
  hour: limit,
  day: limit,
  month: limit,
  year: limit,
};

const redisObject = z.strictObject({
  /** Required with `policy: redis`. */
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).default(6379),
  /** Redis 6 ACL user; Kong's default is none. */
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  database: z.number().int().min(0).default(0),
  /**
   * Kong's per-command timeout (ms, default 2000). Gatehouse's shared Redis
   * clients bound every call by REDIS_TIMEOUT_MS (1 s) already; a smaller value
   * here bounds the rate-limiting call further.
   */
  timeout: z.number().int().positive().default(2000),
  /** TLS to Redis is not supported yet: `true` is refused at load rather than silently sent in clear. */
  ssl: z.boolean().default(false),
  // Accepted so a Kong export loads; they only matter with ssl, which is refused.
  ssl_verify: z.boolean().default(false),
  server_name: z.string().optional(),
  ...inertShape({}),
});
const redisSchema = kongEntity('rate-limiting.redis', redisObject, {});

/** Kong's pre-3.8 `redis_*` fields (deprecated shorthands since 3.8), moved into `redis`. */
const redisShorthands = kongShorthands('redis', {
  redis_host: 'host',
  redis_port: 'port',
  redis_username: 'username',
  redis_password: 'password',
  redis_database: 'database',
  redis_timeout: 'timeout',
  redis_ssl: 'ssl',
  redis_ssl_verify: 'ssl_verify',
  redis_server_name: 'server_name',
});

const tierSchema = z.strictObject({
  /** The claim that decides the tier (top-level claim name), e.g. `groups`. */
  claim: z.string().min(1),
  /** Matches a string claim equal to it, an array claim containing it, or a space-separated string (`scope`) containing it. */
  value: z.string().min(1),
  ...windowLimits,
});

const rateLimitingObject = z
  .strictObject({
    ...windowLimits,
    /**
     * Whose budget a request spends. `consumer` and `credential` both mean the
     * authenticated caller (openid-connect's `credential_claim`, default `sub`):
     * Gatehouse has no consumers. Without an identity, the client IP, as Kong.
     */
    limit_by: z.enum(['consumer', 'credential', 'ip', 'service', 'header', 'path', 'claim']).default('consumer'),
    /** With `limit_by: header`. */
    header_name: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a header name').optional(),
    /** With `limit_by: path`: requests for exactly this path share one budget; others are limited by IP (Kong). */
    path: z.string().startsWith('/', 'must start with "/"').optional(),
    /** With `limit_by: claim` (Gatehouse): e.g. `azp` or `client_id` for per-application limits. */
    claim_name: z.string().min(1).optional(),
    /** Kong's `cluster` needs Kong's database; Gatehouse offers `local` (per process) and `redis` (shared). */
    policy: z.enum(['local', 'redis'], { error: 'must be "local" (per gateway process) or "redis" (shared); Kong\'s "cluster" needs Kong\'s database' }).default('local'),
    redis: redisSchema.prefault({}),
    /** Redis unreachable: true lets the request through (and logs a warning), false answers 503. */
    fault_tolerant: z.boolean().default(true),
    /** Leaves out the RateLimit-* and X-RateLimit-* headers (Retry-After on 429 stays). */
    hide_client_headers: z.boolean().default(false),
    error_code: z.number().int().min(400).max(599).default(429),
    error_message: z.string().default('API rate limit exceeded'),
    /** Up to this many seconds of random jitter added to Retry-After, so refused clients do not all return at once. */
    retry_after_jitter_max: z.number().int().min(0).default(0),
    /** Kong's batched counting; only -1 (count synchronously, exact) is supported. */
    sync_rate: z.number().refine((v) => v === -1, 'only -1 (synchronous, exact counting) is supported').default(-1),
    /**
     * Gatehouse: limits by a claim of the caller's token, first match wins;
     * callers matching no tier get the plain limits above.
     */
    tiers: z.array(tierSchema).default([]),
    ...redisShorthands.shape,
    ...inertShape({}),
  })
  .superRefine((c, ctx) => {
    checkLimits(c, [], ctx, true);
    c.tiers.forEach((t, i) => checkLimits(t, ['tiers', i], ctx, false));
    if (c.limit_by === 'header' && !c.header_name) ctx.addIssue({ code: 'custom', path: ['header_name'], message: 'is required with limit_by: header' });
    if (c.limit_by === 'path' && !c.path) ctx.addIssue({ code: 'custom', path: ['path'], message: 'is required with limit_by: path' });
    if (c.limit_by === 'claim' && !c.claim_name) ctx.addIssue({ code: 'custom', path: ['claim_name'], message: 'is required with limit_by: claim' });
    if (c.policy === 'redis' && !c.redis.host) ctx.addIssue({ code: 'custom', path: ['redis', 'host'], message: 'is required with policy: redis' });
    if (c.redis.ssl) ctx.addIssue({ code: 'custom', path: ['redis', 'ssl'], message: 'TLS to Redis is not supported: use a local Redis or a TLS tunnel, and ssl: false' });
  });

/** At least one window (Kong), and no longer window with a lower limit than a shorter one (Kong's check). */
function checkLimits(l: Partial<Record<WindowName, number>>, path: (string | number)[], ctx: z.RefinementCtx, required: boolean) {
  const set = WINDOWS.filter((w) => l[w] !== undefined);
  if (set.length === 0) {
    if (required || path.length) ctx.addIssue({ code: 'custom', path, message: `needs at least one limit: ${WINDOWS.join(', ')}` });
    return;
  }
  for (let i = 1; i < set.length; i++) {
    const shorter = set[i - 1];
    const longer = set[i];
    if (l[longer]! < l[shorter]!) {
      ctx.addIssue({ code: 'custom', path: [...path, longer], message: `the limit per ${longer} (${l[longer]}) cannot be lower than the limit per ${shorter} (${l[shorter]})` });
    }
  }
}

/** Non-enumerable on a validated config: the `redis_*` shorthands it used (config-warnings.ts). */
export const RATE_LIMITING_DEPRECATED: unique symbol = Symbol('gatehouse.rateLimitingDeprecated');

export const rateLimitingConfigSchema = z.preprocess(redisShorthands.move, kongEntity('rate-limiting', rateLimitingObject, {})).transform((parsed) => {
  const c = parsed as typeof parsed & Record<string, unknown>;
  const used = redisShorthands.take(c);
  if (used.length) Object.defineProperty(c, RATE_LIMITING_DEPRECATED, { value: used, enumerable: false });
  return c as Omit<typeof parsed, 'redis_host' | 'redis_port' | 'redis_username' | 'redis_password' | 'redis_database' | 'redis_timeout' | 'redis_ssl' | 'redis_ssl_verify' | 'redis_server_name'>;
});

export type RateLimitingConfig = z.output<typeof rateLimitingConfigSchema>;
