import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { regexLiteralPrefixes } from '../../src/proxy/route-index.js';
import { RouteTable, type RouteMatch } from '../../src/proxy/route-table.js';
import { ROUTE_SET_PLAIN_PATH, routeSet, svc } from '../../bench/route-set.js';

/**
 * The route index (route-index.ts) must answer exactly what the ordered scan
 * of the sorted entries answers (`RouteTable.matchLinear`, the order rules
 * stated directly). Differential: thousands of random route sets and requests
 * from a seeded PRNG, built from a small vocabulary so that prefixes share
 * stems, regexes and prefixes compete for the same paths, hosts are plain,
 * wildcard and with ports, and every group of the sort is populated.
 */

/** mulberry32: small, seeded, deterministic. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const chance = (p: number) => next() < p;
  return { next, int, pick, chance };
}
type Rng = ReturnType<typeof prng>;

const SEGMENTS = ['a', 'ab', 'abc', 'b', 'users', 'u', 'v1', 'v2', 'x', '42', 'a.b'];
const REGEX_TAILS = ['\\d+', '\\d+$', '[a-z]+', '.*', '(/|$)', '$', '', '(a|b)', 'x?', 's*', '/\\d+', '(?<id>\\d+)$', '\\.b', '{2}'];
const NO_LITERAL_REGEXES = ['(?:/users|/u)/\\d+', '.*', '[/]a', '/a|/b', '(/v\\d)+', '/?a', '\\/(a|ab)/', '/(?:users|a)/\\d+', '/(?<v>v1|v2)/?', '/(a|b\\.)(b|$)', '/a|/ab|x', '(?:/a|/b)?/u', '/(a|b\\d)c', '/(?=a)ab', '/(?!u)[a-z]+', '/(?<=/)u'];
const PLAIN_HOSTS = ['a.test', 'b.test', 'a.test:8080', 'B.Test', 'x.a.test'];
const WILDCARD_HOSTS = ['*.test', '*.a.test', 'a.*', 'a.*:8080', '*.test:8443', 'x.*'];
const METHOD_SETS = [['GET'], ['POST'], ['GET', 'POST'], ['DELETE']];
const REQUEST_METHODS = ['GET', 'GET', 'POST', 'DELETE', 'PUT', 'get'];
const REQUEST_HOSTS = [undefined, '', 'a.test', 'A.Test', 'a.test:8080', 'b.test', 'x.a.test', 'y.x.a.test', 'x.y.test', 'test', 'a.com', 'a.co.uk:8080', 'x.test:8443', 'a.test:9', '[::1]:80', 'c.test', 'x.', '.test', 'a.'];

function literalPath(r: Rng): string {
  const n = 1 + r.int(3);
  let p = '';
  for (let i = 0; i < n; i++) p += `/${r.pick(SEGMENTS)}`;
  if (r.chance(0.15)) p += '/';
  if (r.chance(0.15)) p = p.slice(0, Math.max(1, p.length - 1));
  return p;
}

function routePath(r: Rng): string {
  if (r.chance(0.6)) return literalPath(r);
  if (r.chance(0.15)) return `~${r.pick(NO_LITERAL_REGEXES)}`;
  const base = literalPath(r).replace(/\./g, r.chance(0.5) ? '\\.' : '.');
  return `~${base}${r.pick(REGEX_TAILS)}`;
}

function randomRoute(r: Rng, n: number): Record<string, unknown> {
  const route: Record<string, unknown> = { name: `r${n}`, strip_path: r.chance(0.7) };
  if (r.chance(0.75)) route.paths = Array.from({ length: 1 + (r.chance(0.2) ? 1 + r.int(2) : 0) }, () => routePath(r));
  if (r.chance(0.35)) route.methods = r.pick(METHOD_SETS);
  if (r.chance(0.35)) {
    const hosts = new Set<string>();
    for (let i = 0, k = 1 + (r.chance(0.3) ? 1 : 0); i < k; i++) hosts.add(r.chance(0.55) ? r.pick(PLAIN_HOSTS) : r.pick(WILDCARD_HOSTS));
    route.hosts = [...hosts];
  }
  if (!route.paths && !route.methods && !route.hosts) route.paths = [routePath(r)];
  if (r.chance(0.5)) route.regex_priority = r.pick([-1, 0, 0, 1, 2]);
  return route;
}

function randomConfig(r: Rng): string {
  const routes = 1 + r.int(r.chance(0.2) ? 80 : 25);
  const services = Array.from({ length: 1 + r.int(3) }, (_, i) => ({
    name: `s${i}`,
    url: r.chance(0.5) ? `http://s${i}.internal` : `http://s${i}.internal/base${r.chance(0.5) ? '/' : ''}`,
    enabled: !r.chance(0.1),
    routes: [] as unknown[],
  }));
  const topLevel: unknown[] = [];
  for (let n = 0; n < routes; n++) {
    const route = randomRoute(r, n);
    const s = r.int(services.length);
    if (r.chance(0.7)) services[s].routes.push(route);
    else topLevel.push({ ...route, service: `s${s}` });
  }
  return JSON.stringify({ _format_version: '3.0', services, routes: topLevel });
}

/** Paths drawn from the route set (exact, extended, cut short) and from the vocabulary. */
function randomPath(r: Rng, routePaths: readonly string[]): string {
  const roll = r.next();
  if (roll < 0.5 && routePaths.length) {
    let p = r.pick(routePaths);
    if (p.startsWith('~')) p = p.slice(1).replace(/\\d\+|\\d|\(\?<id>\\d\+\)/g, String(r.int(100))).replace(/[\\$^()[\]?*+|{}]/g, '');
    if (!p.startsWith('/')) p = `/${p}`;
    const how = r.int(4);
    if (how === 1) p += r.pick(['', '/', 'x', `/${r.pick(SEGMENTS)}`, `/${r.int(1000)}`]);
    if (how === 2) p = p.slice(0, Math.max(1, p.length - 1 - r.int(3)));
    return p;
  }
  if (roll < 0.9) return literalPath(r) + (r.chance(0.3) ? `/${r.int(100)}` : '');
  return r.pick(['/', '/users/7', '/u/12', '/v1/v2/v1', '/a.b', '/ab', '/a/b', '/aa', '/s', '/users', '/v3']);
}

function describeMatch(m: RouteMatch | undefined): string {
  return m ? `${m.route.name} → ${m.upstreamPath}` : 'no route';
}

function sameAnswer(t: RouteTable, method: string, host: string | undefined, path: string): RouteMatch | undefined {
  const want = t.matchLinear(method, host, path);
  const got = t.match(method, host, path);
  if (got?.route !== want?.route || got?.upstreamPath !== want?.upstreamPath) {
    assert.fail(`${method} ${host ?? '(no host)'} ${path}: index gave ${describeMatch(got)}, the ordered scan ${describeMatch(want)}`);
  }
  return want;
}

describe('RouteIndex agrees with the ordered scan', () => {
  it('on 3,000 random route sets × 60 requests each (seeded)', () => {
    const r = prng(0x5eed12);
    const seen = { matched: 0, unmatched: 0, regexWins: 0, hostWins: 0, wildcardWins: 0, anyWins: 0 };
    for (let set = 0; set < 3_000; set++) {
      const doc = randomConfig(r);
      const config = parseDeclarativeConfig(doc, `set-${set}.json`, {});
      const t = RouteTable.compile(config);
      const byName = new Map([...config.services.flatMap((s) => s.routes), ...config.routes].map((x) => [x.name!, x]));
      const routePaths = [...byName.values()].flatMap((x) => x.paths ?? []);
      for (let q = 0; q < 60; q++) {
        const method = r.pick(REQUEST_METHODS);
        const host = r.chance(0.5) ? r.pick(REQUEST_HOSTS) : r.pick([...PLAIN_HOSTS, 'q.test', 'a.b.test:8443', 'x.y']);
        const path = randomPath(r, routePaths);
        const m = sameAnswer(t, method, host, path);
        if (!m) {
          seen.unmatched++;
          continue;
        }
        seen.matched++;
        const def = byName.get(m.route.name)!;
        if (def.paths?.every((p) => p.startsWith('~'))) seen.regexWins++;
        if (!def.paths) seen.anyWins++;
        if (def.hosts?.some((h) => !h.includes('*'))) seen.hostWins++;
        if (def.hosts?.every((h) => h.includes('*'))) seen.wildcardWins++;
      }
    }
    // The answers are varied enough for the agreement to mean something.
    for (const [k, v] of Object.entries(seen)) assert.ok(v > 2_000, `only ${v} requests of kind ${k}: ${JSON.stringify(seen)}`);
  });

  it('on the bench table of 10,000 routes', () => {
    const t = RouteTable.compile(parseDeclarativeConfig(JSON.stringify(routeSet('http://upstream.internal')), 'routes-10k.json', {}));
    assert.equal(t.routes.length, 10_000);
    const r = prng(10_000);
    const words = ['users', 'orders', 'items', 'carts', 'reports', 'events', 'teams', 'plans', 'quotes', 'v1', 'nothing'];
    let matched = 0;
    for (let q = 0; q < 1_000; q++) {
      const i = r.int(520);
      const path = r.pick([
        `/${svc(i)}/${r.pick(words)}`,
        `/${svc(i)}/${r.pick(words)}/${r.int(10_000)}`,
        `/${svc(i)}/quotes/${r.pick(['deadbeef', 'DEADBEEF', '0123456789'])}${r.pick(['', '/', '/x'])}`,
        `/${r.pick(['legacy', 'old'])}/${svc(i - (i % 50))}/quotes`,
        `/${r.pick(words)}/${r.int(10)}`,
        '/v1',
        '/',
      ]);
      const host = r.pick([undefined, '127.0.0.1:8000', `t${i}.example.com`, `T${i}.Example.com:8000`, `a.t${i}.example.net`, `t${i}.example.net`, `api${i}.example.org`]);
      if (sameAnswer(t, r.pick(['GET', 'POST', 'HEAD', 'DELETE']), host, path)) matched++;
    }
    assert.ok(matched > 250 && matched < 900, `${matched} of 1,000 requests matched`);
    assert.equal(t.match('GET', '127.0.0.1:8000', ROUTE_SET_PLAIN_PATH)?.route.name, `${svc(250)}-carts`);
  });
});

describe('regexLiteralPrefixes', () => {
  const rows: [string, string[]][] = [
    ['/users/\\d+', ['/users/']],
    ['/status$', ['/status']],
    ['/a\\.b(/|$)', ['/a.b']],
    ['/a\\/b', ['/a/b']],
    ['/ab?', ['/a']],
    ['/ab*', ['/a']],
    ['/ab+', ['/a']],
    ['/ab{2}', ['/a']],
    ['/a.b', ['/a']],
    ['/v\\d/x', ['/v']],
    ['/a|/b', ['/a', '/b']],
    ['/a|/ab', ['/a']],
    ['/a|.*', ['']],
    ['/x/(a|b)', ['/x/a', '/x/b']],
    ['/(?:legacy|old)/svc/\\d+', ['/legacy/svc/', '/old/svc/']],
    ['/(?<v>v1|v2)/users', ['/v1/users', '/v2/users']],
    ['/(a|b\\d)c', ['/ac', '/b']],
    ['/(a|b)?c', ['/']],
    ['/(a|b)+c', ['/']],
    ['/(?=a)a', ['/']],
    ['/(?!a)b', ['/']],
    ['/(?<=\\/)a', ['/']],
    ['/((a|b)(c|d))/e', ['/ac/e', '/ad/e', '/bc/e', '/bd/e']],
    ['/(a|b)(c|d)(e|f)(g|h)(i|j)/x', ['/']],
    ['/x/[|]', ['/x/']],
    ['/x/\\|', ['/x/|']],
    ['(?:/users|/u)/\\d+', ['/users/', '/u/']],
    ['^/a', ['']],
    ['[/]a', ['']],
    ['/a\\bc', ['/a']],
    ['/a\\1', ['/a']],
    ['/a[]|b', ['/a', 'b']],
    ['/a[(]|b', ['/a', 'b']],
    ['/a)', ['/a']],
    ['', ['']],
  ];
  for (const [source, literals] of rows) {
    it(`${source} → ${JSON.stringify(literals)}`, () => assert.deepEqual(regexLiteralPrefixes(source).sort(), [...literals].sort()));
  }

  it('every path a regex matches starts with one of its literal prefixes (random regexes and paths)', () => {
    const r = prng(42);
    let matches = 0;
    for (let i = 0; i < 20_000; i++) {
      const source = routePath(r).replace(/^~/, '');
      const re = new RegExp(`^(?:${source})`);
      const literals = regexLiteralPrefixes(source);
      for (let k = 0; k < 5; k++) {
        const path = randomPath(r, [`~${source}`]);
        if (!re.test(path)) continue;
        matches++;
        assert.ok(literals.some((l) => path.startsWith(l)), `${source} matches ${path} but its literal prefixes are ${JSON.stringify(literals)}`);
      }
    }
    assert.ok(matches > 20_000, `only ${matches} matching pairs`);
  });
});
