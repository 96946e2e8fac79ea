import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { K8sObject } from './kustomize.js';

/**
 * Kubernetes API validation for the manifest tests, from the `kubernetes-models` package: its
 * validators are the API's OpenAPI schemas compiled (types, enums, required fields, formats). Those
 * schemas, like the API's, do not forbid unknown fields; the API server does (kubectl's default
 * `--validate=strict`). So `unknownFields` walks the package's type declarations (generated from the
 * same schemas) to find fields no schema declares: a misspelt `readOnlyRootFileSystem` would otherwise
 * pass every check and silently not apply.
 */

interface Model {
  validate(): void;
}

/** Throws the API schema's errors for an object (its apiVersion and kind choose the schema). */
export async function validateApiObject(object: K8sObject): Promise<void> {
  const module = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<string, new (data: unknown) => Model>;
  const Kind = module[object.kind];
  if (!Kind) throw new Error(`kubernetes-models has no ${object.apiVersion} ${object.kind}`);
  new Kind(object).validate();
}

type TypeRef = { kind: 'leaf' } | { kind: 'object'; file: string } | { kind: 'array'; of: TypeRef } | { kind: 'map'; of: TypeRef };

const packageRoots = new Map<string, string>();
function packageRoot(name: string): string {
  let root = packageRoots.get(name);
  if (!root) {
    // The package's main module is <root>/index.js.
    root = dirname(fileURLToPath(import.meta.resolve(name)));
    packageRoots.set(name, root);
  }
  return root;
}

const declarations = new Map<string, Map<string, TypeRef> | null>();

/** The fields of the interface a .d.ts file declares, or null when it declares a type alias (a leaf). */
function fieldsOf(file: string): Map<string, TypeRef> | null {
  if (declarations.has(file)) return declarations.get(file)!;
  const text = readFileSync(file, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const spec = m[2];
    const target = spec.startsWith('.')
      ? resolve(dirname(file), spec.replace(/\.js$/, '.d.ts'))
      : join(packageRoot(spec.split('/').slice(0, 2).join('/')), `${spec.split('/').slice(2).join('/')}.d.ts`);
    imports.set(m[1], target);
  }
  const typeOf = (text: string): TypeRef => {
    const array = /^Array<(.+)>$/.exec(text);
    if (array) return { kind: 'array', of: typeOf(array[1]) };
    const file = imports.get(text);
    return file ? { kind: 'object', file } : { kind: 'leaf' };
  };
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^export interface \w+/.test(l));
  if (start < 0) {
    declarations.set(file, null);
    return null;
  }
  const fields = new Map<string, TypeRef>();
  for (let i = start + 1; i < lines.length && lines[i] !== '}'; i++) {
    const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(lines[i]);
    if (!m) continue;
    if (m[2] === '{') {
      const value = /^\s+\[key: string\]: (.+);$/.exec(lines[i + 1]);
      fields.set(m[1], { kind: 'map', of: value ? typeOf(value[1]) : { kind: 'leaf' } });
    } else {
      fields.set(m[1], typeOf(m[2].replace(/;$/, '')));
    }
  }
  declarations.set(file, fields);
  return fields;
}

function walk(value: unknown, type: TypeRef, path: string, out: string[]): void {
  if (value === null || value === undefined || type.kind === 'leaf') return;
  if (type.kind === 'array') {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, type.of, `${path}[${i}]`, out));
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) return; // the schema validator reports wrong types
  if (type.kind === 'map') {
    for (const [k, v] of Object.entries(value)) walk(v, type.of, `${path}.${k}`, out);
    return;
  }
  const fields = fieldsOf(type.file);
  if (!fields) return;
  for (const [k, v] of Object.entries(value)) {
    const field = fields.get(k);
    if (!field) out.push(`${path}.${k}`);
    else walk(v, field, `${path}.${k}`, out);
  }
}

/** Paths of fields in `object` that its kind's schema does not declare (empty: none). */
export function unknownFields(object: K8sObject): string[] {
  const root = packageRoot('kubernetes-models');
  const out: string[] = [];
  walk(object, { kind: 'object', file: join(root, object.apiVersion, `${object.kind}.d.ts`) }, `${object.kind}/${object.metadata?.name}`, out);
  return out;
}
