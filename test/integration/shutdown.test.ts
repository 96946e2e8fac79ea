import assert from 'node:assert/strict';
import { Agent, request as httpRequestRaw } from 'node:http';
import { describe, test } from 'node:test';
import { httpRequest, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { tryConnect } from '../helpers/ports.js';
import { startHoldingUpstream, startUpstream, type Upstream } from '../helpers/upstream.js';


async function untilRefused(url: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = await tryConnect(url);
    if (outcome !== 'connected' || Date.now() > deadline) return outcome;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A request whose outcome is recorded instead of thrown: status and body, or how it failed. */
function inFlight(url: string, path: string, agent: Agent | false = false) {
  const u = new URL(url);
  return new Promise<{ status?: number; body: string; complete: boolean; error?: string }>((resolve) => {
    const req = httpRequestRaw({ host: u.hostname, port: u.port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('error', () => {});
      res.on('close', () => resolve({ status: res.statusCode, body, complete: res.complete }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ body: '', complete: false, error: e.code ?? e.message }));
    req.end();
  });
}

function config(upstream: Upstream) {
  return { _format_version: '3.0', services: [{ name: 'held', url: upstream.url, routes: [{ paths: ['/'] }] }] };
}

describe('shutdown on SIGTERM', () => {
  test('in-flight requests finish, new connections are refused, idle keep-alive connections do not hold it up, exit 0', { timeout: 30_000 }, async (t) => {
    const { upstream, nextArrival, release } = await startHoldingUpstream();
    t.after(() => upstream.close());
    // A long shutdown timeout: if idle connections or the drain were not handled, exit would take that long.
    const gw: GatewayProcess = await startGateway({ config: config(upstream), env: { GATEHOUSE_SHUTDOWN_TIMEOUT: '60000' } });
    t.after(() => gw.stop('SIGKILL'));

    // An idle keep-alive connection from an earlier request.
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => keepAlive.destroy());
    const warm = await inFlight(gw.proxyUrl, '/quick', keepAlive);
    assert.equal(warm.status, 200);
    assert.equal(warm.body, 'quick');

    const arrival = nextArrival();
    const slow = inFlight(gw.proxyUrl, '/slow');
    await arrival;

    gw.child.kill('SIGTERM');
    await gw.waitForLog((l) => l.signal === 'SIGTERM');
    assert.equal(await untilRefused(gw.proxyUrl), 'ECONNREFUSED', 'new connections must be refused while draining');

    // The held request is still in flight; let the upstream answer it now.
    release('slow but complete');
    const outcome = await slow;
    assert.deepEqual(outcome, { status: 200, body: 'slow but complete', complete: true });

    assert.equal(await gw.exited, 0);
    await gw.waitForLog((l) => l.msg === 'shutdown complete', 1_000);
  });

  test('a request still in flight when GATEHOUSE_SHUTDOWN_TIMEOUT passes is cut off, and the process still exits 0', { timeout: 30_000 }, async (t) => {
    const { upstream, nextArrival } = await startHoldingUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({ config: config(upstream), env: { GATEHOUSE_SHUTDOWN_TIMEOUT: '1000' } });
    t.after(() => gw.stop('SIGKILL'));

    const arrival = nextArrival();
    const stuck = inFlight(gw.proxyUrl, '/never-answered');
    await arrival;

    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
    const outcome = await stuck;
    assert.notEqual(outcome.complete, true, 'the cut-off request must not look complete');
    assert.notEqual(outcome.status, 200);
    assert.ok(gw.logs().some((l) => l.msg === 'shutdown timeout reached, closing remaining connections'));
  });

  test('with nothing in flight the process exits 0 promptly and the status listener closes too', { timeout: 30_000 }, async (t) => {
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({ config: config(upstream), env: { GATEHOUSE_SHUTDOWN_TIMEOUT: '60000' } });
    t.after(() => gw.stop('SIGKILL'));
    assert.equal((await httpRequest(gw.proxyUrl, '/x')).status, 200);
    assert.equal(await gw.stop('SIGTERM'), 0);
    assert.equal(await tryConnect(gw.proxyUrl), 'ECONNREFUSED');
    assert.equal(await tryConnect(gw.statusUrl), 'ECONNREFUSED');
  });
});

/** Polls `path` on the status listener until it answers `status` (a signal is delivered asynchronously). */
async function statusUntil(gw: GatewayProcess, path: string, status: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await httpRequest(gw.statusUrl, path).catch(() => undefined);
    if (res?.status === status) return res;
    if (Date.now() > deadline) throw new Error(`${path} did not answer ${status} within ${timeoutMs} ms (last: ${res?.status})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the SIGTERM sequence with GATEHOUSE_SHUTDOWN_DELAY (readiness 503, serve on, then drain)', () => {
  test('readiness flips to 503 at once; the request in flight and new requests during the delay get 200; then connections are refused and the process exits 0', { timeout: 60_000 }, async (t) => {
    const { upstream, nextArrival, release } = await startHoldingUpstream();
    t.after(() => upstream.close());
    // A delay long enough for the checks below to happen inside it; the release ends it no sooner.
    const gw = await startGateway({ config: config(upstream), env: { GATEHOUSE_SHUTDOWN_DELAY: '4', GATEHOUSE_SHUTDOWN_TIMEOUT: '30000' } });
    t.after(() => gw.stop('SIGKILL'));
    assert.deepEqual((await httpRequest(gw.statusUrl, '/status/ready')).json(), { message: 'ready' });

    const arrival = nextArrival();
    const slow = inFlight(gw.proxyUrl, '/slow');
    await arrival;

    gw.child.kill('SIGTERM');
    const draining = await statusUntil(gw, '/status/ready', 503);
    assert.deepEqual(draining.json(), { message: 'draining' });
    assert.equal((await httpRequest(gw.statusUrl, '/health/ready')).json().error.lifecycle.state, 'draining');
    const delayLog = await gw.waitForLog((l) => l.signal === 'SIGTERM' && l.delay_ms === 4000);
    assert.match(delayLog.msg, /readiness is 503/);

    // Still within the delay: new connections are accepted and served, and told to close.
    for (let i = 0; i < 3; i++) {
      const res = await inFlight(gw.proxyUrl, '/quick');
      assert.deepEqual(res, { status: 200, body: 'quick', complete: true });
    }
    assert.equal((await httpRequest(gw.proxyUrl, '/quick')).headers.connection, 'close');
    assert.equal(gw.child.exitCode, null, 'still running during the delay');

    release('slow but complete');
    assert.deepEqual(await slow, { status: 200, body: 'slow but complete', complete: true });

    // After the delay: no new connections, then exit 0.
    await gw.waitForLog((l) => l.msg === 'shutting down: no new connections, finishing in-flight requests', 15_000);
    assert.equal(await untilRefused(gw.proxyUrl), 'ECONNREFUSED');
    assert.equal(await gw.exited, 0);
    assert.ok(gw.logs().some((l) => l.msg === 'shutdown complete'));
  });

  test('a second SIGTERM skips the rest of the delay; the drain still lets the request in flight finish', { timeout: 60_000 }, async (t) => {
    const { upstream, nextArrival, release } = await startHoldingUpstream();
    t.after(() => upstream.close());
    // Without the second signal this process would serve on for 10 minutes.
    const gw = await startGateway({ config: config(upstream), env: { GATEHOUSE_SHUTDOWN_DELAY: '600', GATEHOUSE_SHUTDOWN_TIMEOUT: '30000' } });
    t.after(() => gw.stop('SIGKILL'));

    const arrival = nextArrival();
    const slow = inFlight(gw.proxyUrl, '/slow');
    await arrival;

    gw.child.kill('SIGTERM');
    await statusUntil(gw, '/status/ready', 503);
    gw.child.kill('SIGTERM');
    await gw.waitForLog((l) => l.msg === 'shutting down now: the rest of the shutdown delay is skipped');
    await gw.waitForLog((l) => l.msg === 'shutting down: no new connections, finishing in-flight requests');
    assert.equal(await untilRefused(gw.proxyUrl), 'ECONNREFUSED');
    release('finished while draining');
    assert.deepEqual(await slow, { status: 200, body: 'finished while draining', complete: true });
    assert.equal(await gw.exited, 0);
  });

  test('GATEHOUSE_WORKERS=2: the primary forwards SIGTERM, every worker reports draining and serves through the delay, exit 0', { timeout: 60_000 }, async (t) => {
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({ config: config(upstream), env: { GATEHOUSE_WORKERS: '2', GATEHOUSE_SHUTDOWN_DELAY: '4' } });
    t.after(() => gw.stop('SIGKILL'));
    const seen = new Set<number>();
    await gw.waitForLog((l) => l.msg === 'gatehouse worker started' && seen.add(l.pid).size === 2);

    gw.child.kill('SIGTERM');
    // Each worker logs the start of its own delay.
    let delaying = 0;
    await gw.waitForLog((l) => l.delay_ms === 4000 && l.signal === 'SIGTERM' && ++delaying === 2);
    // New connections are spread over both workers: every one says draining, and every proxied request is served.
    for (let i = 0; i < 6; i++) {
      assert.deepEqual((await httpRequest(gw.statusUrl, '/status/ready')).json(), { message: 'draining' });
      assert.equal((await httpRequest(gw.proxyUrl, `/during-delay-${i}`)).status, 200);
    }
    assert.equal(await gw.exited, 0);
    assert.equal(gw.logs().filter((l) => l.msg === 'shutdown complete').length, 2);
    assert.ok(gw.logs().some((l) => l.msg === 'all workers exited' && l.exit_code === 0));
  });
});
