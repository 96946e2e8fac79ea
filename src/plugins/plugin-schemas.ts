import { openIdConnectConfigSchema } from '../config/openid-connect.schema.js';
import { accessLogConfigSchema } from './access-log/access-log.schema.js';
import { corsConfigSchema } from './cors/cors.schema.js';
import { prometheusConfigSchema } from './prometheus/prometheus.schema.js';
import { proxyCacheConfigSchema } from './proxy-cache/proxy-cache.schema.js';
import { rateLimitingConfigSchema } from './rate-limiting/rate-limiting.schema.js';

/**
 * Every plugin Gatehouse runs, by Kong's name, with the schema of its
 * `config`: the declarative schema validates each plugin entry against it, so a
 * bad config fails at load with its path. Adding a plugin adds one line here
 * and one in PLUGIN_PROVIDERS (plugins.module.ts).
 */
export const PLUGIN_SCHEMAS = {
  'openid-connect': openIdConnectConfigSchema,
  cors: corsConfigSchema,
  'proxy-cache': proxyCacheConfigSchema,
  'rate-limiting': rateLimitingConfigSchema,
  'access-log': accessLogConfigSchema,
  prometheus: prometheusConfigSchema,
} as const;

export type PluginName = keyof typeof PLUGIN_SCHEMAS;
