import { pino } from 'pino';
import { parseDeclarativeConfig } from '../src/config/config.loader.js';
import { CorsPlugin } from '../src/plugins/cors/cors.plugin.js';
import { PluginChainCompiler } from '../src/plugins/plugin-chain.compiler.js';
import { RateLimitingPlugin } from '../src/plugins/rate-limiting/rate-limiting.plugin.js';
import { RouteTable } from '../src/proxy/route-table.js';
import { median } from './report.js';
import { ROUTE_SET_PLAIN_PATH, routeSet, svc } from './route-set.js';

/**
 * What the 10,000-route table costs outside the request path, and its matcher
 * in isolation (group 12 of the bench; the runner spawns this as its own
 * process and puts the result in the report):
 *
 * - parse: the declarative file (JSON) through the schema, as a reload does;
 * - compile: `RouteTable.compile` + every route's plugin chain attached, what
 *   any one-route change costs since the whole table is rebuilt and swapped;
 * - match: ns per `match()` (the index) and per `matchLinear()` (the ordered
 *   scan, the matcher before the index), for the 10,000-route table and a one-route table.
 *
 *   node dist/bench/route-scale.js [--runs 7]    prints one JSON line
 */

export interface RouteScaleResult {
  routes: number;
  runs: number;
  parseMs: number;
  compileMs: number;
  /** ns per call, the fastest of the runs; `linear` is the ordered scan on the same table. */
  match: { request: string; routes: number; indexNs: number; linearNs: number }[];
}

export function measureRouteScale(runs = 7): RouteScaleResult {
  const text = JSON.stringify(routeSet('http://127.0.0.1:9'));
  const plugins = new PluginChainCompiler([new CorsPlugin(), new RateLimitingPlugin(pino({ level: 'silent' }))]);
  const parse: number[] = [];
  const compile: number[] = [];
  let table: RouteTable | undefined;
  for (let i = 0; i < runs; i++) {
    let t0 = performance.now();
    const config = parseDeclarativeConfig(text, 'routes-10k.json', {});
    parse.push(performance.now() - t0);
    t0 = performance.now();
    table = RouteTable.compile(config);
    for (const route of table.routes) plugins.attach(route);
    compile.push(performance.now() - t0);
  }
  const one = RouteTable.compile(
    parseDeclarativeConfig(JSON.stringify({ _format_version: '3.0', services: [{ name: 'bench', url: 'http://127.0.0.1:9', routes: [{ name: 'plain', paths: ['/'], strip_path: false }] }] }), 'one.json', {}),
  );
  const requests: [label: string, t: RouteTable, method: string, host: string, path: string][] = [
    ['one route, GET /', one, 'GET', '127.0.0.1:8000', '/'],
    ['10k, plain prefix route (#13-routes-10k)', table!, 'GET', '127.0.0.1:8000', ROUTE_SET_PLAIN_PATH],
    ['10k, regex route', table!, 'GET', '127.0.0.1:8000', `/${svc(250)}/jobs/1234`],
    ['10k, plain host + path', table!, 'GET', 't250.example.com', '/reports/x'],
    ['10k, wildcard host + path', table!, 'GET', 'a.t250.example.net:8000', '/events/7'],
    ['10k, no route (404)', table!, 'GET', '127.0.0.1:8000', '/nothing/here'],
  ];
  const match = requests.map(([request, t, method, host, path]) => {
    const want = t.matchLinear(method, host, path)?.route;
    if (t.match(method, host, path)?.route !== want) throw new Error(`${request}: the index and the scan disagree`);
    return {
      request,
      routes: t.routes.length,
      indexNs: nsPerCall(() => t.match(method, host, path), runs),
      linearNs: nsPerCall(() => t.matchLinear(method, host, path), runs),
    };
  });
  return { routes: table!.routes.length, runs, parseMs: median(parse)!, compileMs: median(compile)!, match };
}

let sink: unknown;
function nsPerCall(fn: () => unknown, runs: number): number {
  // Calibrate to ≈ 20 ms per run, then take the fastest run: on a shared machine the others carry preemptions
  // (single linear scans of 0.4 ms measured 11–84 ms when the scheduler took the core away).
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = fn();
    if (performance.now() - t0 > 20) break;
    n *= 2;
  }
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = fn();
    samples.push(((performance.now() - t0) * 1e6) / n);
  }
  return Math.min(...samples);
}

if (process.argv[1]?.endsWith('route-scale.js')) {
  const i = process.argv.indexOf('--runs');
  const result = measureRouteScale(i >= 0 ? Number(process.argv[i + 1]) : 7);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  void sink;
}
