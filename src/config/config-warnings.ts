import type { DeclarativeConfig, PluginEntry } from './declarative.schema.js';
import { KONG_NOTES, SUPPORTED_AUTH_METHODS, type KongNotes, type OpenIdConnectConfig } from './openid-connect.schema.js';
import { corsWarnings } from '../plugins/cors/cors.schema.js';
import { kongDefaultedFields } from './kong-fields.js';
import { RATE_LIMITING_DEPRECATED } from '../plugins/rate-limiting/rate-limiting.schema.js';

/** Something a config may say that is allowed but deserves the operator's attention, with where it is said. */
export interface ConfigWarning {
  /** Where in the file, e.g. `services[0].plugins[0].config.verify_signature`. */
  path: string;
  message: string;
}

/** Every enabled plugin instance with its path in the file. */
export function pluginInstances(config: DeclarativeConfig): { path: string; plugin: PluginEntry }[] {
  const out: { path: string; plugin: PluginEntry }[] = [];
  const visit = (prefix: string, plugins: readonly PluginEntry[]) => plugins.forEach((plugin, i) => plugin.enabled && out.push({ path: `${prefix}plugins[${i}]`, plugin }));
  visit('', config.plugins);
  config.services.forEach((s, i) => {
    visit(`services[${i}].`, s.plugins);
    s.routes.forEach((r, j) => visit(`services[${i}].routes[${j}].`, r.plugins));
  });
  config.routes.forEach((r, i) => visit(`routes[${i}].`, r.plugins));
  return out;
}

/**
 * What the openid-connect plugin instances of a config leave weaker than an
 * operator may think. Logged once, at start, before anything listens (in the
 * cluster primary when there are workers), so the warning is seen where the
 * file was loaded and not on some first request.
 */
export function configWarnings(config: DeclarativeConfig): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  // One warning for every Kong field accepted because it is null or Kong's default (docs/kong-compatibility.md).
  const defaulted = kongDefaultedFields(config);
  if (defaulted.size) {
    warnings.push({
      path: '',
      message: `Kong fields Gatehouse does not implement were accepted because they are null or Kong's default, so they change nothing (see docs/kong-compatibility.md): ${[...defaulted].map(([entity, fields]) => `${entity}: ${fields.join(', ')}`).join('; ')}`,
    });
  }
  const routes = [
    ...config.services.flatMap((s, i) => s.routes.map((r, j) => ({ path: `services[${i}].routes[${j}]`, r }))),
    ...config.routes.map((r, j) => ({ path: `routes[${j}]`, r })),
  ];
  for (const { path, r } of routes) {
    const grpc: string[] = r.protocols.filter((p) => p === 'grpc' || p === 'grpcs');
    if (grpc.length) warnings.push({ path: `${path}.protocols`, message: `${grpc.join(' and ')} listed: Gatehouse does not proxy gRPC; the route serves its other protocols (${r.protocols.filter((p) => !grpc.includes(p)).join(', ')})` });
  }
  for (const { path, plugin } of pluginInstances(config)) {
    if (plugin.name === 'rate-limiting') {
      const used = (plugin.config as { [RATE_LIMITING_DEPRECATED]?: string[] })[RATE_LIMITING_DEPRECATED];
      if (used) warnings.push({ path: `${path}.config.${used[0]}`, message: `deprecated since Kong 3.8: ${used.join(', ')}; write them as redis.{${used.map((n) => n.replace(/^redis_/, '')).join(', ')}}` });
    }
    if (plugin.name === 'cors') for (const w of corsWarnings(plugin.config)) warnings.push({ path: `${path}.config.${w.key}`, message: w.message });
    if (plugin.name !== 'openid-connect') continue;
    const c: OpenIdConnectConfig = plugin.config;
    const at = (key: string, message: string) => warnings.push({ path: `${path}.config.${key}`, message });
    const notes = (c as { [KONG_NOTES]?: KongNotes })[KONG_NOTES];
    if (notes?.deprecated.length) {
      at(notes.deprecated[0], `deprecated since Kong 3.8: ${notes.deprecated.join(', ')}; write them as redis.{${notes.deprecated.map((n) => n.replace(/^session_redis_/, '').replace('cluster_maxredirections', 'cluster_max_redirections')).join(', ')}}`);
    }
    if (notes?.kongDefaultLists.includes('auth_methods')) {
      at('auth_methods', `Kong's default list (every method): Gatehouse accepts ${SUPPORTED_AUTH_METHODS.join(', ')}; password, client_credentials, userinfo and kong_oauth2 are not supported and are left out`);
    }
    if (notes?.kongDefaultLists.includes('bearer_token_param_type')) {
      at('bearer_token_param_type', "Kong's default list (header, query, body): Gatehouse reads bearer tokens from the Authorization header only (tokens in URLs leak into logs, RFC 6750 §2.3; bodies are streamed unread); list query or cookie to accept them there");
    }
    if (!c.verify_signature) at('verify_signature', 'SECURITY: verify_signature is false: access token signatures are NOT checked; anyone can forge a token');
    const takesTokens = c.auth_methods.includes('bearer') || c.auth_methods.includes('introspection');
    if (takesTokens && !c.audience?.length && !c.audience_required?.length) {
      at(
        'audience',
        'SECURITY: no audience configured: any access token this issuer signed for any API (and any client\'s ID token that carries no ID-token marker) is accepted here; set `audience` to this API\'s audience (RFC 9068 §4) or require one with audience_required',
      );
    }
    if (c.display_errors) at('display_errors', 'display_errors is true: 400/401/403 bodies carry the reason for the refusal (error_description); keep it off in production');
    if (!c.consumer_optional) at('consumer_optional', 'consumer_optional is false, but Gatehouse manages no consumers: callers are not restricted to known consumers; restrict them with scopes_required, roles_required or groups_required');
    if (c.consumer_claim) at('consumer_claim', 'has no effect: Gatehouse maps no tokens to consumers (credential_claim names the caller in logs)');
    if (c.consumer_claims?.length) at('consumer_claims', 'has no effect: Gatehouse maps no tokens to consumers (credential_claim names the caller in logs)');
    // Kong's default (username, custom_id) is what every full dump spells: only another value is worth a word.
    if (c.consumer_by && !(c.consumer_by.length === 2 && c.consumer_by.includes('username') && c.consumer_by.includes('custom_id'))) at('consumer_by', 'has no effect: Gatehouse maps no tokens to consumers');
  }
  return warnings;
}
