import * as client from 'openid-client';
import { Strategy as OidcStrategy, type StrategyOptions, type VerifyFunction } from 'openid-client/passport';
import { Passport } from 'passport';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';
import { canonicalHeaderName } from '../proxy/forwarding-headers.js';
import { ASYMMETRIC_ALGORITHMS, type VerifyOptions } from './access-token.verifier.js';
import type { IssuerState } from './issuer.registry.js';
import { compileRequirement, type Requirement } from './requirements.js';
import { createSessionStore, deriveKey, type SessionStore, type SessionStoreOptions } from './session.store.js';

/**
 * Everything derived from one openid-connect plugin instance, compiled once:
 * requirements pre-split, header names canonicalised, the session store and the
 * OIDC client (created lazily after discovery, so the gateway starts while the
 * IdP is down and recovers without a restart).
 */
export class OidcPolicy {
  readonly methods: ReadonlySet<string>;
  readonly requirements: Requirement[];
  readonly algorithms: readonly string[];
  readonly hmacSecret?: Uint8Array;
  readonly sessions?: SessionStore;
  /** Path of each redirect_uri: a request there carrying `code`/`error` and `state` is a login callback. */
  readonly callbackPaths: ReadonlySet<string>;
  readonly redirectUri?: URL;
  /** Canonical names of every header the plugin sets upstream; client copies are removed. */
  readonly ownedHeaders: ReadonlySet<string>;
  /** The same, for a request whose own Authorization header is exactly what the upstream should get. */
  readonly ownedHeadersKeepingAuthorization: ReadonlySet<string>;
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
      this.transactionKey = deriveKey(config.session_secret, 'gatehouse login transaction');
    }
    const owned = new Set<string>();
    for (const h of [config.upstream_access_token_header, config.upstream_id_token_header, config.upstream_user_info_header, config.upstream_introspection_header, ...config.upstream_headers_names]) {
      if (h) owned.add(canonicalHeaderName(h.split(':')[0]));
    }
    this.ownedHeaders = owned;
    const withoutAuthorization = new Set(owned);
    withoutAuthorization.delete('authorization');
    this.ownedHeadersKeepingAuthorization = withoutAuthorization;
    this.passportName = `oidc-${id}`;
    this.tokenVerification = {
      issuer,
      algorithms: this.algorithms,
      leewaySeconds: config.leeway,
      hmacSecret: this.hmacSecret,
      audience: config.audience,
      verifySignature: config.verify_signature,
    };
    this.verificationProfile = JSON.stringify([config.issuer, config.enable_hs_signatures && config.client_secret?.[0], config.leeway, config.verify_signature, config.extra_jwks_uris, config.audience]);
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
    const config = new client.Configuration(metadata as client.ServerMetadata, c.client_id![0], { client_secret: secret }, auth);
    config.timeout = Math.ceil(c.timeout / 1000);
    if (metadata.issuer.startsWith('http:') || Object.values(metadata).some((v) => typeof v === 'string' && v.startsWith('http:'))) {
      client.allowInsecureRequests(config);
    }
    // openid-client 6 skips the ID token signature when the token comes straight from
    // the token endpoint over TLS; the brief asks for it to be verified every time.
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
      this.passport.use(this.passportName, new GatehouseStrategy(options, verify) as unknown as import('passport').Strategy);
    }
    return config;
  }
}

/**
 * openid-client's Passport strategy with the gateway's choices:
 * - `state` and `nonce` on every authorization request (the stock strategy adds
 *   state only when PKCE is not advertised; RFC 9700 §2.1 wants CSRF protection
 *   regardless, and the nonce binds the ID token to this browser);
 * - the current URL comes from the gateway's own view of the request, not
 *   Express's `req.protocol`/`req.host` (there is no Express here).
 */
class GatehouseStrategy extends OidcStrategy {
  override authorizationRequestParams(req: Parameters<OidcStrategy['authorizationRequestParams']>[0], options: Parameters<OidcStrategy['authorizationRequestParams']>[1]) {
    const params = super.authorizationRequestParams(req, options) as URLSearchParams;
    params.set('state', client.randomState());
    params.set('nonce', client.randomNonce());
    return params;
  }

  override currentUrl(req: Parameters<OidcStrategy['currentUrl']>[0]): URL {
    return new URL((req as unknown as { gatehouseUrl: string }).gatehouseUrl);
  }
}
