import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** One request on a connection of its own (no keep-alive pool): the cluster hands each new connection to a worker in turn. */
function onNewConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * GATEHOUSE_WORKERS=2 with the embedded store: the admin listener is shared
 * by the workers like the proxy's, the worker that takes a write saves the
 * store file and applies it, and the other one sees the file change and
 * applies it too.
 */
describe('an admin write with GATEHOUSE_WORKERS=2 and the embedded store', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      env: { GATEHOUSE_WORKERS: '2', GATEHOUSE_DATABASE: 'embedded' },
      config: oneService(upstream.url, [{ name: 'before', paths: ['/before'] }]),
    });
    const pids = new Set<number>();
    await gw.waitForLog((l) => l.msg === 'gatehouse worker started' && pids.add(l.pid).size === 2);
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
  });

  it('is applied by both workers: every request on a new connection routes it within 1 s', async () => {
    for (let i = 0; i < 6; i++) assert.equal(await onNewConnection(`${gw.proxyUrl}/added`), 404, 'not there before the write');

    const res = await request(`${gw.adminUrl}/services/api/routes`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=added&paths=/added',
    });
    const writtenAt = Date.now();
    assert.equal(res.statusCode, 201, await res.body.text());

    // Until the deadline: 10 consecutive new connections (five per worker, round-robin) all routed.
    let consecutive = 0;
    while (consecutive < 10) {
      const status = await onNewConnection(`${gw.proxyUrl}/added`);
      consecutive = status === 200 ? consecutive + 1 : 0;
      if (status !== 200 && Date.now() - writtenAt > 1_000) assert.fail(`a worker still answers ${status} for the new route 1 s after the write`);
    }
    // And each worker said so itself.
    const appliedBy = new Set<number>();
    await gw.waitForLog((l) => l.msg === 'config applied' && l.routes === 2 && appliedBy.add(l.pid).size === 2, 5_000);
    assert.equal(appliedBy.size, 2);
  });
});
