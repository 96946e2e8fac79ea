import type { Logger } from 'pino';
import { ConfigError, validateDeclarativeDocument, type ConfigProblem } from '../config/config.loader.js';
import { GatewayConfig } from '../config/gateway-config.js';
import { readGatewaySettings } from '../config/gateway-settings.js';
import type { OpenIdConnectConfig } from '../config/openid-connect.schema.js';

/** Where AuthModule.forRoot's problems are reported from (their paths follow). */
export const AUTH_MODULE_SOURCE = 'AuthModule.forRoot';

/** The compiled openid-connect config OpenIdConnectAuthGuard authenticates with (injection token). */
export const OPENID_CONNECT_AUTH_CONFIG = Symbol('OPENID_CONNECT_AUTH_CONFIG');

/** The methods a guard on an application's own handlers can use: it never answers with a login redirect. */
const GUARD_METHODS = ['bearer', 'introspection', 'session'] as const;

/**
 * AuthModule.forRoot's options: the openid-connect plugin's own parameters,
 * Kong's names (`issuer`, `audience_required`, `scopes_required`,
 * `roles_required`, `groups_required`, `*_claim`, `auth_methods`,
 * `session_secret`, `session_cookie_name`, `leeway`, `introspection_endpoint`,
 * `client_id`/`client_secret` for introspection…), checked by the same schema
 * as a declarative file's plugin. No Kong file is needed.
 */
export interface OpenIdConnectAuthModuleOptions {
  issuer: string;
  /** `bearer`, `session` (with `session_secret`) and `introspection`; default bearer, plus session when `session_secret` is set. */
  auth_methods?: (typeof GUARD_METHODS)[number][];
  audience_required?: string[];
  scopes_required?: string[];
  roles_required?: string[];
  groups_required?: string[];
  session_secret?: string;
  /** Any other openid-connect parameter, by its Kong name. */
  [parameter: string]: unknown;
  /** The logger for refusals (the 403's "required scopes were not found" line); default JSON lines on stdout at `info`. */
  logger?: Logger;
}

export interface CompiledOpenIdConnectAuthOptions {
  config: OpenIdConnectConfig;
  /** What the openid-connect providers read (the plugin, and the default request limits for cookie sessions). */
  gatewayConfig: GatewayConfig;
}

/**
 * The options as the openid-connect plugin's config, validated by the
 * declarative schema (one global plugin in an otherwise empty document), every
 * problem collected and thrown as one ConfigError with its parameter's path.
 */
export function compileOpenIdConnectAuthOptions(options: OpenIdConnectAuthModuleOptions): CompiledOpenIdConnectAuthOptions {
  const { logger: _logger, ...parameters } = options ?? ({} as OpenIdConnectAuthModuleOptions);
  const problems: ConfigProblem[] = [];
  const methods = parameters.auth_methods ?? (parameters.session_secret ? ['bearer', 'session'] : ['bearer']);
  if (Array.isArray(methods)) {
    methods.forEach((m, i) => {
      if (!(GUARD_METHODS as readonly string[]).includes(m)) {
        problems.push({ path: `auth_methods[${i}]`, message: `must be one of ${GUARD_METHODS.join(', ')}: the guard answers 401, it never redirects to log in` });
      }
    });
    if (methods.includes('session') && !parameters.session_secret) problems.push({ path: 'session_secret', message: 'is required when auth_methods includes session' });
  }
  const document = { _format_version: '3.0', plugins: [{ name: 'openid-connect', config: { ...parameters, auth_methods: methods } }] };
  let gatewayConfig: GatewayConfig | undefined;
  try {
    const declarative = validateDeclarativeDocument(document, AUTH_MODULE_SOURCE);
    gatewayConfig = new GatewayConfig(readGatewaySettings({}), declarative, AUTH_MODULE_SOURCE);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) problems.push({ path: p.path.replace(/^plugins\[0\]\.config\.?/, ''), message: p.message });
  }
  if (problems.length || !gatewayConfig) throw new ConfigError(AUTH_MODULE_SOURCE, problems);
  return { config: gatewayConfig.openIdConnectConfigs[0], gatewayConfig };
}
