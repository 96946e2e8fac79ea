import type { ConfigProblem } from '../config/config.loader.js';
import { SettingsError } from '../config/gateway-settings.js';

/**
 * Tracing is configured by OpenTelemetry's standard variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/),
 * so an operator's usual deployment settings apply unchanged; the exporter
 * itself reads the endpoint, headers, timeout and compression variables. This
 * reads what decides whether and how the SDK is loaded, and refuses values it
 * cannot honour at start-up (with the variable named) rather than exporting
 * nothing in silence. One variable is Gatehouse's own:
 * `GATEHOUSE_TRACE_CALLER=true` records the caller identity on server spans.
 */
export interface TracingSettings {
  protocol: 'http/protobuf' | 'http/json';
  sampler: SamplerName;
  /** OTEL_TRACES_SAMPLER_ARG for the ratio samplers. */
  samplerRatio: number;
  /** OTEL_SERVICE_NAME, or `gatehouse` when neither it nor `service.name` in OTEL_RESOURCE_ATTRIBUTES is set. */
  serviceName?: string;
  /** `enduser.id` (the verified token's `credential_claim`) on the server span. Off by default: an identity in every span is personal data in the tracing backend. */
  recordCaller: boolean;
}

export const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

const PROTOCOLS = ['http/protobuf', 'http/json'] as const;

/** The settings, or undefined when no span is to be exported (no OTLP endpoint, the SDK disabled, or the exporter `none`). */
export function readTracingSettings(env: NodeJS.ProcessEnv): TracingSettings | undefined {
  const get = (k: string) => env[k]?.trim() || undefined;
  const problems: ConfigProblem[] = [];
  const callerText = get('GATEHOUSE_TRACE_CALLER') ?? 'false';
  if (callerText !== 'true' && callerText !== 'false') problems.push({ path: 'GATEHOUSE_TRACE_CALLER', message: `must be true or false, not "${callerText}"` });

  const endpoint = get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? get('OTEL_EXPORTER_OTLP_ENDPOINT');
  const exporter = get('OTEL_TRACES_EXPORTER') ?? 'otlp';
  const disabled = get('OTEL_SDK_DISABLED')?.toLowerCase() === 'true';
  if (exporter !== 'otlp' && exporter !== 'none') {
    problems.push({ path: 'OTEL_TRACES_EXPORTER', message: `"${exporter}" is not supported (otlp or none)` });
  }
  if (!endpoint || disabled || exporter === 'none') {
    if (problems.length) throw new SettingsError(problems);
    return undefined;
  }
  try {
    const u = new URL(endpoint);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    problems.push({ path: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT', message: `"${endpoint}" is not an http(s) URL` });
  }

  const protocolVar = get('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = get(protocolVar) ?? 'http/protobuf';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    problems.push({ path: protocolVar, message: `"${protocol}" is not supported (${PROTOCOLS.join(' or ')}; gRPC is not)` });
  }

  const sampler = get('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  if (!(SAMPLERS as readonly string[]).includes(sampler)) {
    problems.push({ path: 'OTEL_TRACES_SAMPLER', message: `"${sampler}" is not supported (${SAMPLERS.join(', ')})` });
  }
  const ratioText = get('OTEL_TRACES_SAMPLER_ARG');
  let samplerRatio = 1;
  if (sampler.endsWith('traceidratio') && ratioText !== undefined) {
    samplerRatio = Number(ratioText);
    if (!Number.isFinite(samplerRatio) || samplerRatio < 0 || samplerRatio > 1) {
      problems.push({ path: 'OTEL_TRACES_SAMPLER_ARG', message: `must be a number from 0 to 1, not "${ratioText}"` });
    }
  }
  if (problems.length) throw new SettingsError(problems);

  const named = get('OTEL_SERVICE_NAME') !== undefined || /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  return {
    protocol: protocol as TracingSettings['protocol'],
    sampler: sampler as SamplerName,
    samplerRatio,
    serviceName: named ? undefined : 'gatehouse',
    recordCaller: callerText === 'true',
  };
}
