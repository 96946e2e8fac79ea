import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'reflect-metadata';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { RequestMethod } from '@nestjs/common';
import { parseDeclarativeConfig, ConfigError } from '../../src/config/config.loader.js';
import { isLoopbackHost, readGatewaySettings, SETTINGS_DEFAULTS } from '../../src/config/gateway-settings.js';
import { HealthController } from '../../src/health/health.controller.js';
import { StatusController } from '../../src/health/status.controller.js';
import { kubernetesDir, readManifestFile, renderKustomization, strategicMerge, type K8sObject } from '../helpers/kustomize.js';
import { unknownFields, validateApiObject } from '../helpers/kubernetes-schema.js';

/**
 * deploy/kubernetes/ checked without a cluster: every manifest parses, the overlay renders as kustomize
 * would, every object passes the Kubernetes API schemas (kubernetes-models) with no undeclared field,
 * and the Deployment agrees with the code: settings names and values (through the real settings
 * parser), ports, probe paths (the status app's routes), the config path (the Dockerfile's), the
 * user id, the shutdown sequence and the secrets the declarative file references.
 */

const K8S = kubernetesDir(fileURLToPath(import.meta.url));
const ROOT = join(K8S, '..', '..');
const BASE = join(K8S, 'base');
const EXAMPLE = join(K8S, 'overlays', 'example');

type Obj = Record<string, any>;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** The Dockerfile's runtime stage: its ENV values and USER. */
function dockerfileRuntime(): { env: Record<string, string>; user: string } {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stage = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const line of stage.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  const user = /^USER (\S+)/m.exec(stage)?.[1];
  assert.ok(user, 'the Dockerfile runs as a USER');
  return { env, user };
}

/** Users of the node:*-bookworm-slim base image (its /etc/passwd): the `node` user is 1000:1000. */
const BASE_IMAGE_UIDS: Record<string, number> = { node: 1000, '1000': 1000, '1000:1000': 1000 };

/** GATEHOUSE_* names docs/configuration.md documents in its settings table (`GATEHOUSE_PG_HOST`, `_PORT`… expanded). */
function documentedSettings(): Set<string> {
  const doc = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const names = new Set<string>();
  for (const row of doc.split('\n').filter((l) => l.startsWith('| `GATEHOUSE_'))) {
    const first = row.split('|')[1];
    let prefix = '';
    for (const m of first.matchAll(/`(GATEHOUSE_\w+|_\w+)`/g)) {
      const name = m[1].startsWith('_') ? prefix + m[1] : m[1];
      if (!m[1].startsWith('_')) prefix = m[1].replace(/_[A-Z]+$/, '');
      names.add(name);
    }
  }
  return names;
}

/** The TypeScript sources under src/, to find where a variable outside SETTINGS_DEFAULTS is read. */
function sourceText(dir = join(ROOT, 'src')): string {
  return readdirSync(dir, { withFileTypes: true })
    .map((e) => (e.isDirectory() ? sourceText(join(dir, e.name)) : e.name.endsWith('.ts') ? readFileSync(join(dir, e.name), 'utf8') : ''))
    .join('\n');
}

/** Routes the status app serves: `GET /health/live`, … from the controllers' Nest metadata. */
function statusRoutes(): Set<string> {
  const routes = new Set<string>();
  for (const controller of [HealthController, StatusController]) {
    const base = String(Reflect.getMetadata(PATH_METADATA, controller));
    for (const name of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as unknown as Record<string, object>)[name];
      const path = Reflect.getMetadata(PATH_METADATA, handler);
      if (name === 'constructor' || path === undefined) continue;
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
      routes.add(`${method} ${`/${base}/${path}`.replace(/\/+/g, '/').replace(/(.)\/$/, '$1')}`);
    }
  }
  return routes;
}

function only(objects: K8sObject[], kind: string): Obj {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0];
}

function gatehouseContainer(deployment: Obj): Obj {
  const c = deployment.spec.template.spec.containers.find((x: Obj) => x.name === 'gatehouse');
  assert.ok(c, 'a container named gatehouse');
  return c;
}

const SECRET_STANDIN = 'x'.repeat(43); // what `openssl rand -base64 32` gives: 44 characters

/** The container's environment as the process would see it; Secret values are stand-ins. */
function containerEnv(container: Obj): { env: Record<string, string>; secretKeys: Map<string, string> } {
  const env: Record<string, string> = {};
  const secretKeys = new Map<string, string>();
  for (const e of container.env ?? []) {
    if (e.valueFrom?.secretKeyRef) {
      assert.notEqual(e.valueFrom.secretKeyRef.optional, true, `${e.name}: a missing Secret must stop the pod, not start it without the value`);
      secretKeys.set(e.name, e.valueFrom.secretKeyRef.key);
      env[e.name] = SECRET_STANDIN;
    } else if (e.valueFrom?.fieldRef) {
      env[e.name] = 'gatehouse-7d4b9c-abcde';
    } else {
      assert.equal(typeof e.value, 'string', `${e.name}: env values are strings`);
      env[e.name] = e.value;
    }
  }
  return { env, secretKeys };
}

const RENDERED = [
  { name: 'base', objects: () => renderKustomization(BASE).map((s) => s.object) },
  { name: 'overlays/example', objects: () => renderKustomization(EXAMPLE).map((s) => s.object) },
];

describe('deploy/kubernetes: manifests parse and pass the Kubernetes API schemas', () => {
  it('every YAML file parses, and every object names its apiVersion, kind and name', () => {
    const files = yamlFiles(K8S);
    assert.ok(files.length >= 10, `found ${files.length} files`);
    for (const file of files) {
      const objects = readManifestFile(file);
      assert.ok(objects.length > 0, `${relative(K8S, file)} is empty`);
      for (const o of objects) {
        assert.ok(o.apiVersion && o.kind, `${relative(K8S, file)}: apiVersion and kind`);
        if (o.kind !== 'Kustomization') assert.ok(o.metadata?.name, `${relative(K8S, file)}: metadata.name`);
      }
    }
  });

  for (const { name, objects } of RENDERED) {
    it(`${name}: every rendered object is valid and declares no unknown field`, async () => {
      const all = objects();
      assert.deepEqual(all.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Service']);
      for (const o of all) {
        await validateApiObject(o);
        assert.deepEqual(unknownFields(o), [], `${o.kind}/${o.metadata.name}: fields no schema declares`);
      }
    });
  }

  it("the example Secret's shape is valid too", async () => {
    const [secret] = readManifestFile(join(EXAMPLE, 'secret.example.yaml'));
    await validateApiObject(secret);
    assert.deepEqual(unknownFields(secret), []);
  });

  it('the checks can fail: a wrong type and a misspelt field are both caught', async () => {
    const deployment = only(renderKustomization(BASE).map((s) => s.object), 'Deployment') as K8sObject;
    const badPort = strategicMerge(deployment, { spec: { template: { spec: { containers: [{ name: 'gatehouse', ports: [{ containerPort: 8000, protocol: 'SCTPX' }] }] } } } }) as K8sObject;
    await assert.rejects(validateApiObject(badPort), /protocol/);
    const typo = strategicMerge(deployment, { spec: { template: { spec: { containers: [{ name: 'gatehouse', securityContext: { readOnlyRootFileSystem: true } }] } } } }) as K8sObject;
    assert.deepEqual(unknownFields(typo), ['Deployment/gatehouse.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem']);
  });
});

describe('deploy/kubernetes: the example overlay renders as kustomize would', () => {
  it('namespace, image and the patches are applied; what the patches do not name is kept', () => {
    const base = renderKustomization(BASE).map((s) => s.object);
    const example = renderKustomization(EXAMPLE).map((s) => s.object);
    for (const o of example) assert.equal(o.metadata.namespace, 'gatehouse', `${o.kind} in the overlay's namespace`);
    const c = gatehouseContainer(only(example, 'Deployment'));
    assert.equal(c.image, 'registry.example.com/platform/gatehouse:0.1.0');
    const env = containerEnv(c).env;
    assert.equal(env.GATEHOUSE_TRUSTED_IPS, '10.244.0.0/16', 'the patched value');
    assert.equal(env.GATEHOUSE_SHUTDOWN_DELAY, containerEnv(gatehouseContainer(only(base, 'Deployment'))).env.GATEHOUSE_SHUTDOWN_DELAY, 'the base value kept');
    assert.equal(c.env.length, gatehouseContainer(only(base, 'Deployment')).env.length, 'env merged by name, not replaced');
    assert.match(only(example, 'ConfigMap').data['kong.yaml'], /name: orders/);
    assert.ok(only(example, 'NetworkPolicy').spec.egress.every((r: Obj) => !r.to?.some((t: Obj) => t.ipBlock)), 'the egress list replaced whole');
  });
});

for (const { name, objects } of RENDERED) {
  describe(`deploy/kubernetes ${name}: the Deployment agrees with the code`, () => {
    const all = objects();
    const deployment = only(all, 'Deployment');
    const pod = deployment.spec.template.spec;
    const container = gatehouseContainer(deployment);
    const { env, secretKeys } = containerEnv(container);
    const settings = readGatewaySettings(env);
    const portByName = new Map<string, number>(container.ports.map((p: Obj) => [p.name, p.containerPort]));

    it('every GATEHOUSE_* variable is a setting (or a secret the declarative file references), and the settings parser accepts them', () => {
      const documented = documentedSettings();
      const configText: string = only(all, 'ConfigMap').data['kong.yaml'];
      const referenced = new Set([...configText.matchAll(/\{vault:\/\/env\/(\w+)\}/g)].map((m) => m[1]));
      const source = sourceText();
      // Outside SETTINGS_DEFAULTS (GATEHOUSE_NODE_ID, GATEHOUSE_TRACE_CALLER): documented *and* read by the code.
      const readByCode = (key: string) => new RegExp(`env\\.${key}\\b|env\\[['"]${key}['"]\\]`).test(source);
      for (const key of Object.keys(env).filter((k) => k.startsWith('GATEHOUSE_'))) {
        assert.ok(key in SETTINGS_DEFAULTS || (documented.has(key) && readByCode(key)) || referenced.has(key), `${key} is not a Gatehouse setting`);
      }
      assert.ok(documented.has('GATEHOUSE_NODE_ID') && documented.has('GATEHOUSE_PG_PASSWORD'), 'the docs table is read');
    });

    it('ports: the listeners are the defaults, and the container ports are the listeners', () => {
      assert.equal(env.GATEHOUSE_PROXY_LISTEN, SETTINGS_DEFAULTS.GATEHOUSE_PROXY_LISTEN);
      assert.equal(env.GATEHOUSE_STATUS_LISTEN, SETTINGS_DEFAULTS.GATEHOUSE_STATUS_LISTEN);
      assert.deepEqual(settings.proxyListeners.map((l) => l.port), [portByName.get('proxy')]);
      assert.equal(settings.statusListen.port, portByName.get('status'));
      assert.deepEqual([...portByName.keys()].sort(), ['proxy', 'status'], 'no other port is declared');
      const annotations = deployment.spec.template.metadata.annotations ?? {};
      if (annotations['prometheus.io/port']) assert.equal(Number(annotations['prometheus.io/port']), settings.statusListen.port);
    });

    it('the Admin API is off or loopback-only, and no port exposes it', () => {
      assert.ok(!settings.adminListen || isLoopbackHost(settings.adminListen.host), 'GATEHOUSE_ADMIN_LISTEN');
      if (settings.adminListen) assert.ok(![...portByName.values()].includes(settings.adminListen.port));
    });

    it('probes are on the status port, at paths the status app serves; liveness never uses readiness', () => {
      const routes = statusRoutes();
      assert.ok(routes.has('GET /health/live') && routes.has('POST /status/ready'), `status routes read: ${[...routes].join(', ')}`);
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const get = container[probe]?.httpGet;
        assert.ok(get, `${probe} is an httpGet`);
        assert.equal(portByName.get(get.port) ?? get.port, settings.statusListen.port, `${probe} on the status port`);
        assert.ok(routes.has(`GET ${get.path}`), `${probe}: GET ${get.path} is served by the status app`);
      }
      assert.equal(container.livenessProbe.httpGet.path, '/health/live');
      assert.equal(container.startupProbe.httpGet.path, '/health/live');
      assert.equal(container.readinessProbe.httpGet.path, '/health/ready');
      // The readiness checks wait up to 3 s for the IdP, then answer 503 themselves.
      assert.ok(container.readinessProbe.timeoutSeconds > 3);
    });

    it('the declarative file is mounted from the ConfigMap where the image expects it, as a directory', () => {
      const image = dockerfileRuntime();
      assert.equal(env.GATEHOUSE_DECLARATIVE_CONFIG, image.env.GATEHOUSE_DECLARATIVE_CONFIG);
      assert.equal(settings.declarativeConfig, image.env.GATEHOUSE_DECLARATIVE_CONFIG);
      const file = image.env.GATEHOUSE_DECLARATIVE_CONFIG;
      const mount = container.volumeMounts.find((m: Obj) => file.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `a volume is mounted above ${file}`);
      assert.equal(mount.subPath, undefined, 'a subPath mount never sees ConfigMap updates, so live reload would not work');
      const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
      const configMap = only(all, 'ConfigMap');
      assert.equal(volume.configMap?.name, configMap.metadata.name);
      assert.ok(file.slice(mount.mountPath.length + 1) in configMap.data, 'the ConfigMap holds the file');
    });

    it("the ConfigMap's declarative file is valid, with every {vault://env/…} taken from the Secret", () => {
      const text: string = only(all, 'ConfigMap').data['kong.yaml'];
      const config = parseDeclarativeConfig(text, 'kong.yaml', env);
      assert.ok(config.services.length > 0);
      const [secret] = readManifestFile(join(EXAMPLE, 'secret.example.yaml')) as Obj[];
      for (const [name, key] of secretKeys) {
        assert.ok(key in secret.stringData, `${name}: key ${key} in the example Secret`);
        assert.equal(container.env.find((e: Obj) => e.name === name).valueFrom.secretKeyRef.name, secret.metadata.name);
      }
      assert.deepEqual(Object.keys(secret.stringData).sort(), [...secretKeys.values()].sort(), 'the Secret has no key nobody reads');
      // Unedited placeholders must not start a gateway (a guessable session secret would).
      const placeholders = { ...env, ...Object.fromEntries([...secretKeys].map(([n, k]) => [n, secret.stringData[k]])) };
      assert.throws(() => parseDeclarativeConfig(text, 'kong.yaml', placeholders), (err: unknown) => err instanceof ConfigError && /session_secret/.test(err.message));
    });

    it('the grace period covers the shutdown delay, the drain timeout and any preStop sleep', () => {
      const preStopSleep = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
      assert.equal(container.lifecycle?.preStop?.exec, undefined, 'no exec preStop: the image has no shell tools for it, and the delay is in the gateway');
      const needed = preStopSleep + settings.shutdownDelayMs / 1000 + settings.shutdownTimeoutMs / 1000;
      assert.ok(settings.shutdownDelayMs > 0, 'a delay for endpoint propagation');
      assert.ok(pod.terminationGracePeriodSeconds >= needed + 1, `grace ${pod.terminationGracePeriodSeconds} s ≥ ${needed} s + a margin`);
    });

    it("runs as the image's non-root user, read-only, without capabilities, under seccomp", () => {
      const uid = BASE_IMAGE_UIDS[dockerfileRuntime().user];
      assert.ok(uid, `the Dockerfile's USER ${dockerfileRuntime().user} is a known user of the base image`);
      const sc = { ...pod.securityContext, ...container.securityContext };
      assert.equal(sc.runAsUser, uid);
      assert.equal(sc.runAsNonRoot, true);
      assert.equal(sc.seccompProfile?.type, 'RuntimeDefault');
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
      assert.equal(container.securityContext.capabilities.add, undefined);
      assert.equal(pod.automountServiceAccountToken, false);
      // The only store that writes is the embedded one: on a read-only root its directory must be a volume.
      if (settings.database === 'embedded') {
        assert.ok(container.volumeMounts.some((m: Obj) => settings.dataDir.startsWith(m.mountPath) && !m.readOnly), 'GATEHOUSE_DATA_DIR on a writable volume');
      }
      assert.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory);
    });

    it('the Service exposes the proxy port only; HPA, PDB and NetworkPolicy select these pods', () => {
      const labels = deployment.spec.template.metadata.labels;
      const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
      const service = only(all, 'Service');
      assert.deepEqual(service.spec.ports.map((p: Obj) => portByName.get(p.targetPort) ?? p.targetPort), [settings.proxyListen.port]);
      assert.ok(selects(service.spec.selector));
      assert.ok(selects(deployment.spec.selector.matchLabels));
      assert.ok(selects(only(all, 'PodDisruptionBudget').spec.selector.matchLabels));
      const hpa = only(all, 'HorizontalPodAutoscaler');
      assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
      assert.deepEqual(hpa.spec.metrics.map((m: Obj) => m.resource?.name), ['cpu']);
      assert.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count');
      const policy = only(all, 'NetworkPolicy');
      assert.ok(selects(policy.spec.podSelector.matchLabels));
      const ingressPorts = policy.spec.ingress.flatMap((r: Obj) => r.ports.map((p: Obj) => portByName.get(p.port) ?? p.port));
      assert.deepEqual([...new Set(ingressPorts)].sort(), [settings.proxyListen.port, settings.statusListen.port].sort(), 'ingress to the two listeners only');
      const egressPorts = policy.spec.egress.flatMap((r: Obj) => (r.ports ?? []).map((p: Obj) => `${p.protocol}/${p.port}`));
      assert.ok(egressPorts.includes('UDP/53') && egressPorts.includes('TCP/53'), 'DNS');
    });
  });
}
