import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { describe, it } from 'node:test';
import {
  canonicalHeaderName,
  clientResponseHeaders,
  type ConnectionFacts,
  HOP_BY_HOP,
  isTrustedPeer,
  upstreamRequestHeaders,
} from '../../src/proxy/forwarding-headers.js';

/**
 * Header rules between client, gateway and upstream: what is dropped, what the
 * gateway sets, and that a client can neither spoof nor remove the gateway's
 * own headers.
 */

const FACTS: ConnectionFacts = {
  peer: '203.0.113.7',
  peerTrusted: false,
  scheme: 'http',
  localPort: 8000,
  path: '/api/items',
  requestId: 'req-gateway-1',
  upstreamHost: 'upstream.internal:8080',
};

/** Lower-cased name → every value sent under it, in order. */
function headerMap(flat: readonly string[]): Map<string, string[]> {
  assert.equal(flat.length % 2, 0, 'a flat header list has name/value pairs');
  const map = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i].toLowerCase();
    map.set(name, [...(map.get(name) ?? []), flat[i + 1]]);
  }
  return map;
}

function send(raw: string[], facts: Partial<ConnectionFacts> = {}, edits?: Parameters<typeof upstreamRequestHeaders>[2]) {
  return headerMap(upstreamRequestHeaders(raw, { ...FACTS, ...facts }, edits));
}

/** The single value the gateway sends under `name` (fails if absent or repeated). */
function one(headers: Map<string, string[]>, name: string): string {
  const values = headers.get(name);
  assert.ok(values, `${name} is missing`);
  assert.equal(values.length, 1, `${name} sent ${values.length} times: ${values.join(' | ')}`);
  return values[0];
}

describe('upstreamRequestHeaders: hop-by-hop headers', () => {
  const hopByHop: [string, string][] = [
    ['Connection', 'keep-alive'],
    ['Keep-Alive', 'timeout=5'],
    ['Proxy-Connection', 'keep-alive'],
    ['Proxy-Authorization', 'Basic cHJveHk6c2VjcmV0'],
    ['Proxy-Authenticate', 'Basic'],
    ['TE', 'trailers'],
    ['Trailer', 'Expires'],
    ['Transfer-Encoding', 'chunked'],
    ['Upgrade', 'websocket'],
    ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
    ['Expect', '100-continue'],
  ];

  for (const [name, value] of hopByHop) {
    it(`${name} is not forwarded`, () => {
      const headers = send(['Host', 'gw.example.com', name, value, 'Accept', '*/*']);
      assert.equal(headers.has(name.toLowerCase()), false);
      assert.deepEqual(headers.get('accept'), ['*/*']);
    });
  }

  it('every hop-by-hop header is in the list above', () => {
    assert.deepEqual([...HOP_BY_HOP].sort(), hopByHop.map(([n]) => n.toLowerCase()).sort());
  });

  it('end-to-end headers pass unchanged, with their spelling and order', () => {
    const raw = [
      'Host', 'gw.example.com',
      'Accept', 'application/json',
      'Content-Type', 'application/json',
      'Content-Length', '17',
      'Authorization', 'Bearer abc',
      'Cookie', 'a=1',
      'X-Custom', 'one',
      'x-custom', 'two',
    ];
    const out = upstreamRequestHeaders(raw, FACTS);
    // The client's headers come first, as sent (minus Host), then the gateway's own.
    assert.deepEqual(out.slice(0, raw.length - 2), raw.slice(2));
  });
});

describe('upstreamRequestHeaders: Connection-nominated headers', () => {
  it('every header the client names in Connection is dropped, case- and space-insensitively', () => {
    const headers = send([
      'Host', 'gw.example.com',
      'Connection', 'close, X-Debug-Token ,x-hop',
      'connection', 'X-Second-List',
      'X-Debug-Token', 'secret',
      'X-Hop', '1',
      'X-Second-List', '2',
      'X-Kept', '3',
    ]);
    for (const name of ['x-debug-token', 'x-hop', 'x-second-list', 'connection']) assert.equal(headers.has(name), false, name);
    assert.deepEqual(headers.get('x-kept'), ['3']);
  });

  it('nominating the gateway\'s own headers cannot remove them: the gateway still sets each once', () => {
    const headers = send([
      'Host', 'gw.example.com',
      'Connection', 'X-Forwarded-For, x-request-id, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host, Host',
      'X-Forwarded-For', '6.6.6.6',
      'X-Request-Id', 'client-chosen',
    ]);
    assert.equal(one(headers, 'x-forwarded-for'), FACTS.peer);
    assert.equal(one(headers, 'x-request-id'), FACTS.requestId);
    assert.equal(one(headers, 'x-real-ip'), FACTS.peer);
    assert.equal(one(headers, 'x-forwarded-proto'), 'http');
    assert.equal(one(headers, 'x-forwarded-host'), 'gw.example.com', 'Host is the request\'s, not a hop\'s');
    assert.equal(one(headers, 'host'), FACTS.upstreamHost);
  });

  it('a trusted proxy nominating X-Forwarded-For makes it hop-by-hop: not extended', () => {
    const headers = send(['Host', 'h', 'Connection', 'x-forwarded-for', 'X-Forwarded-For', '198.51.100.1'], { peerTrusted: true });
    assert.equal(one(headers, 'x-forwarded-for'), FACTS.peer);
  });
});

describe('upstreamRequestHeaders: X-Forwarded-* and X-Real-IP', () => {
  const spoofed = [
    'Host', 'gw.example.com',
    'X-Forwarded-For', '198.51.100.1, 10.0.0.1',
    'X-Forwarded-For', '10.0.0.2',
    'X-Forwarded-Proto', 'https',
    'X-Forwarded-Host', 'spoofed.example.com',
    'X-Forwarded-Port', '443',
    'X-Forwarded-Path', '/spoofed',
    'X-Forwarded-Prefix', '/spoofed',
    'X-Real-IP', '198.51.100.99',
    'X-Request-Id', 'spoofed-id',
    'Forwarded', 'for=198.51.100.1;proto=https',
  ];

  it('untrusted peer: every client value is dropped and the connection\'s facts are sent', () => {
    const headers = send(spoofed);
    assert.equal(one(headers, 'host'), 'upstream.internal:8080');
    assert.equal(one(headers, 'x-forwarded-for'), '203.0.113.7');
    assert.equal(one(headers, 'x-forwarded-proto'), 'http');
    assert.equal(one(headers, 'x-forwarded-host'), 'gw.example.com');
    assert.equal(one(headers, 'x-forwarded-port'), '8000');
    assert.equal(one(headers, 'x-forwarded-path'), '/api/items');
    assert.equal(one(headers, 'x-real-ip'), '203.0.113.7');
    assert.equal(one(headers, 'x-request-id'), 'req-gateway-1');
    assert.equal(headers.has('forwarded'), false);
    assert.equal(headers.has('x-forwarded-prefix'), false);
  });

  it('untrusted peer: underscore spellings of the gateway\'s headers are dropped too', () => {
    const headers = send(['Host', 'h', 'X_Forwarded_For', '6.6.6.6', 'x-real_ip', '6.6.6.6', 'X_Request_Id', 'spoofed']);
    assert.equal(one(headers, 'x-forwarded-for'), FACTS.peer);
    for (const name of ['x_forwarded_for', 'x-real_ip', 'x_request_id']) assert.equal(headers.has(name), false, name);
  });

  it('trusted proxy: X-Forwarded-For is extended with the peer, the other values are believed', () => {
    const headers = send(spoofed, { peerTrusted: true, peer: '10.0.0.3' });
    assert.equal(one(headers, 'x-forwarded-for'), '198.51.100.1, 10.0.0.1, 10.0.0.2, 10.0.0.3');
    assert.equal(one(headers, 'x-forwarded-proto'), 'https');
    assert.equal(one(headers, 'x-forwarded-host'), 'spoofed.example.com');
    assert.equal(one(headers, 'x-forwarded-port'), '443');
    assert.equal(one(headers, 'x-forwarded-path'), '/spoofed');
    assert.equal(one(headers, 'x-real-ip'), '198.51.100.99');
    // The id is chosen before (facts.requestId); whatever the proxy sent is not forwarded twice.
    assert.equal(one(headers, 'x-request-id'), 'req-gateway-1');
    assert.equal(one(headers, 'host'), 'upstream.internal:8080');
  });

  it('trusted proxy without X-Real-IP: the first X-Forwarded-For entry is the client', () => {
    const headers = send(['Host', 'h', 'X-Forwarded-For', ' 198.51.100.1 , 10.0.0.1'], { peerTrusted: true, peer: '10.0.0.3' });
    assert.equal(one(headers, 'x-real-ip'), '198.51.100.1');
  });

  it('trusted proxy that sent nothing: the connection\'s facts, as for anyone', () => {
    const headers = send(['Host', 'gw.example.com'], { peerTrusted: true, scheme: 'https', localPort: 8443 });
    assert.equal(one(headers, 'x-forwarded-for'), FACTS.peer);
    assert.equal(one(headers, 'x-forwarded-proto'), 'https');
    assert.equal(one(headers, 'x-forwarded-host'), 'gw.example.com');
    assert.equal(one(headers, 'x-forwarded-port'), '8443');
    assert.equal(one(headers, 'x-real-ip'), FACTS.peer);
  });

  it('no Host header (HTTP/1.0): no X-Forwarded-Host, the upstream still gets its Host', () => {
    const headers = send(['Accept', '*/*']);
    assert.equal(headers.has('x-forwarded-host'), false);
    assert.equal(one(headers, 'host'), FACTS.upstreamHost);
  });
});

describe('upstreamRequestHeaders: HeaderEdits', () => {
  it('remove drops a header whatever its case or "_"/"-" spelling; add comes after and cannot be removed by the client', () => {
    const headers = send(
      [
        'Host', 'h',
        'X-User-Id', 'spoofed-1',
        'x_user_id', 'spoofed-2',
        'X_USER-ID', 'spoofed-3',
        'X-UserId', 'kept: different name',
        'Connection', 'x-user-id',
        'Authorization', 'Bearer token',
      ],
      {},
      { remove: new Set(['x-user-id', 'authorization']), add: [['X-User-Id', 'alice'], ['authorization', 'Bearer upstream']] },
    );
    assert.deepEqual(headers.get('x-user-id'), ['alice']);
    assert.deepEqual(headers.get('authorization'), ['Bearer upstream']);
    assert.deepEqual(headers.get('x-userid'), ['kept: different name']);
    for (const name of ['x_user_id', 'x_user-id']) assert.equal(headers.has(name), false, name);
  });

  it('added headers come after the gateway\'s own, in the order given', () => {
    const out = upstreamRequestHeaders(['Host', 'h'], FACTS, { add: [['X-A', '1'], ['X-B', '2']] });
    assert.deepEqual(out.slice(-4), ['X-A', '1', 'X-B', '2']);
  });
});

describe('canonicalHeaderName', () => {
  const cases: [string, string][] = [
    ['X-User-Id', 'x-user-id'],
    ['x_user_id', 'x-user-id'],
    ['X_USER-ID', 'x-user-id'],
    ['Authorization', 'authorization'],
    ['x__a', 'x--a'],
  ];
  for (const [name, canonical] of cases) {
    it(`${name} → ${canonical}`, () => assert.equal(canonicalHeaderName(name), canonical));
  }
});

describe('clientResponseHeaders', () => {
  /** undici hands over the upstream's header fields as raw buffers, in order, repeats included. */
  const raw = (...pairs: string[]) => pairs.map((p) => Buffer.from(p, 'latin1'));

  it('drops hop-by-hop and upstream-nominated headers, keeps repeats and case, sets the request id', () => {
    const out = clientResponseHeaders(
      raw(
        'Content-Type', 'text/plain',
        'Content-Length', '5',
        'Set-Cookie', 'a=1',
        'Set-Cookie', 'b=2',
        'Connection', 'keep-alive, X-Internal-Trace',
        'Keep-Alive', 'timeout=5',
        'Transfer-Encoding', 'chunked',
        'Upgrade', 'h2c',
        'Trailer', 'Expires',
        'Proxy-Authenticate', 'Basic',
        'X-Internal-Trace', 'abc',
        'X-Request-Id', 'upstream-made-this-up',
      ),
      'req-gateway-1',
    );
    assert.deepEqual(out, ['Content-Type', 'text/plain', 'Content-Length', '5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'x-request-id', 'req-gateway-1']);
  });

  it('a Connection header sent twice nominates from both', () => {
    const out = clientResponseHeaders(raw('connection', 'x-a', 'x-a', '1', 'Connection', 'X-B', 'x-b', '2', 'x-c', '3'), 'id');
    assert.deepEqual(out, ['x-c', '3', 'x-request-id', 'id']);
  });

  it('keeps header values byte for byte (latin1), as Node would write them', () => {
    const out = clientResponseHeaders([Buffer.from('X-Name'), Buffer.from([0x63, 0x61, 0x66, 0xe9])], 'id');
    assert.deepEqual(out, ['X-Name', 'caf\u00e9', 'x-request-id', 'id']);
  });
});

describe('isTrustedPeer', () => {
  const list = new BlockList();
  list.addSubnet('10.0.0.0', 8, 'ipv4');
  list.addAddress('fd00::1', 'ipv6');
  const cases: [string | undefined, boolean][] = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['fd00::1', true],
    ['fd00::2', false],
    [undefined, false],
    ['', false],
  ];
  for (const [address, trusted] of cases) {
    it(`${address ?? '(no address)'} → ${trusted}`, () => assert.equal(isTrustedPeer(list, address), trusted));
  }
});

describe('singleton credentials', () => {
  it('forwards only the first Authorization header, the one the gateway verified', () => {
    const out = upstreamRequestHeaders(
      ['Authorization', 'Bearer verified', 'authorization', 'Bearer smuggled', 'Accept', '*/*'],
      { peer: '10.0.0.1', peerTrusted: false, scheme: 'http', localPort: 8000, path: '/', requestId: 'r', upstreamHost: 'up' },
    );
    const values = out.filter((_, i) => i % 2 === 1 && out[i - 1].toLowerCase() === 'authorization');
    assert.deepEqual(values, ['Bearer verified']);
  });
});
