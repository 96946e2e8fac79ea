import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { declarativeConfigSchema, hint, type DeclarativeConfig } from './declarative.schema.js';

/** One problem in a config file, reported as `path: message`. */
export interface ConfigProblem {
  path: string;
  message: string;
}

/**
 * Thrown when the declarative config cannot be used. Carries every problem found,
 * not just the first, so an operator fixes the file in one pass.
 * Stable operator-facing code: GATEHOUSE_CONFIG_INVALID.
 */
export class ConfigError extends Error {
  readonly code = 'GATEHOUSE_CONFIG_INVALID';
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the declarative config\n` +
        problems.map((p) => `  ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  source: string;
  config: DeclarativeConfig;
}

/** `{vault://env/NAME}`: Kong's env vault. The whole value must be the reference, as in Kong. */
const VAULT_REFERENCE = /^\{vault:\/\/env\/([A-Za-z_][A-Za-z0-9_]*)\}$/;
const UNKNOWN_KEYS_MARKER = '\u0000known-keys:';

export async function loadDeclarativeConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})` }]);
  }
  return { source: file, config: parseDeclarativeConfig(text, file, env) };
}

/** Parses YAML or JSON text, resolves vault references and validates; throws ConfigError with every problem. */
export function parseDeclarativeConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): DeclarativeConfig {
  let raw: unknown;
  if (extname(source).toLowerCase() === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(source, [{ path: '', message: `not valid JSON: ${(err as Error).message}` }]);
    }
  } else {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length) {
      throw new ConfigError(source, doc.errors.map((e) => ({ path: '', message: `not valid YAML: ${e.message.split('\n')[0]}` })));
    }
    raw = doc.toJS();
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'must be a mapping with _format_version, services, routes and plugins' }]);
  }

  const problems: ConfigProblem[] = [];
  const secrets: string[] = [];
  const resolved = resolveVaultReferences(raw, [], env, problems, secrets);

  const parsed = declarativeConfigSchema.safeParse(resolved, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? UNKNOWN_KEYS_MARKER + Object.keys((issue.inst as { _zod?: { def?: { shape?: object } } })?._zod?.def?.shape ?? {}).join(',')
        : undefined,
  });
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap(toProblems));
  if (problems.length) {
    // A resolved secret must never be echoed back, even inside a message that quotes a value.
    throw new ConfigError(source, problems.map((p) => ({ path: p.path, message: redact(p.message, secrets) })));
  }
  return parsed.data!;
}

function resolveVaultReferences(
  value: unknown,
  path: (string | number)[],
  env: NodeJS.ProcessEnv,
  problems: ConfigProblem[],
  secrets: string[],
): unknown {
  if (typeof value === 'string') {
    const m = VAULT_REFERENCE.exec(value);
    if (!m) {
      if (value.startsWith('{vault://')) {
        problems.push({ path: formatPath(path), message: `unsupported vault reference (only {vault://env/NAME} is supported)` });
      }
      return value;
    }
    const secret = env[m[1]];
    if (secret === undefined || secret === '') {
      problems.push({ path: formatPath(path), message: `environment variable ${m[1]} is not set (referenced as {vault://env/${m[1]}})` });
      return value;
    }
    secrets.push(secret);
    return secret;
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveVaultReferences(v, [...path, i], env, problems, secrets));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, resolveVaultReferences(v, [...path, k], env, problems, secrets)]),
    );
  }
  return value;
}

function toProblems(issue: z.core.$ZodIssue): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = issue.message.startsWith(UNKNOWN_KEYS_MARKER)
      ? issue.message.slice(UNKNOWN_KEYS_MARKER.length).split(',').filter(Boolean)
      : [];
    return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: `unknown key${hint(key, known)}` }));
  }
  if (issue.code === 'invalid_union' && 'errors' in issue && issue.errors.length) {
    // Report the alternative that got furthest rather than a bare "invalid input".
    const best = issue.errors.reduce((a, b) => (a.length <= b.length ? a : b));
    return best.flatMap((sub) => toProblems({ ...sub, path: [...issue.path, ...sub.path] } as z.core.$ZodIssue));
  }
  return [{ path: formatPath(issue.path), message: humanize(issue) }];
}

function humanize(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) return 'is required';
  if (issue.code === 'invalid_type') return issue.message.replace(/^Invalid input: /, 'must be of type ').replace('expected ', '');
  return issue.message.replace(/^Invalid (string|input): /, '');
}

/** `services[0].routes[1].paths[0]` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

function redact(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('[redacted]');
  return out;
}
