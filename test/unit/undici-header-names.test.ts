import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Pool } from 'undici';
import { GATEWAY_UPSTREAM_HEADERS, upstreamRequestHeaders } from '../../src/proxy/forwarding-headers.js';
import { UpstreamClient } from '../../src/proxy/upstream.client.js';
import { registerHeaderNamesWithUndici, registeredWithUndici } from '../../src/proxy/undici-header-names.js';

/**
 * The gateway's own upstream header names are registered with undici as
 * already checked: every name upstreamRequestHeaders adds is, the
 * registration accepts only lower-case tokens, and undici still refuses a bad
 * name from anywhere else and still checks values.
 */
describe('header names registered with undici', () => {
  it('covers every header the gateway adds upstream, once an UpstreamClient exists', async () => {
    const client = new UpstreamClient();
    try {
      const sent = upstreamRequestHeaders(['Host', 'gw.example', 'traceparent', 'x'], {
        peer: '203.0.113.7',
        peerTrusted: false,
        scheme: 'https',
        localPort: 8443,
        path: '/a',
        requestId: 'r-1',
        upstreamHost: 'up.internal',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        tracestate: 'k=v',
      });
      const added = sent.filter((name, i) => i % 2 === 0 && name.toLowerCase() !== 'host');
      assert.deepEqual([...new Set(added)].sort(), [...GATEWAY_UPSTREAM_HEADERS].sort());
      for (const name of GATEWAY_UPSTREAM_HEADERS) assert.ok(registeredWithUndici(name), `${name} is registered`);
    } finally {
      await client.close();
    }
  });

  it('accepts only lower-case header tokens', () => {
    assert.throws(() => registerHeaderNamesWithUndici(['X-Upper']), /not a lower-case header name/);
    assert.throws(() => registerHeaderNamesWithUndici(['bad name']), /not a lower-case header name/);
    assert.throws(() => registerHeaderNamesWithUndici(['']), /not a lower-case header name/);
    assert.equal(registeredWithUndici('bad name'), false);
  });

  it('leaves undici refusing bad names and values, and sending registered names as given', async () => {
    new UpstreamClient();
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const res = await pool.request({ method: 'GET', path: '/', headers: ['x-forwarded-for', '198.51.100.1', 'x-request-id', 'r-2'] });
      await res.body.text();
      assert.equal(seen[0]['x-forwarded-for'], '198.51.100.1');
      assert.equal(seen[0]['x-request-id'], 'r-2');
      await assert.rejects(pool.request({ method: 'GET', path: '/', headers: ['bad name', 'v'] }), /invalid header key/);
      await assert.rejects(pool.request({ method: 'GET', path: '/', headers: ['x-request-id', 'a\r\nx-injected: 1'] }), /invalid x-request-id header/);
      assert.equal(seen.length, 1);
    } finally {
      await pool.close();
      await new Promise((r) => server.close(r));
    }
  });
});
