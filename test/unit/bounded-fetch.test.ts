import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { boundedFetch, IdpFetchError, MAX_IDP_RESPONSE_BYTES } from '../../src/common/bounded.fetch.js';
import { fetchJson } from '../../src/auth/fetch-json.js';
import { FakeIssuer } from '../helpers/fake-issuer.js';

/**
 * Every IdP response body is bounded (MAX_IDP_RESPONSE_BYTES): fetchJson for
 * discovery and JWKS, boundedFetch for openid-client's own requests. A larger
 * body is cut off where it crosses the cap, so the connection is closed long
 * before the IdP has sent it all.
 */

const HUGE = 64 * 1024 * 1024;
/** Loopback socket buffers take a few MiB before the cut-off shows; a body read to the end would be all 64. */
const CUT_OFF_WELL_BEFORE = 16 * 1024 * 1024;

const settle = () => new Promise((r) => setTimeout(r, 200));

describe('fetchJson (discovery, JWKS)', () => {
  it('reads a normal document', async () => {
    const idp = await FakeIssuer.start();
    try {
      const jwks = await fetchJson(`${idp.issuer}/jwks`, 2000);
      assert.equal((jwks.keys as unknown[]).length, 2);
    } finally {
      await idp.stop();
    }
  });

  it('refuses a chunked body past the cap and closes the connection there', async () => {
    const idp = await FakeIssuer.start(undefined, 0, { huge: { endpoint: 'jwks', bytes: HUGE } });
    try {
      await assert.rejects(fetchJson(`${idp.issuer}/jwks`, 5000), (e: Error) => e instanceof IdpFetchError && e.message.endsWith(`response body larger than ${MAX_IDP_RESPONSE_BYTES} bytes`));
      await settle();
      assert.ok(idp.hugeBytesSent < CUT_OFF_WELL_BEFORE, `the IdP got to send ${idp.hugeBytesSent} bytes`);
    } finally {
      await idp.stop();
    }
  });

  it('refuses a declared Content-Length past the cap before reading the body', async () => {
    let sent = false;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 5_000_000 });
      sent = res.write('{"keys":[');
    });
    const url = await listen(server);
    try {
      await assert.rejects(fetchJson(url, 2000, undefined, 1000), /larger than 1000 bytes/);
      assert.ok(sent);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('boundedFetch (openid-client customFetch)', () => {
  let server: Server;
  let url: string;
  let stalled = 0;

  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/ok') return void res.writeHead(200, { 'content-type': 'application/json', 'x-kept': 'yes' }).end('{"active":false}');
      if (req.url === '/empty') return void res.writeHead(204).end();
      if (req.url === '/stall') {
        stalled++;
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.write('{"active":');
      }
      res.writeHead(404).end();
    });
    url = await listen(server);
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const init = { method: 'GET', headers: {}, redirect: 'manual' as const };

  it('passes a normal answer through with its status, headers and body', async () => {
    const res = await boundedFetch(2000)(`${url}/ok`, init);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-kept'), 'yes');
    assert.deepEqual(await res.json(), { active: false });
    assert.equal((await boundedFetch(2000)(`${url}/empty`, init)).status, 204);
  });

  it('fails with a TypeError past the cap (openid-client lets those through as network failures)', async () => {
    const idp = await FakeIssuer.start(undefined, 0, { huge: { endpoint: 'jwks', bytes: HUGE } });
    try {
      await assert.rejects(boundedFetch(5000)(`${idp.issuer}/jwks`, init), (e: Error) => e instanceof TypeError && /larger than 1048576 bytes/.test(e.message));
      await settle();
      assert.ok(idp.hugeBytesSent < CUT_OFF_WELL_BEFORE, `the IdP got to send ${idp.hugeBytesSent} bytes`);
    } finally {
      await idp.stop();
    }
  });

  it('bounds the whole exchange in time, body included', async () => {
    const started = Date.now();
    await assert.rejects(boundedFetch(300)(`${url}/stall`, init), (e: Error) => e instanceof IdpFetchError && /no complete answer within 300 ms/.test(e.message));
    assert.ok(Date.now() - started < 2000);
    assert.equal(stalled, 1);
  });

  it('reaches openid-client callers as a TypeError, not a ClientError (503, not 401)', async () => {
    const idp = await FakeIssuer.start(undefined, 0, { huge: { endpoint: 'introspect', bytes: HUGE } });
    try {
      const metadata = { issuer: idp.issuer, introspection_endpoint: `${idp.issuer}/introspect` };
      const config = new client.Configuration(metadata, 'c', { client_secret: 's' }, client.ClientSecretBasic('s'));
      client.allowInsecureRequests(config);
      config[client.customFetch] = boundedFetch(5000) as client.CustomFetch;
      const err = await client.tokenIntrospection(config, 'opaque').then(
        () => assert.fail('a 64 MiB introspection answer was accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TypeError && !(err instanceof client.ClientError), String(err));
      assert.equal(idp.introspections, 1);
    } finally {
      await idp.stop();
    }
  });
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
