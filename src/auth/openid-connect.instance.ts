import * as client from 'openid-client';
import type { StrategyOptions, VerifyFunction } from 'openid-client/passport';
import { Passport } from 'passport';
import { boundedFetch } from '../common/bounded.fetch.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { canonicalHeaderName, identityStripRule, type HeaderStripRule } from '../proxy/forwarding-headers.js';
import { ASYMMETRIC_ALGORITHMS, type VerifyOptions } from './access-token.verifier.js';
import { plainHttpEndpoints, type IssuerState } from './issuer.registry.js';
import { OpenIdConnectStrategy } from './openid-connect.strategy.js';
import type { OwnedCookies } from './owned-cookies.js';
import { compileRequirement, type Requirement } from './requirements.js';
import { createSessionStore, deriveKey, type SessionStore, type SessionStoreOptions } from './session.store.js';

/**
 * Everything derived from one openid-connect plugin instance, compiled once:
 * requirements pre-split, header names canonicalised, the session store and the
 * OIDC client (created lazily after discovery, so the gateway starts while the
 * IdP is down and recovers without a restart).
 */
export class OpenIdConnectInstance {
  readonly methods: ReadonlySet<string>;
  readonly requirements: Requirement[];
  readonly algorithms: readonly string[];
  readonly hmacSecret?: Uint8Array;
  readonly sessions?: SessionStore;
  /** Path of each redirect_uri: a request there carrying `code`/`error` and `state` is a login callback. */
  readonly callbackPaths: ReadonlySet<string>;
  readonly redirectUri?: URL;
  /**
   * Client headers dropped on every request to the route: the identity headers
   * of IDENTITY_HEADERS and every header this plugin sets upstream, except
   * Authorization, which is decided per request (a caller's own `Bearer` header
   * is kept when it is exactly what the upstream would be sent).
   */
  readonly stripHeaders: HeaderStripRule;
  /** True when the plugin sends the access token upstream in Authorization. */
  readonly setsAuthorization: boolean;
  /** Bearer JWTs are verified here (not sent to introspection): `bearer` on, and not `introspect_jwt_tokens` with introspection. */
  readonly verifiesJwtLocally: boolean;
  /** A verified bearer JWT completes authentication without an await (no userinfo to fetch for the upstream). */
  readonly bearerWithoutAwait: boolean;
  /** The gateway's cookies plus this route's bearer-token cookie: what the upstream must not see when credentials are hidden. */
  readonly cookiesHidingCredential?: OwnedCookies;
  readonly secure: boolean;
  /** Key for the short-lived login transaction cookies. */
  readonly transactionKey?: Uint8Array;
  readonly passportName: string;
  /**
   * Everything that decides whether a JWT verifies. Policies that share it share
   * the verified-token cache; any difference (an HS-enabled route, another
   * leeway) gets its own, so a token accepted under laxer rules is never reused
   * under stricter ones.
   */
  readonly verificationProfile: string;
  /** How this route's bearer JWTs are verified, built once rather than per request. */
  readonly tokenVerification: VerifyOptions;
  private clientConfig?: client.Configuration;
  readonly passport = new Passport();

  constructor(
    readonly config: OpenIdConnectConfig,
    readonly issuer: IssuerState,
    readonly id: number,
    ownedCookies?: OwnedCookies,
    /** How the session store must size its cookies (the gateway's header limit). */
    sessionOptions: SessionStoreOptions = {},
  ) {
    this.methods = new Set(config.auth_methods);
    this.requirements = [
      compileRequirement('scopes', config.scopes_claim, config.scopes_required),
      compileRequirement('audience', config.audience_claim, config.audience_required),
      compileRequirement('roles', config.roles_claim, config.roles_required),
      compileRequirement('groups', config.groups_claim, config.groups_required),
    ].filter((r): r is Requirement => r !== undefined);
    this.algorithms = ASYMMETRIC_ALGORITHMS;
    if (config.enable_hs_signatures && config.client_secret?.[0]) this.hmacSecret = new TextEncoder().encode(config.client_secret[0]);
    this.redirectUri = config.redirect_uri?.[0] ? new URL(config.redirect_uri[0]) : undefined;
    this.callbackPaths = new Set((config.redirect_uri ?? []).map((u) => new URL(u).pathname));
    this.secure = config.session_cookie_secure ?? this.redirectUri?.protocol === 'https:';
    if (config.session_secret && (this.methods.has('session') || this.methods.has('authorization_code'))) {
      this.sessions = createSessionStore(config, this.secure, sessionOptions);
      // Bound to the issuer and client as well as the secret: a login started for one IdP configuration
      // cannot be completed at another's callback even when both share a session_secret (mix-up, RFC 9700 §4.4).
      this.transactionKey = deriveKey(config.session_secret, `gatehouse login transaction\n${config.issuer}\n${config.client_id?.[0] ?? ''}\n${this.redirectUri?.href ?? ''}`);
    }
    const owned = new Set<string>();
    for (const h of [config.upstream_access_token_header, config.upstream_id_token_header, config.upstream_user_info_header, config.upstream_introspection_header, ...config.upstream_headers.map((h) => h.header)]) {
      if (h) owned.add(canonicalHeaderName(h.split(':')[0]));
    }
    this.setsAuthorization = owned.delete('authorization');
    this.verifiesJwtLocally = this.methods.has('bearer') && !(this.methods.has('introspection') && config.introspect_jwt_tokens);
    this.bearerWithoutAwait = this.verifiesJwtLocally && !config.upstream_user_info_header;
    this.stripHeaders = identityStripRule(owned);
    if (config.hide_credentials && config.bearer_token_cookie_name && ownedCookies) this.cookiesHidingCredential = ownedCookies.with([config.bearer_token_cookie_name]);
    this.passportName = `oidc-${id}`;
    this.tokenVerification = {
      issuer,
      algorithms: this.algorithms,
      leewaySeconds: config.leeway,
      hmacSecret: this.hmacSecret,
      audience: config.audience,
      clientId: config.client_id?.[0],
      verifySignature: config.verify_signature,
    };
    // Each value that can turn a verdict around: which keys are trusted (issuer, extra JWKS, the HS
    // secret), the clock leeway, whether signatures count, the audiences, and the client_id that
    // marks this gateway's own ID tokens.
    this.verificationProfile = JSON.stringify([
      config.issuer,
      config.enable_hs_signatures && config.client_secret?.[0],
      config.leeway,
      config.verify_signature,
      [...new Set(config.extra_jwks_uris)].sort(),
      config.audience,
      config.client_id?.[0],
    ]);
  }

  /** The openid-client Configuration for this client, built from the issuer's discovered metadata. */
  async client(): Promise<client.Configuration> {
    if (this.clientConfig) return this.clientConfig;
    const metadata = await this.issuer.discover();
    const c = this.config;
    const secret = c.client_secret?.[0];
    const auth =
      c.client_auth[0] === 'client_secret_post'
        ? client.ClientSecretPost(secret)
        : c.client_auth[0] === 'none'
          ? client.None()
          : client.ClientSecretBasic(secret);
    // A configured introspection_endpoint wins over (or stands in for) the discovered one. openid-client reads
    // endpoints from the metadata the Configuration was built with (serverMetadata() hands out a copy).
    const server = { ...metadata, ...(c.introspection_endpoint ? { introspection_endpoint: c.introspection_endpoint } : {}) } as client.ServerMetadata;
    const config = new client.Configuration(server, c.client_id?.[0] ?? '', { client_secret: secret }, auth);
    config.timeout = Math.ceil(c.timeout / 1000);
    // Token, introspection, userinfo and revocation responses: bounded in size and in total time.
    config[client.customFetch] = boundedFetch(c.timeout) as client.CustomFetch;
    // openid-client refuses http endpoints unless told otherwise. A plain-http issuer has only http
    // endpoints (warned about at start unless on loopback). An https issuer's discovery was refused
    // if it named an http back-channel endpoint, and the config loader refuses http ones in the
    // plugin config, so what is left are browser-facing endpoints, warned about once per issuer.
    if (metadata.issuer.startsWith('http:') || plainHttpEndpoints(metadata).warned.length) {
      client.allowInsecureRequests(config);
    }
    // openid-client 6 skips the ID token signature when the token comes straight from the token endpoint
    // over TLS; it is verified every time here (RFC 8725 §3.3: never skip a check on the channel's word).
    client.enableNonRepudiationChecks(config);
    this.clientConfig = config;
    if (this.methods.has('authorization_code') && this.redirectUri) {
      const verify: VerifyFunction = (tokens, done) => done(null, tokens as unknown as Express.User);
      const options: StrategyOptions = {
        config,
        name: this.passportName,
        callbackURL: this.redirectUri.href,
        scope: c.scopes.join(' '),
        sessionKey: 'oidc',
        ...(c.audience?.length ? { resource: c.audience } : {}),
      };
      this.passport.use(this.passportName, new OpenIdConnectStrategy(options, verify) as unknown as import('passport').Strategy);
    }
    return config;
  }
}
