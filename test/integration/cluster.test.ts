import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { NODE_FLAGS } from '../../src/runtime/node-flags.js';

/** GATEHOUSE_WORKERS: one primary, N workers sharing the listeners, orderly shutdown. */
describe('multi-worker mode', () => {
  let upstream: Upstream;
  let issuer: FakeIssuer;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true }));
    });
    issuer = await FakeIssuer.start();
    gw = await startGateway({
      env: { GATEHOUSE_WORKERS: '2' },
      // A bearer route without an audience: warned about once, by the primary that loaded the file.
      config: oneService(upstream.url, [{ name: 'r', paths: ['/'] }, { name: 'p', paths: ['/p'], plugins: [bearerPlugin(issuer.issuer)] }]),
    });
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
    await issuer?.stop();
  });

  it('announces the start once, after both workers listen on the same ports', async () => {
    // Each process buffers its log, so a worker's line may arrive after the primary's: wait for both.
    const seen = new Set<number>();
    await gw.waitForLog((l) => l.msg === 'gatehouse worker started' && seen.add(l.pid).size === 2);
    const started = gw.logs().filter((l) => l.msg === 'gatehouse started');
    assert.equal(started.length, 1);
    assert.equal(started[0].workers, 2);
    const workers = gw.logs().filter((l) => l.msg === 'gatehouse worker started');
    assert.equal(new Set(workers.map((w) => w.pid)).size, 2, 'two worker processes');
    for (const w of workers) {
      assert.equal(w.proxy, gw.proxyUrl, 'every worker serves the announced port');
      assert.ok(Date.parse(w.time) <= Date.parse(started[0].time), 'the primary announces only after the worker has started');
    }
  });

  it('warns about the config once, before the workers start, not once per worker', async () => {
    const warnings = gw.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('SECURITY: no audience configured'));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].path, 'services[0].routes[1].plugins[0].config.audience');
    const started = gw.logs().find((l) => l.msg === 'gatehouse started')!;
    assert.ok(Date.parse(warnings[0].time) <= Date.parse(started.time));
  });

  it('starts the workers with the command-line V8 flags, though the primary was started without them', async () => {
    const workers = gw.logs().filter((l) => l.msg === 'gatehouse worker started');
    assert.equal(workers.length, 2);
    for (const w of workers) {
      const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
      for (const flag of NODE_FLAGS) assert.ok(argv.includes(flag), `worker ${w.pid} runs with ${flag}: ${argv.join(' ')}`);
    }
  });

  it('serves requests and health from the workers', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await request(`${gw.proxyUrl}/x`);
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    const ready = await request(`${gw.statusUrl}/health/ready`);
    assert.equal(ready.statusCode, 200);
    await ready.body.dump();
  });

  it('stops every worker on SIGTERM and exits 0', async () => {
    const code = await gw.stop('SIGTERM');
    assert.equal(code, 0);
    await assert.rejects(request(`${gw.proxyUrl}/x`), /ECONNREFUSED/);
  });
});

describe('multi-worker mode refusals', () => {
  it('refuses several workers for the built-in demo (one embedded IdP per process would mean several issuers)', async () => {
    const gw = await startGateway({ env: { GATEHOUSE_WORKERS: '2' }, expectStart: false });
    const code = await gw.exited;
    assert.equal(code, 1);
    assert.match(gw.lines.join('\n'), /GATEHOUSE_WORKERS > 1 needs a declarative config/);
  });
});
