import { z } from 'zod';
import { compileOrigins, isOriginRegex, originRegex } from './cors.origins.js';
import { inertShape, kongEntity } from '../../config/kong-fields.js';

/** Kong's `methods` values, and its default (every one of them). */
export const CORS_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

const originEntry = z
  .string()
  .min(1)
  .superRefine((entry, ctx) => {
    if (!isOriginRegex(entry)) return;
    try {
      originRegex(entry);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `'${entry}' is not a valid regex (${(err as Error).message})` });
    }
  });

/**
 * The cors plugin's parameters: Kong's names, meanings and defaults.
 * How `origins` entries are read (exact, `*`, anchored regex) is described in
 * cors.origins.ts and docs/plugins/cors.md.
 */
const corsObject = z.strictObject({
  /** Allowed origins: exact (`https://app.example.com`), `*`, or regexes. Absent or empty: every origin (`*`), as in Kong. */
  origins: z.array(originEntry).optional(),
  /** Access-Control-Allow-Methods of a preflight. Default: all nine of Kong's. */
  methods: z.array(z.enum(CORS_METHODS)).default([...CORS_METHODS]),
  /** Access-Control-Allow-Headers of a preflight. Default (absent or empty): the preflight's Access-Control-Request-Headers, echoed. */
  headers: z.array(z.string().min(1)).optional(),
  /** Access-Control-Expose-Headers of actual responses. Default: none. */
  exposed_headers: z.array(z.string().min(1)).optional(),
  /** Access-Control-Allow-Credentials: true. Default false. Never combined with `Access-Control-Allow-Origin: *`. */
  credentials: z.boolean().default(false),
  /** Access-Control-Max-Age of a preflight, in seconds. Default: not sent (the browser's own default, 5 s). */
  max_age: z.number().int().nonnegative().optional(),
  /** Pass preflights on to the next plugins and the upstream instead of answering them. Default false. */
  preflight_continue: z.boolean().default(false),
  /** Answer `Access-Control-Request-Private-Network: true` with `Access-Control-Allow-Private-Network: true`. Default false. */
  private_network: z.boolean().default(false),
  /** Add the headers to requests without an `Origin` too (Kong 3's default true; only `*` and Vary apply then). */
  allow_origin_absent: z.boolean().default(true),
  ...inertShape({}),
});

/** Every parameter of Kong 3.4–3.15's cors is implemented; `null` (as Kong dumps unset ones) takes the default. */
export const corsConfigSchema = kongEntity('cors', corsObject, {});

export type CorsConfig = z.output<typeof corsConfigSchema>;

/** What a cors config allows that deserves the operator's attention at start. */
export function corsWarnings(config: CorsConfig): { key: string; message: string }[] {
  if (config.credentials && compileOrigins(config.origins).any) {
    return [
      {
        key: 'origins',
        message:
          "credentials is true and origins allows every origin ('*'): Access-Control-Allow-Origin: * cannot carry credentials (Fetch standard), so, as Kong does, each request's Origin is reflected with Access-Control-Allow-Credentials: true — every website may make credentialed requests here; list the allowed origins instead",
      },
    ];
  }
  return [];
}
