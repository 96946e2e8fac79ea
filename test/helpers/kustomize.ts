import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * The part of kustomize that deploy/kubernetes/ uses, so the manifest tests render an overlay as
 * `kubectl apply -k` would without a kustomize binary: `resources` (files and directories holding a
 * kustomization.yaml), strategic merge `patches` (by file), `images` and `namespace`. Any other
 * kustomization field, or a patch directive (`$patch`, `$setElementOrder`…), is an error: an overlay
 * that needs more must bring the renderer along, never be rendered wrongly in silence.
 */

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: unknown };

export interface SourcedObject {
  object: K8sObject;
  /** The file the object came from (for messages). */
  file: string;
}

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images', 'namespace']);

/**
 * Lists whose elements strategic merge matches by a key (the Kubernetes API's `patchMergeKey`); every
 * other list is replaced whole, as the API's strategic merge does for lists without one.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  topologySpreadConstraints: 'topologyKey',
};

/** Container ports merge on `containerPort`, a Service's ports on `port`. */
function mergeKeyOf(field: string, path: readonly string[]): string | undefined {
  if (field === 'ports') return path.includes('containers') || path.includes('initContainers') ? 'containerPort' : 'port';
  return MERGE_KEYS[field];
}

/** Every YAML document of a file (empty documents skipped); a YAML error throws with the file named. */
export function readManifestFile(file: string): K8sObject[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: K8sObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) out.push(value);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Strategic merge patch of plain data (kustomize's `patchesStrategicMerge` semantics for the fields used). */
export function strategicMerge(base: unknown, patch: unknown, path: readonly string[] = []): unknown {
  if (!isPlainObject(base) || !isPlainObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new Error(`${[...path, key].join('.')}: strategic merge directive not supported by the test renderer`);
    if (value === null) {
      delete out[key];
      continue;
    }
    const mergeKey = mergeKeyOf(key, path);
    if (Array.isArray(value) && Array.isArray(out[key]) && mergeKey) {
      const merged = structuredClone(out[key] as unknown[]);
      for (const item of value) {
        const id = isPlainObject(item) ? item[mergeKey] : undefined;
        if (id === undefined) throw new Error(`${[...path, key].join('.')}: an element lacks its merge key "${mergeKey}"`);
        const at = merged.findIndex((m) => isPlainObject(m) && m[mergeKey] === id);
        if (at >= 0) merged[at] = strategicMerge(merged[at], item, [...path, key]);
        else merged.push(structuredClone(item));
      }
      out[key] = merged;
    } else {
      out[key] = key in out ? strategicMerge(out[key], value, [...path, key]) : structuredClone(value);
    }
  }
  return out;
}

/** An image reference's name, without tag or digest (kustomize's `images[].name` matches that). */
function imageName(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

function podSpecOf(object: K8sObject): Record<string, unknown> | undefined {
  const spec = object.spec as Record<string, unknown> | undefined;
  const template = spec?.template as Record<string, unknown> | undefined;
  return (template?.spec ?? (object.kind === 'Pod' ? spec : undefined)) as Record<string, unknown> | undefined;
}

/** Renders the kustomization in `dir`: every object, patched, with its source file. */
export function renderKustomization(dir: string): SourcedObject[] {
  const file = join(dir, 'kustomization.yaml');
  const [k] = readManifestFile(file) as unknown as Record<string, unknown>[];
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(key)) throw new Error(`${file}: "${key}" is not rendered by test/helpers/kustomize.ts`);
  }
  if (k.kind !== 'Kustomization') throw new Error(`${file}: kind must be Kustomization`);

  let objects: SourcedObject[] = [];
  for (const entry of (k.resources as string[] | undefined) ?? []) {
    const target = resolve(dir, entry);
    if (!existsSync(target)) throw new Error(`${file}: resource ${entry} does not exist`);
    if (statSync(target).isDirectory()) objects.push(...renderKustomization(target));
    else objects.push(...readManifestFile(target).map((object) => ({ object, file: target })));
  }

  for (const p of (k.patches as { path?: string; target?: unknown; patch?: string }[] | undefined) ?? []) {
    if (!p.path || p.target || p.patch) throw new Error(`${file}: only patches given by \`path\` (strategic merge) are rendered`);
    const patchFile = resolve(dir, p.path);
    for (const patch of readManifestFile(patchFile)) {
      const matches = objects.filter(
        (o) => o.object.apiVersion === patch.apiVersion && o.object.kind === patch.kind && o.object.metadata.name === patch.metadata?.name,
      );
      if (matches.length !== 1) throw new Error(`${patchFile}: patch for ${patch.kind}/${patch.metadata?.name} matches ${matches.length} objects`);
      matches[0].object = strategicMerge(matches[0].object, patch) as K8sObject;
    }
  }

  for (const img of (k.images as { name: string; newName?: string; newTag?: string }[] | undefined) ?? []) {
    for (const { object } of objects) {
      const pod = podSpecOf(object);
      for (const c of [...((pod?.containers as Record<string, string>[]) ?? []), ...((pod?.initContainers as Record<string, string>[]) ?? [])]) {
        if (imageName(c.image) !== img.name) continue;
        const tag = c.image.slice(imageName(c.image).length);
        c.image = `${img.newName ?? img.name}${img.newTag ? `:${img.newTag}` : tag}`;
      }
    }
  }

  if (typeof k.namespace === 'string') {
    objects = objects.map(({ object, file: f }) => ({ object: { ...object, metadata: { ...object.metadata, namespace: k.namespace as string } }, file: f }));
  }
  return objects;
}

/** The directory of this repository's deploy/kubernetes, from a compiled test (dist/test/…). */
export function kubernetesDir(fromFile: string): string {
  let dir = dirname(fromFile);
  while (!existsSync(join(dir, 'deploy', 'kubernetes'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('deploy/kubernetes not found');
    dir = up;
  }
  return join(dir, 'deploy', 'kubernetes');
}
