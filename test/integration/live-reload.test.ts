import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * `database: off`: the declarative file is the truth. An edit (or a
 * ConfigMap's symlink swap) is applied without a restart; a bad file is
 * refused with its problems logged and shown by readiness while the running
 * config keeps serving; SIGHUP reads the file again.
 */

/** Replaces the file the way editors and `kubectl cp` do: a new inode renamed over the old name. */
function replaceFile(file: string, config: object) {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, stringify(config));
  renameSync(tmp, file);
}

async function status(url: string, dispatcher?: Agent): Promise<number> {
  const res = await request(url, { dispatcher });
  await res.body.dump();
  return res.statusCode;
}

/** Polls until `url` answers `want` (a reload is asynchronous to the write); fails after `ms`. */
async function eventually(url: string, want: number, ms = 5_000, dispatcher?: Agent): Promise<void> {
  const deadline = Date.now() + ms;
  let last = 0;
  while (Date.now() < deadline) {
    last = await status(url, dispatcher);
    if (last === want) return;
    await sleep(50);
  }
  assert.fail(`${url} answered ${last}, not ${want}, within ${ms} ms`);
}

describe('live reconfiguration from the declarative file (database: off)', () => {
  let a: Upstream;
  let b: Upstream;
  let slow: Upstream;
  let dir: string;
  let file: string;
  let gw: GatewayProcess;
  const routesA = [{ name: 'a', paths: ['/a'] }];

  before(async () => {
    a = await startUpstream();
    b = await startUpstream();
    slow = await startUpstream((req, res) => setTimeout(() => res.end('slow done'), 700));
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-reload-'));
    file = join(dir, 'kong.yaml');
    writeFileSync(file, stringify(oneService(a.url, [...routesA, { name: 'slow', paths: ['/slow'], service: undefined }])));
    gw = await startGateway({ args: ['--config', file] });
  });

  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close(), slow?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies an edited file without a restart: a new service and route answer, the old one still does', async () => {
    assert.equal(await status(`${gw.proxyUrl}/b`), 404);
    replaceFile(file, {
      _format_version: '3.0',
      services: [
        { name: 'api', url: a.url, routes: routesA },
        { name: 'second', url: b.url, routes: [{ name: 'b', paths: ['/b'] }] },
      ],
    });
    await eventually(`${gw.proxyUrl}/b`, 200);
    assert.equal(b.requests.at(-1)?.url, '/');
    assert.equal(await status(`${gw.proxyUrl}/a`), 200);
    const applied = await gw.waitForLog((l) => l.msg === 'config applied' && l.actor === 'file');
    assert.match(applied.hash, /^[0-9a-f]{32}$/);
  });

  it('refuses a bad file with every problem logged, keeps serving, and readiness shows the refusal', async () => {
    writeFileSync(
      file,
      stringify({ _format_version: '3.0', services: [{ name: 'api', url: a.url, routes: [{ name: 'a', paths: ['a'] }, { name: 'c', paths: ['/c'], methods: ['FETCH!'] }] }] }),
    );
    const rejected = await gw.waitForLog((l) => l.msg === 'config rejected, the running config stays');
    assert.ok(rejected.problems.some((p: string) => p.startsWith('services[0].routes[0].paths[0]:')), JSON.stringify(rejected.problems));
    assert.ok(rejected.problems.length >= 2, 'every problem, not only the first');
    assert.equal(await status(`${gw.proxyUrl}/b`), 200, 'the running config stays');
    const ready = await request(`${gw.statusUrl}/health/ready`);
    const body = (await ready.body.json()) as any;
    assert.equal(ready.statusCode, 200);
    assert.equal(body.details.config.rejected.problems, rejected.problems.length);
  });

  it('a file that is not YAML is refused the same way', async () => {
    writeFileSync(file, 'services: [unclosed');
    const rejected = await gw.waitForLog((l) => l.msg === 'config rejected, the running config stays' && l.problems.some((p: string) => p.includes('not valid YAML')));
    assert.equal(rejected.actor, 'watch');
    assert.equal(await status(`${gw.proxyUrl}/a`), 200);
  });

  it('SIGHUP reads the file again; a good file clears the refusal', async () => {
    // Written in place while the watcher may be quiet; SIGHUP must apply it whatever the watcher saw.
    writeFileSync(file, stringify(oneService(a.url, [{ name: 'only-c', paths: ['/c'] }])));
    gw.child.kill('SIGHUP');
    await eventually(`${gw.proxyUrl}/c`, 200);
    await eventually(`${gw.proxyUrl}/b`, 404);
    const ready = (await (await request(`${gw.statusUrl}/health/ready`)).body.json()) as any;
    assert.equal(ready.details.config.rejected, undefined);
    assert.ok(gw.child.exitCode === null, 'SIGHUP does not end the process');
  });

  it('a request in flight finishes on the route it matched even when a reload removes that route', async () => {
    replaceFile(file, oneService(slow.url, [{ name: 'slow', paths: ['/slow'] }]));
    await eventually(`${gw.proxyUrl}/slow`, 200);
    const inFlight = request(`${gw.proxyUrl}/slow`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    await sleep(150);
    replaceFile(file, oneService(a.url, [{ name: 'a', paths: ['/a'] }]));
    await eventually(`${gw.proxyUrl}/slow`, 404);
    assert.deepEqual(await inFlight, { status: 200, body: 'slow done' });
  });
});

describe('live reconfiguration, Kubernetes ConfigMap style (a symlink swap)', () => {
  let a: Upstream;
  let b: Upstream;
  let dir: string;
  let gw: GatewayProcess;

  before(async () => {
    a = await startUpstream();
    b = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-configmap-'));
    // What the kubelet writes: ..2026_…/kong.yaml, ..data -> ..2026_…, kong.yaml -> ..data/kong.yaml.
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'kong.yaml'), stringify(oneService(a.url, [{ name: 'a', paths: ['/a'] }])));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/kong.yaml', join(dir, 'kong.yaml'));
    gw = await startGateway({ args: ['--config', join(dir, 'kong.yaml')], env: { GATEHOUSE_WORKERS: '2' } });
  });

  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies the new version in every worker', async () => {
    mkdirSync(join(dir, '..v2'));
    writeFileSync(join(dir, '..v2', 'kong.yaml'), stringify(oneService(b.url, [{ name: 'b', paths: ['/b'] }])));
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(join(dir, '..v1'), { recursive: true });
    await eventually(`${gw.proxyUrl}/b`, 200);
    // Both workers log the swap (each follows the file itself)…
    const deadline = Date.now() + 5_000;
    const pids = () => new Set(gw.logs().filter((l) => l.msg === 'config applied').map((l) => l.pid));
    while (pids().size < 2 && Date.now() < deadline) await sleep(50);
    assert.equal(pids().size, 2, 'both workers applied it');
    // …and a new connection per request, landing on either worker, finds none still routing the old file.
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const res = await request(`${gw.proxyUrl}/a`, { headers: { connection: 'close' } });
      await res.body.dump();
      seen.add(res.statusCode);
    }
    assert.deepEqual([...seen], [404]);
  });
});

describe('live reconfiguration keeps the state of unchanged plugin instances', () => {
  let a: Upstream;
  let dir: string;
  let file: string;
  let gw: GatewayProcess;
  const limited = (minute: number) => ({ name: 'limited', paths: ['/limited'], plugins: [{ name: 'rate-limiting', config: { minute, limit_by: 'ip' } }] });

  before(async () => {
    a = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-reload-state-'));
    file = join(dir, 'kong.yaml');
    writeFileSync(file, stringify(oneService(a.url, [limited(3)])));
    gw = await startGateway({ args: ['--config', file] });
  });

  after(async () => {
    await gw?.stop();
    await a?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('rate-limiting counters survive a change elsewhere, and start over when the limit itself changes', async () => {
    // Fixed windows start on the clock: stay clear of a minute boundary.
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 15_000) await sleep(left + 50);
    assert.equal(await status(`${gw.proxyUrl}/limited`), 200);
    assert.equal(await status(`${gw.proxyUrl}/limited`), 200);
    replaceFile(file, oneService(a.url, [limited(3), { name: 'other', paths: ['/other'] }]));
    await eventually(`${gw.proxyUrl}/other`, 200);
    assert.equal(await status(`${gw.proxyUrl}/limited`), 200, 'the third of three');
    assert.equal(await status(`${gw.proxyUrl}/limited`), 429, 'the count went on across the reload');
    replaceFile(file, oneService(a.url, [limited(5), { name: 'other', paths: ['/other'] }]));
    await gw.waitForLog((l) => l.msg === 'config applied' && l.version === 3);
    assert.equal(await status(`${gw.proxyUrl}/limited`), 200, 'a new limit is a new plugin instance');
  });
});
