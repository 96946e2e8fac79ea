import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseDeclarativeConfig } from '../../src/config/config.loader.js';
import {
  cacheKey,
  canonicalQuery,
  contentTypeMatcher,
  parseCacheControl,
  requestPolicy,
  responseTtl,
  type KeyInputs,
  type KeyOptions,
} from '../../src/plugins/proxy-cache/proxy-cache.rules.js';
import { BodyCollector } from '../../src/plugins/proxy-cache/proxy-cache.plugin.js';
import { proxyCacheConfigSchema } from '../../src/plugins/proxy-cache/proxy-cache.schema.js';
import { decodeEntry, encodeEntry, MemoryStore, type CachedResponse } from '../../src/plugins/proxy-cache/proxy-cache.store.js';

const OPTS: KeyOptions = { scope: '["api","r"]', ignoreUriCase: false, varyHeaders: [] };
const BASE: KeyInputs = { method: 'GET', path: '/items', query: '', headers: {} };
const key = (inputs: Partial<KeyInputs>, opts: Partial<KeyOptions> = {}) => cacheKey({ ...BASE, ...inputs }, { ...OPTS, ...opts });

describe('proxy-cache: schema', () => {
  it("has Kong's defaults", () => {
    const c = proxyCacheConfigSchema.parse({ strategy: 'memory' });
    assert.deepEqual(c.response_code, [200, 301, 404]);
    assert.deepEqual(c.request_method, ['GET', 'HEAD']);
    assert.deepEqual(c.content_type, ['text/plain', 'application/json']);
    assert.equal(c.cache_ttl, 300);
    assert.equal(c.cache_control, false);
    assert.equal(c.ignore_uri_case, false);
    assert.equal(c.memory.max_bytes, 64 * 1024 * 1024);
    assert.equal(c.max_body_bytes, 1024 * 1024);
    assert.deepEqual(c.redis, { host: '127.0.0.1', port: 6379, database: 0, timeout: 2000, prefix: 'gatehouse:proxy-cache:' });
  });

  it('reports every bad field at its path in the declarative file', () => {
    const text = JSON.stringify({
      _format_version: '3.0',
      services: [
        {
          name: 'api',
          url: 'http://127.0.0.1:1',
          routes: [{ name: 'r', paths: ['/r'], plugins: [{ name: 'proxy-cache', config: { strategy: 'disk', cache_ttl: 0, content_type: ['json'], request_method: ['DELETE'] } }] }],
        },
      ],
    });
    let err: unknown;
    try {
      parseDeclarativeConfig(text, 'kong.json', {});
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    const paths = err.problems.map((p) => p.path).sort();
    const at = 'services[0].routes[0].plugins[0].config.';
    assert.deepEqual(paths, [`${at}cache_ttl`, `${at}content_type[0]`, `${at}request_method[0]`, `${at}strategy`].sort());
  });

  it('refuses a storage_ttl below cache_ttl and a body bound above the memory bound', () => {
    const r = proxyCacheConfigSchema.safeParse({ strategy: 'memory', cache_ttl: 60, storage_ttl: 30, max_body_bytes: 2048, memory: { max_bytes: 1024 } });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues.map((i) => i.path.join('.')).sort(), ['max_body_bytes', 'storage_ttl']);
  });
});

describe('proxy-cache: cache key', () => {
  const cases: { name: string; a: [Partial<KeyInputs>, Partial<KeyOptions>?]; b: [Partial<KeyInputs>, Partial<KeyOptions>?]; same: boolean }[] = [
    { name: 'query order does not matter', a: [{ query: '?a=1&b=2' }], b: [{ query: '?b=2&a=1' }], same: true },
    { name: 'query values matter', a: [{ query: '?a=1' }], b: [{ query: '?a=2' }], same: false },
    { name: 'an empty query is no query', a: [{ query: '?' }], b: [{ query: '' }], same: true },
    { name: 'method matters', a: [{ method: 'GET' }], b: [{ method: 'HEAD' }], same: false },
    { name: 'path case matters by default', a: [{ path: '/Items' }], b: [{ path: '/items' }], same: false },
    { name: 'ignore_uri_case folds the path', a: [{ path: '/Items' }, { ignoreUriCase: true }], b: [{ path: '/items' }, { ignoreUriCase: true }], same: true },
    { name: 'vary_query_params ignores the others', a: [{ query: '?page=2&utm=x' }, { varyQueryParams: new Set(['page']) }], b: [{ query: '?page=2&utm=y' }, { varyQueryParams: new Set(['page']) }], same: true },
    { name: 'vary_query_params keeps the named ones', a: [{ query: '?page=1' }, { varyQueryParams: new Set(['page']) }], b: [{ query: '?page=2' }, { varyQueryParams: new Set(['page']) }], same: false },
    { name: 'unvaried headers do not matter', a: [{ headers: { 'accept-language': 'de' } }], b: [{ headers: { 'accept-language': 'fr' } }], same: true },
    { name: 'vary_headers values matter', a: [{ headers: { 'accept-language': 'de' } }, { varyHeaders: ['accept-language'] }], b: [{ headers: { 'accept-language': 'fr' } }, { varyHeaders: ['accept-language'] }], same: false },
    { name: 'an absent vary header differs from an empty one', a: [{ headers: {} }, { varyHeaders: ['x-v'] }], b: [{ headers: { 'x-v': '' } }, { varyHeaders: ['x-v'] }], same: false },
    { name: 'the Host counts when forwarded (preserve_host)', a: [{ host: 'a.example' }], b: [{ host: 'b.example' }], same: false },
    { name: 'Host case does not matter', a: [{ host: 'A.example' }], b: [{ host: 'a.example' }], same: true },
    { name: 'callers never share', a: [{ caller: 'alice' }], b: [{ caller: 'bob' }], same: false },
    { name: 'a caller differs from no caller', a: [{ caller: 'alice' }], b: [{}], same: false },
    { name: 'tokens never share', a: [{ accessToken: 't1' }], b: [{ accessToken: 't2' }], same: false },
    { name: 'a caller is not a token with the same text', a: [{ caller: 'x' }], b: [{ accessToken: 'x' }], same: false },
    { name: 'routes never share', a: [{}, { scope: '["api","a"]' }], b: [{}, { scope: '["api","b"]' }], same: false },
    { name: 'components cannot run into each other', a: [{ path: '/a', query: '?b' }], b: [{ path: '/a?b', query: '' }], same: false },
    { name: 'a claim with separators stays one component', a: [{ caller: 'a","b' }], b: [{ caller: 'a', headers: {} }], same: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const a = key(c.a[0], c.a[1]);
      const b = key(c.b[0], c.b[1]);
      assert.match(a, /^[0-9a-f]{64}$/);
      assert.equal(a === b, c.same);
    });
  }

  it('the token itself never appears in the key', () => {
    assert.ok(!key({ accessToken: 'secret-token' }).includes('secret-token'));
  });

  it('canonical query', () => {
    assert.equal(canonicalQuery('?b=2&&a=1&c', { ignoreUriCase: false }), 'a=1&b=2&c');
    assert.equal(canonicalQuery('?Page=2&X=1', { ignoreUriCase: true, varyQueryParams: new Set(['page']) }), 'page=2');
  });
});

describe('proxy-cache: Cache-Control', () => {
  const ttlCases: { header: string | undefined; honour: boolean; ttl: number }[] = [
    { header: undefined, honour: true, ttl: 300 },
    { header: 'max-age=60', honour: true, ttl: 60 },
    { header: 'max-age=60, s-maxage=10', honour: true, ttl: 10 },
    { header: 'public, MAX-AGE="30"', honour: true, ttl: 30 },
    { header: 'max-age=0', honour: true, ttl: 0 },
    { header: 'no-store', honour: true, ttl: 0 },
    { header: 'private, max-age=60', honour: true, ttl: 0 },
    { header: 'no-cache', honour: true, ttl: 0 },
    { header: 'no-cache="set-cookie"', honour: true, ttl: 0 },
    { header: 'max-age=abc', honour: true, ttl: 300 },
    { header: 'max-age=5, max-age=50', honour: true, ttl: 5 },
    { header: 'no-store', honour: false, ttl: 300 },
    { header: 'max-age=60', honour: false, ttl: 300 },
  ];
  for (const c of ttlCases) {
    it(`response ${JSON.stringify(c.header)} with cache_control ${c.honour} → ttl ${c.ttl}`, () => {
      assert.equal(responseTtl(c.honour, parseCacheControl(c.header), 300), c.ttl);
    });
  }

  const requestCases: [string, string][] = [
    ['', 'use'],
    ['no-store', 'bypass'],
    ['no-cache', 'refresh'],
    ['max-age=0', 'refresh'],
    ['max-age=10', 'use'],
    ['No-Store, max-age=0', 'bypass'],
  ];
  for (const [header, policy] of requestCases) {
    it(`request ${JSON.stringify(header)} → ${policy}`, () => assert.equal(requestPolicy(parseCacheControl(header)), policy));
  }

  it('several Cache-Control fields are one list', () => {
    const d = parseCacheControl(['public', 'max-age=7']);
    assert.equal(d.maxAge, 7);
  });
});

describe('proxy-cache: content_type', () => {
  const allowed = contentTypeMatcher(['text/plain', 'Application/JSON', 'image/*']);
  const cases: [string | undefined, boolean][] = [
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['APPLICATION/JSON;charset=UTF-8', true],
    ['text/plain', true],
    ['image/png', true],
    ['text/html', false],
    ['application/jsonp', false],
    [undefined, false],
  ];
  for (const [ct, ok] of cases) it(`${ct} → ${ok}`, () => assert.equal(allowed(ct), ok));
  it('*/* allows everything with a type', () => {
    assert.equal(contentTypeMatcher(['*/*'])('text/html'), true);
    assert.equal(contentTypeMatcher(['*/*'])(undefined), false);
  });
});

describe('proxy-cache: memory store', () => {
  const entry = (bytes: number, storedAt = 1_000): CachedResponse => ({ status: 200, headers: ['content-type', 'text/plain'], body: Buffer.alloc(bytes), storedAt, ttl: 60 });

  it('evicts the least recently used entries beyond its byte bound', () => {
    const store = new MemoryStore(3_000);
    store.set('a', entry(800), 60);
    store.set('b', entry(800), 60);
    assert.ok(store.get('a', 1_000), 'a is now the most recent');
    store.set('c', entry(800), 60);
    assert.equal(store.get('b', 1_000), undefined, 'b was the least recently used');
    assert.ok(store.get('a', 1_000));
    assert.ok(store.get('c', 1_000));
    assert.ok(store.bytes <= 3_000);
  });

  it('does not keep an entry larger than itself, and replaces an entry in place', () => {
    const store = new MemoryStore(1_000);
    store.set('big', entry(5_000), 60);
    assert.equal(store.size, 0);
    store.set('a', entry(100), 60);
    const before = store.bytes;
    store.set('a', entry(100), 60);
    assert.equal(store.bytes, before);
    assert.equal(store.size, 1);
  });

  it('drops entries past their storage lifetime', () => {
    const store = new MemoryStore(10_000);
    store.set('a', entry(10, 1_000), 5);
    assert.ok(store.get('a', 5_999));
    assert.equal(store.get('a', 6_000), undefined);
    assert.equal(store.bytes, 0);
  });

  it('the Redis form round-trips, and garbage decodes to nothing', () => {
    const v: CachedResponse = { status: 404, headers: ['content-type', 'application/json', 'x-a', 'é'], body: Buffer.from([0, 1, 2, 255]), storedAt: 123, ttl: 9 };
    assert.deepEqual(decodeEntry(encodeEntry(v)), v);
    assert.equal(decodeEntry(Buffer.from('xx')), undefined);
    assert.equal(decodeEntry(Buffer.from([0, 0, 0, 3, 0x7b, 0x7d, 0x7d])), undefined);
  });
});

describe('proxy-cache: body collection', () => {
  const collect = (max: number, chunks: string[], finish: 'end' | 'abort') => {
    const stored: Buffer[] = [];
    const tap = new BodyCollector(max, (b) => stored.push(b));
    for (const c of chunks) tap.data(Buffer.from(c));
    tap[finish]();
    tap.end(); // a late second end stores nothing more
    return stored;
  };

  it('concatenates the chunks once at the end', () => {
    const stored = collect(10, ['ab', 'cd', 'e'], 'end');
    assert.equal(stored.length, 1);
    assert.equal(stored[0].toString(), 'abcde');
  });

  it('a body exactly at the bound is stored; one byte more is not', () => {
    assert.equal(collect(4, ['ab', 'cd'], 'end').length, 1);
    assert.equal(collect(4, ['ab', 'cd', 'e'], 'end').length, 0);
  });

  it('nothing is stored after abort()', () => {
    assert.equal(collect(10, ['ab'], 'abort').length, 0);
  });
});
