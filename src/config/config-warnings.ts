import type { DeclarativeConfig, PluginEntry } from './declarative.schema.js';
import type { OpenIdConnectConfig } from './openid-connect.schema.js';
import { corsWarnings } from '../plugins/cors/cors.schema.js';

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
  for (const { path, plugin } of pluginInstances(config)) {
    if (plugin.name === 'cors') for (const w of corsWarnings(plugin.config)) warnings.push({ path: `${path}.config.${w.key}`, message: w.message });
    if (plugin.name !== 'openid-connect') continue;
    const c: OpenIdConnectConfig = plugin.config;
    const at = (key: string, message: string) => warnings.push({ path: `${path}.config.${key}`, message });
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
    if (c.consumer_by) at('consumer_by', 'has no effect: Gatehouse maps no tokens to consumers');
  }
  return warnings;
}
