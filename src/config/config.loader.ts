import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import {
  declarativeConfigSchema,
  formatPath,
  hint,
  UNKNOWN_KEYS_MARKER,
  unknownKeysErrorMap,
  type DeclarativeConfig,
} from './declarative.schema.js';

export { formatPath };

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
  /** The document as written (vault references unresolved): what a config store keeps and `GET /config` exports. */
  document: Record<string, unknown>;
}

/** `{vault://env/NAME}`: Kong's env vault. The whole value must be the reference, as in Kong. */
const VAULT_REFERENCE = /^\{vault:\/\/env\/([A-Za-z_][A-Za-z0-9_]*)\}$/;

export async function loadDeclarativeConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})` }]);
  }
  const document = parseConfigText(text, file);
  return { source: file, document, config: validateDeclarativeDocument(document, file, env) };
}

/** Parses YAML or JSON text, resolves vault references and validates; throws ConfigError with every problem. */
export function parseDeclarativeConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): DeclarativeConfig {
  return validateDeclarativeDocument(parseConfigText(text, source), source, env);
}

/**
 * YAML or JSON text (by the source's extension; YAML also reads JSON) to a
 * plain document, without validating it. Throws ConfigError on a syntax error.
 */
export function parseConfigText(text: string, source: string): Record<string, unknown> {
  let raw: unknown;
  if (extname(source).toLowerCase() === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(source, [{ path: '', message: `not valid JSON: ${jsonSyntaxProblem((err as Error).message, text)}` }]);
    }
  } else {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length) {
      // The first line of yaml's message names the problem and its line and column; the rest is a source excerpt.
      throw new ConfigError(source, doc.errors.map((e) => ({ path: '', message: `not valid YAML: ${e.message.split('\n')[0].replace(/:$/, '')}` })));
    }
    raw = doc.toJS();
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'must be a mapping with _format_version, services, routes and plugins' }]);
  }
  return raw as Record<string, unknown>;
}

/** Resolves vault references and validates a parsed document; throws ConfigError with every problem. */
export function validateDeclarativeDocument(raw: unknown, source: string, env: NodeJS.ProcessEnv = process.env): DeclarativeConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'must be a mapping with _format_version, services, routes and plugins' }]);
  }
  const problems: ConfigProblem[] = [];
  const secrets: string[] = [];
  const resolved = resolveVaultReferences(raw, [], env, problems, secrets);
  // A reference that could not be resolved is reported once, not again as "not a URL" etc.
  const unresolved = problems.map((p) => p.path);
  const isUnresolved = (path: string) => unresolved.some((u) => path === u || path.startsWith(`${u}.`) || path.startsWith(`${u}[`));

  const parsed = declarativeConfigSchema.safeParse(resolved, { error: unknownKeysErrorMap });
  if (!parsed.success) {
    for (const problem of parsed.error.issues.flatMap((issue) => toProblems(issue, resolved))) {
      if (!isUnresolved(problem.path)) problems.push(problem);
    }
  }
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
      if (value.includes('{vault://')) problems.push({ path: formatPath(path), message: vaultReferenceProblem(value) });
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

/**
 * V8's JSON.parse message without the excerpt of the file it sometimes quotes,
 * and with "at position N" turned into a line and column an editor can jump to.
 */
function jsonSyntaxProblem(message: string, text: string): string {
  let reason = message.replace(/, (\.\.\.)?".* is not valid JSON$/s, '').replace(/ in JSON(?= at position|$)/, '');
  const at = /^(.*) at position (\d+)/s.exec(reason);
  if (at) {
    const before = text.slice(0, Number(at[2]));
    const line = before.split('\n').length;
    const column = Number(at[2]) - before.lastIndexOf('\n');
    reason = `${at[1]} at line ${line}, column ${column}`;
  }
  return reason;
}

/** Why a string mentioning `{vault://` is not a reference Gatehouse can resolve. */
function vaultReferenceProblem(value: string): string {
  const whole = /^\{vault:\/\/([^{}]*)\}$/.exec(value);
  if (!whole) return 'a vault reference must be the whole value, exactly {vault://env/NAME}';
  if (!whole[1].startsWith('env/')) return 'unsupported vault (only {vault://env/NAME} is supported)';
  return `"${whole[1].slice(4)}" is not an environment variable name (letters, digits and _, not starting with a digit)`;
}

function toProblems(issue: z.core.$ZodIssue, root: unknown): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = issue.message.startsWith(UNKNOWN_KEYS_MARKER)
      ? issue.message.slice(UNKNOWN_KEYS_MARKER.length).split(',').filter(Boolean)
      : [];
    return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: `unknown key${hint(key, known)}` }));
  }
  if (issue.code === 'invalid_union' && 'errors' in issue && issue.errors.length) {
    // Report the alternative that got furthest rather than a bare "invalid input".
    const best = issue.errors.reduce((a, b) => (a.length <= b.length ? a : b));
    return best.flatMap((sub) => toProblems({ ...sub, path: [...issue.path, ...sub.path] } as z.core.$ZodIssue, root));
  }
  // A missing key is "required", whatever message the schema gives a value of the wrong type.
  if (issue.code === 'invalid_type' && issue.path.length && !hasPath(root, issue.path)) {
    return [{ path: formatPath(issue.path), message: 'is required' }];
  }
  return [{ path: formatPath(issue.path), message: humanize(issue) }];
}

function hasPath(root: unknown, path: readonly PropertyKey[]): boolean {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return false;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node !== undefined;
}

/** YAML words for zod's type names: an operator writes lists and mappings, not arrays and objects. */
const TYPE_WORDS: Record<string, string> = {
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  null: 'null',
};
const typeWord = (t: string) => TYPE_WORDS[t] ?? t;

/**
 * zod's default messages ("Invalid input: expected array, received string") in
 * the config's own words; messages the schemas wrote themselves pass unchanged.
 */
function humanize(issue: z.core.$ZodIssue): string {
  const m = issue.message;
  if (issue.code === 'invalid_type' && m.startsWith('Invalid input')) {
    const received = /received (\w+)/.exec(m)?.[1];
    if (received === 'undefined') return 'is required';
    return `must be ${typeWord(String(issue.expected))}${received ? ` (got ${typeWord(received)})` : ''}`;
  }
  if ((issue.code === 'too_small' || issue.code === 'too_big') && /^Too (small|big)/.test(m)) {
    const small = issue.code === 'too_small';
    const limit = Number(small ? issue.minimum : issue.maximum);
    const inclusive = issue.inclusive !== false;
    if (issue.origin === 'array' || issue.origin === 'set') {
      const n = small ? (inclusive ? limit : limit + 1) : inclusive ? limit : limit - 1;
      if (small && n === 1) return 'must not be empty';
      return `must have ${small ? 'at least' : 'at most'} ${n} ${n === 1 ? 'entry' : 'entries'}`;
    }
    if (issue.origin === 'string') {
      const n = small ? (inclusive ? limit : limit + 1) : inclusive ? limit : limit - 1;
      if (small && n === 1) return 'must not be empty';
      return `must be ${small ? 'at least' : 'at most'} ${n} character${n === 1 ? '' : 's'} long`;
    }
    return `must be ${small ? (inclusive ? 'at least' : 'greater than') : inclusive ? 'at most' : 'less than'} ${limit}`;
  }
  if (issue.code === 'invalid_value' && m.startsWith('Invalid option')) {
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return m.replace(/^Invalid (string|input): /, '');
}

function redact(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('[redacted]');
  return out;
}
