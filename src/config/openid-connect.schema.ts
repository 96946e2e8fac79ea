import { z } from 'zod';
import { inertShape, kongEntity, kongShorthands, sameValue } from './kong-fields.js';
import { OIDC_INERT, REDIS_INERT, SESSION_REDIS_SHORTHANDS } from './openid-connect.kong-fields.js';

/**
 * The openid-connect plugin's parameters: Kong's names, Kong's meanings, Kong's
 * defaults unless a comment says otherwise. Arrays stay arrays where Kong has
 * arrays (`client_id`, `redirect_uri`, ...), so a Kong file loads unchanged.
 *
 * This schema is the single source of truth for the plugin: defaults live here
 * next to the parameter, and `OpenIdConnectConfig` is derived from it.
 */

const claimPath = z.array(z.string().min(1)).min(1, 'must name at least one claim');
/** Kong's requirement list: each entry is a space-separated AND group; the entries are OR-ed. */
const requirementList = z.array(z.string().trim().min(1, 'must not be empty'));
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const headerName = z
  .string()
  .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(:[a-z]+)?$/, 'must be a header name (optionally "name:bearer")');

/** Credentials Gatehouse accepts. Kong's other methods are named so the error can say they are not supported. */
export const SUPPORTED_AUTH_METHODS = [
  'authorization_code',
  'session',
  'bearer',
  'introspection',
  'refresh_token',
] as const;
const KONG_ONLY_AUTH_METHODS = ['password', 'client_credentials', 'userinfo', 'kong_oauth2'] as const;
/** Kong's default `auth_methods` (every method), as full dumps spell it. */
const KONG_DEFAULT_AUTH_METHODS = [...SUPPORTED_AUTH_METHODS, ...KONG_ONLY_AUTH_METHODS];
/** Kong's default `bearer_token_param_type`, as full dumps spell it. */
const KONG_DEFAULT_BEARER_LOCATIONS = ['header', 'query', 'body'];

/**
 * Non-enumerable on a validated plugin config: which Kong spellings it used
 * that deserve a start-time word (config-warnings.ts).
 */
export const KONG_NOTES: unique symbol = Symbol('gatehouse.openidConnectKongNotes');
export interface KongNotes {
  /** `session_redis_*` shorthands used (deprecated since Kong 3.8 for `redis.*`). */
  deprecated: string[];
  /** Parameters given as Kong's default list, which includes values Gatehouse does not support: Gatehouse's default applies. */
  kongDefaultLists: ('auth_methods' | 'bearer_token_param_type')[];
}

/** A claim path: Kong's list of keys into nested objects (`[realm_access, roles]`). */
const claimHeader = z.strictObject({ header: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a header name'), path: claimPath });

/**
 * Kong 3.8's `redis` record (shared with Kong's other Redis-backed plugins).
 * host, port, database, username, password and prefix are implemented; TLS is
 * refused rather than silently sent in clear.
 */
const redisSchema = kongEntity(
  'openid-connect.redis',
  z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(1).max(65535).default(6379),
    database: z.number().int().nonnegative().default(0),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** Kong: lua-resty-session's own prefix when unset; Gatehouse names its keys. */
    prefix: z.string().default('gatehouse:session:'),
    ssl: z.literal(false, { error: 'TLS to Redis is not supported: use a local Redis or a TLS tunnel, and ssl: false' }).default(false),
    ...inertShape(REDIS_INERT),
  }),
  REDIS_INERT,
);

/** Kong's pre-3.8 `session_redis_*` names, moved into `redis` before validation. */
const sessionRedisShorthands = kongShorthands('redis', SESSION_REDIS_SHORTHANDS);
const shorthandFields = sessionRedisShorthands.shape;

/** Kong's `null` here means "send no access token header", not the default (`authorization:bearer`). */
const NULL_MEANS_NONE = ['upstream_access_token_header'];

const openIdConnectObject = z
  .strictObject({
    issuer: httpUrl,
    client_id: z.array(z.string().min(1)).min(1).optional(),
    client_secret: z.array(z.string().min(1)).optional(),
    client_auth: z
      .array(z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']))
      .default(['client_secret_basic']),
    redirect_uri: z.array(httpUrl).optional(),
    auth_methods: z
      .array(z.enum([...SUPPORTED_AUTH_METHODS, ...KONG_ONLY_AUTH_METHODS]))
      .min(1)
      .default([...SUPPORTED_AUTH_METHODS]),
    scopes: z.array(z.string().min(1)).default(['openid']),
    /**
     * The audience(s) this gateway is for: requested at login as RFC 8707 `resource`, and required in a
     * bearer token's `aud` (RFC 9068 §4: a token for another audience is invalid, 401). `audience_required`
     * is the separate, Kong-style authorization rule (403).
     */
    audience: z.array(z.string().min(1)).optional(),

    scopes_required: requirementList.optional(),
    scopes_claim: claimPath.default(['scope']),
    audience_required: requirementList.optional(),
    audience_claim: claimPath.default(['aud']),
    roles_required: requirementList.optional(),
    roles_claim: claimPath.default(['roles']),
    groups_required: requirementList.optional(),
    groups_claim: claimPath.default(['groups']),

    // Accepted for compatibility with Kong files: Gatehouse never maps tokens to consumers.
    consumer_optional: z.boolean().default(true),
    consumer_claim: claimPath.optional(),
    /** Kong 3.14's list of claim paths for consumer mapping (replacing consumer_claim). */
    consumer_claims: z.array(claimPath).optional(),
    consumer_by: z.array(z.enum(['id', 'username', 'custom_id'])).optional(),
    credential_claim: claimPath.default(['sub']),

    bearer_token_param_type: z.array(z.enum(['header', 'query', 'body', 'cookie'])).min(1).default(['header']),
    bearer_token_cookie_name: z.string().min(1).optional(),

    introspection_endpoint: httpUrl.optional(),
    introspect_jwt_tokens: z.boolean().default(false),

    upstream_access_token_header: headerName.nullable().default('authorization:bearer'),
    upstream_id_token_header: headerName.nullable().optional(),
    upstream_user_info_header: headerName.nullable().optional(),
    upstream_introspection_header: headerName.nullable().optional(),
    /** Kong's older pair: top-level claim names and the headers to send them in, index by index. */
    upstream_headers_claims: z.array(z.string().min(1)).default([]),
    upstream_headers_names: z.array(headerName).default([]),
    /** Kong 3.14: `[{ header, path }]`, `path` a claim path (`[address, country]`). Beside the older pair, both apply. */
    upstream_headers: z.array(claimHeader).default([]),
    /** The same, sent to the client on the response (Kong 3.14; and its older `downstream_headers_*` pair). */
    downstream_headers: z.array(claimHeader).default([]),
    downstream_headers_claims: z.array(z.string().min(1)).default([]),
    downstream_headers_names: z.array(headerName).default([]),
    /**
     * Gatehouse keeps Kong's pre-3.14 default (false): with its own defaults (bearer tokens from the header only,
     * upstream_access_token_header authorization:bearer) the upstream receives the same request either way, and
     * true would rebuild the Authorization header on every request.
     */
    hide_credentials: z.boolean().default(false),

    session_secret: z.string().min(32, 'must be at least 32 characters (use 32 random bytes, base64)').optional(),
    session_cookie_name: z
      .string()
      .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a cookie name token')
      .default('session'),
    session_cookie_path: z.string().startsWith('/').default('/'),
    session_cookie_domain: z.string().min(1).optional(),
    session_idling_timeout: z.number().int().nonnegative().default(900),
    session_rolling_timeout: z.number().int().nonnegative().default(3600),
    session_absolute_timeout: z.number().int().nonnegative().default(86400),
    session_cookie_same_site: z.enum(['Strict', 'Lax', 'None', 'Default']).default('Lax'),
    session_cookie_http_only: z.boolean().default(true),
    session_cookie_secure: z.boolean().optional(),
    session_storage: z.enum(['cookie', 'redis']).default('cookie'),
    /** Kong 3.8+: where `session_storage: redis` keeps sessions. The older `session_redis_*` names are moved here. */
    redis: redisSchema.prefault({}),
    ...shorthandFields,
    refresh_tokens: z.boolean().default(true),

    login_action: z.enum(['upstream', 'redirect', 'response']).default('upstream'),
    login_redirect_uri: z.array(z.string().min(1)).optional(),
    login_tokens: z.array(z.enum(['id_token', 'access_token', 'refresh_token', 'tokens'])).default(['id_token']),

    logout_uri_suffix: z.string().min(1).optional(),
    logout_query_arg: z.string().min(1).optional(),
    logout_methods: z.array(z.enum(['GET', 'POST', 'DELETE'])).min(1).default(['POST', 'DELETE']),
    logout_redirect_uri: z.array(httpUrl).optional(),
    logout_revoke: z.boolean().default(false),

    unauthorized_error_message: z.string().default('Unauthorized'),
    forbidden_error_message: z.string().default('Forbidden'),
    display_errors: z.boolean().default(false),

    leeway: z.number().int().nonnegative().default(0),
    verify_signature: z.boolean().default(true),
    // Gatehouse always verifies claims and the ID token's nonce: only `true` (Kong's default) is accepted.
    verify_claims: z.literal(true, { error: 'Gatehouse always verifies token claims; false is not supported' }).default(true),
    verify_nonce: z.literal(true, { error: 'Gatehouse always verifies the ID token nonce; false is not supported' }).default(true),
    enable_hs_signatures: z.boolean().default(false),
    extra_jwks_uris: z.array(httpUrl).default([]),
    rediscovery_lifetime: z.number().int().nonnegative().default(30),
    cache_ttl: z.number().int().positive().default(3600),
    /**
     * Seconds an `active: false` introspection answer is remembered (Kong's name). Short, so a token the IdP
     * has only just issued is not refused for long, yet a client replaying a bogus token cannot make every
     * request an IdP call. 0: never remembered.
     */
    cache_ttl_neg: z.number().int().nonnegative().default(10),
    timeout: z.number().int().positive().default(10000),

    run_on_preflight: z.boolean().default(true),
    ...inertShape(OIDC_INERT),
  })
  .superRefine((c, ctx) => {
    // Kong's default list (every method, as a full dump spells it) keeps Gatehouse's default instead.
    const kongDefaultMethods = sameValue(c.auth_methods, KONG_DEFAULT_AUTH_METHODS);
    for (const [i, m] of kongDefaultMethods ? [] : c.auth_methods.entries()) {
      if ((KONG_ONLY_AUTH_METHODS as readonly string[]).includes(m)) {
        ctx.addIssue({
          code: 'custom',
          path: ['auth_methods', i],
          message: `"${m}" is not supported by Gatehouse (supported: ${SUPPORTED_AUTH_METHODS.join(', ')})`,
        });
      }
    }
    c.client_auth.forEach((m, i) => {
      if (m === 'private_key_jwt') {
        ctx.addIssue({ code: 'custom', path: ['client_auth', i], message: '"private_key_jwt" is not supported by Gatehouse yet (use client_secret_basic, client_secret_post or none)' });
      }
    });
    const kongDefaultLocations = sameValue(c.bearer_token_param_type, KONG_DEFAULT_BEARER_LOCATIONS);
    (kongDefaultLocations ? [] : c.bearer_token_param_type).forEach((t, i) => {
      if (t === 'body') {
        ctx.addIssue({ code: 'custom', path: ['bearer_token_param_type', i], message: '"body" is not supported: request bodies are streamed to the upstream unread (use header, query or cookie)' });
      }
    });
    if (c.bearer_token_param_type.includes('cookie') && !c.bearer_token_cookie_name) {
      ctx.addIssue({ code: 'custom', path: ['bearer_token_cookie_name'], message: 'is required when bearer_token_param_type includes cookie' });
    }
    for (const pair of ['upstream', 'downstream'] as const) {
      const claims = c[`${pair}_headers_claims`];
      const names = c[`${pair}_headers_names`];
      if (claims.length !== names.length) {
        ctx.addIssue({
          code: 'custom',
          path: [`${pair}_headers_names`],
          message: `must have one name per entry of ${pair}_headers_claims (${claims.length} claims, ${names.length} names)`,
        });
      }
    }
    const browser = c.auth_methods.includes('authorization_code');
    if (browser && !c.client_id) {
      ctx.addIssue({ code: 'custom', path: ['client_id'], message: 'is required when auth_methods includes authorization_code' });
    }
    if (browser && !c.redirect_uri) {
      ctx.addIssue({ code: 'custom', path: ['redirect_uri'], message: 'is required when auth_methods includes authorization_code' });
    }
    const sessions = browser || c.auth_methods.includes('session');
    if (sessions && !c.session_secret) {
      ctx.addIssue({
        code: 'custom',
        path: ['session_secret'],
        message: 'is required when auth_methods includes authorization_code or session (e.g. "{vault://env/GATEHOUSE_SESSION_SECRET}")',
      });
    }
    // Keys and tokens for an https issuer must not travel over plain http (RFC 8725 §3.10: keys only
    // from where they can be trusted; RFC 7662 §4: introspection over TLS).
    if (c.issuer.startsWith('https:')) {
      c.extra_jwks_uris.forEach((u, i) => {
        if (u.startsWith('http:')) ctx.addIssue({ code: 'custom', path: ['extra_jwks_uris', i], message: 'must be an https URL when the issuer is https (keys fetched over http can be swapped in transit)' });
      });
      if (c.introspection_endpoint?.startsWith('http:')) {
        ctx.addIssue({ code: 'custom', path: ['introspection_endpoint'], message: 'must be an https URL when the issuer is https (tokens sent over http can be read in transit)' });
      }
    }
    if (c.session_cookie_same_site === 'None' && c.session_cookie_secure === false) {
      ctx.addIssue({ code: 'custom', path: ['session_cookie_secure'], message: 'must not be false when session_cookie_same_site is None (browsers reject such cookies)' });
    }
  });

/**
 * After validation: shorthands recorded and dropped, Kong's default lists
 * replaced by Gatehouse's defaults, and the older claim/name header pairs
 * folded into `upstream_headers`/`downstream_headers` (one list each to apply).
 */
export const openIdConnectConfigSchema = z
  .preprocess(sessionRedisShorthands.move, kongEntity('openid-connect', openIdConnectObject, OIDC_INERT, NULL_MEANS_NONE))
  .transform((parsed) => {
    const notes: KongNotes = { deprecated: [], kongDefaultLists: [] };
    const c = parsed as typeof parsed & Record<string, unknown>;
    notes.deprecated.push(...sessionRedisShorthands.take(c));
    if (sameValue(c.auth_methods, KONG_DEFAULT_AUTH_METHODS)) {
      c.auth_methods = [...SUPPORTED_AUTH_METHODS];
      notes.kongDefaultLists.push('auth_methods');
    }
    if (sameValue(c.bearer_token_param_type, KONG_DEFAULT_BEARER_LOCATIONS)) {
      c.bearer_token_param_type = ['header'];
      notes.kongDefaultLists.push('bearer_token_param_type');
    }
    // Kong's default consumer_by (what every full dump spells) says nothing: no consumers are mapped either way.
    if (c.consumer_by && sameValue(c.consumer_by, ['username', 'custom_id'])) delete c.consumer_by;
    // Kong: the older pairs name top-level claims only.
    const pairs = (claims: string[], names: string[]) => claims.map((claim, i) => ({ header: names[i], path: [claim] }));
    c.upstream_headers = [...pairs(c.upstream_headers_claims, c.upstream_headers_names), ...c.upstream_headers];
    c.downstream_headers = [...pairs(c.downstream_headers_claims, c.downstream_headers_names), ...c.downstream_headers];
    if (notes.deprecated.length || notes.kongDefaultLists.length) Object.defineProperty(c, KONG_NOTES, { value: notes, enumerable: false });
    return c as Omit<typeof parsed, keyof typeof SESSION_REDIS_SHORTHANDS> & { auth_methods: (typeof SUPPORTED_AUTH_METHODS)[number][]; bearer_token_param_type: ('header' | 'query' | 'cookie')[] };
  });

export type OpenIdConnectConfig = z.output<typeof openIdConnectConfigSchema>;
