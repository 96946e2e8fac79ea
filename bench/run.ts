import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus as osCpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { BENCH_SCOPE, signMany, startFakeIssuer, type FakeIssuer } from './issuer.js';
import type { LoadResult, LoadSpec } from './load-spec.js';
import { nginxVersion, startNginx } from './nginx.js';
import { cpuSeconds, peakRssMiB, resetPeakRss, rssMiB } from './procstat.js';
import { freePort, startProcess, type Proc } from './processes.js';
import { processTree } from './procstat.js';
import { summarizeProfile } from './profile-summary.js';
import { median, runOrder, writeReport, type BenchReport, type CaseResult, type Sample, type StreamResult } from './report.js';
import { ROUTE_SET_PLAIN_PATH, routeSet } from './route-set.js';
import type { RouteScaleResult } from './route-scale.js';
import { startSessionLogin, type SessionLogin } from './session.js';
import { runWrk, wrkVersion } from './wrk.js';
import { mallocTunables, NODE_FLAGS } from '../src/runtime/node-flags.js';

/**
 * The benchmark suite. Starts everything itself on 127.0.0.1:
 * upstreams, the bare undici proxy, nginx (when installed), several Gatehouse
 * processes and a fake issuer; then runs every case once per round,
 * interleaved (A B C … A B C …), and reports medians.
 *
 *   node dist/bench/run.js [--quick] [--install] [--rounds N] [--duration S] [--warmup S]
 *                          [--only 4,5-rs256] [--cpu-prof] [--json FILE] [--loadgen wrk|node]
 *                          [--compare OTHER_DIST] [--compare-node NODE_BINARY]
 *
 * Pinning (taskset): the proxy under test on CPU 0; the load generator and the
 * upstream on CPU 1. Case 9 is unpinned on purpose (workers need both cores).
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'dist/src/main.js');
const BENCH_DIST = join(ROOT, 'dist/bench');
const RESULTS = join(ROOT, 'bench/results');
const PROXY_CPU = '0';
const LOAD_CPU = '1';
const SMALL_CONNECTIONS = 50;
const LARGE_CONNECTIONS = 16;
const MiB = 1024 * 1024;

interface Options {
  quick: boolean;
  install: boolean;
  rounds: number;
  durationS: number;
  warmupS: number;
  only?: string[];
  cpuProf: boolean;
  /** Another build's dist/ directory: its Gatehouse runs every pinned Gatehouse case too (A/B in one run). */
  compare?: string;
  /** Another Node.js binary: the bare proxy and every pinned Gatehouse case run on it too (runtimes A/B in one run). */
  compareNode?: string;
  json?: string;
  streamBytes: number;
  cycleTokens: number;
  /** Force a load generator (default: wrk when installed, else the built-in one). */
  loadgen?: 'wrk' | 'node';
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const value = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const durationS = Number(value('--duration') ?? (quick ? 1 : 4));
  const rounds = Number(value('--rounds') ?? (quick ? 1 : 5));
  // Every process idles for minutes between its rounds; a Node process coming back from idle runs its
  // first seconds slower (V8 shrank the young generation; see bench/README.md "After idling"),
  // which is not the steady state a case measures.
  const warmupS = Number(value('--warmup') ?? (quick ? 0 : 2));
  if (!Number.isInteger(warmupS) || warmupS < 0) throw new Error('--warmup must be a whole number of seconds ≥ 0');
  if (!Number.isInteger(durationS) || durationS < 1) throw new Error('--duration must be a whole number of seconds ≥ 1');
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be ≥ 1');
  return {
    quick,
    install: argv.includes('--install'),
    rounds,
    durationS,
    warmupS,
    only: value('--only')?.split(','),
    cpuProf: argv.includes('--cpu-prof'),
    json: value('--json'),
    streamBytes: quick ? 64 * MiB : 1024 * MiB,
    // More distinct tokens than the gateway's verified-token cache holds (50,000, FIFO): a cycle never hits it.
    cycleTokens: quick ? 2_000 : 60_000,
    loadgen: value('--loadgen') as Options['loadgen'],
    compare: value('--compare'),
    compareNode: value('--compare-node'),
  };
}

/** A process the cases send load to. */
interface Target {
  key: string;
  url: string;
  proc: Proc;
}

interface CaseDef {
  id: string;
  /** For the chart. */
  short: string;
  group: number;
  title: string;
  target: string;
  path: string;
  method?: 'GET' | 'POST';
  bodyBytes?: number;
  headers?: () => Record<string, string>;
  tokensFile?: () => string;
  connections: number;
  /** Case 9: no pinning, wrk with 2 threads. */
  unpinned?: boolean;
  gatehouse: boolean;
}

function log(msg: string) {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const revision = gatehouseRevision();
  const notes: string[] = [];

  if (opts.install) {
    log('installing wrk and nginx-light (scripts/install-test-deps.sh)');
    const r = spawnSync('bash', [join(ROOT, 'scripts/install-test-deps.sh')], { env: { ...process.env, GATEHOUSE_BENCH_DEPS: '1' }, stdio: 'inherit' });
    if (r.status !== 0) notes.push('`--install` failed: see the output above; continuing with what is installed.');
  }
  const wrk = opts.loadgen === 'node' ? undefined : wrkVersion();
  if (opts.loadgen === 'wrk' && !wrk) throw new Error('--loadgen wrk: wrk is not installed (use --install)');
  const nginx = nginxVersion();
  const cores = availableParallelism();
  const pin = cores >= 2;
  if (!pin) notes.push(`Only ${cores} core: nothing is pinned and the load generator competes with the proxy.`);
  if (!wrk) {
    notes.push(
      opts.loadgen === 'node'
        ? 'The built-in Node load generator (bench/load.ts) was chosen with `--loadgen node`; its figures are not comparable with wrk runs.'
        : opts.quick
        ? 'wrk is not installed: the built-in Node load generator (bench/load.ts) drove the load (quick mode checks errors only).'
        : 'wrk is not installed: the built-in Node load generator drove the load. It costs far more CPU per request than wrk, so these figures are NOT comparable with wrk runs; run with `--install`.',
    );
  }
  if (!nginx) notes.push('nginx is not installed: the nginx cases were skipped (`--install` installs nginx-light from Debian).');

  const compareNodeVersion = opts.compareNode ? spawnSync(opts.compareNode, ['--version'], { encoding: 'utf8' }).stdout.trim() : undefined;
  if (opts.compareNode && !compareNodeVersion) throw new Error(`--compare-node: ${opts.compareNode} does not run`);
  const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  // The proxies' logs go to a tmpfs when there is one: every default case writes ≈ 5 MB/s of access log, and on a
  // disk the kernel's writeback of it ran in the following cases, whose p99 it inflated (bench/README.md).
  const logDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/gatehouse-bench-logs-') : tmp;
  const procs: Proc[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await Promise.allSettled(procs.map((p) => p.stop()));
    for (const c of cleanups) await c().catch(() => {});
    if (!opts.cpuProf) rmSync(tmp, { recursive: true, force: true });
    if (logDir !== tmp) rmSync(logDir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping everything`);
      void cleanup().then(() => process.exit(130));
    });
  }

  const targets = new Map<string, Target>();
  const unavailable = new Map<string, string>();
  const failedTargets = new Map<string, string>();

  /** The Node.js a target runs on: `--compare-node` for the `@base` twins, else this one. */
  const nodeFor = (key: string) => (opts.compareNode && key.endsWith('@base') ? opts.compareNode : process.execPath);
  const nodeJson = async (name: string, script: string, args: string[], cpus?: string): Promise<Target> => {
    // The bare proxy runs with the gateway's launcher tuning (V8 flags, malloc): the floor is the same runtime, tuned the same way.
    const tuned = name === 'bare' || name === 'bare@base';
    const nodeArgs = tuned ? [...NODE_FLAGS, ...(opts.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(tmp, 'profiles', name)] : [])] : [];
    const { proc, line } = await startProcess(name, nodeFor(name), [...nodeArgs, join(BENCH_DIST, script), ...args], {
      cpus: pin ? cpus : undefined,
      env: tuned ? { ...process.env, GLIBC_TUNABLES: mallocTunables() } : undefined,
      ready: (l) => l.startsWith('{"port"'),
      onSpawn: (p) => procs.push(p),
    });
    return { key: name, url: `http://127.0.0.1:${JSON.parse(line).port}`, proc };
  };

  /**
   * Gatehouse on pre-chosen free ports. At GATEHOUSE_LOG_LEVEL=warn the
   * "gatehouse started" line (info) is not written, so readiness is the status
   * listener's /health/live answering 200.
   */
  const startGatehouse = async (key: string, config: object, env: Record<string, string>, cpus?: string, port?: number, main = MAIN): Promise<Target> => {
    const file = join(tmp, `${key}.yaml`);
    writeFileSync(file, stringify(config));
    // Started the way `npm start` and the Dockerfile start it (src/runtime/node-flags.ts).
    const nodeArgs = [...NODE_FLAGS, ...(opts.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(tmp, 'profiles', key)] : [])];
    const [proxyPort, statusPort] = [port ?? (await freePort()), await freePort()];
    const { proc } = await startProcess(key, nodeFor(key), [...nodeArgs, main, '--config', file], {
      cpus: pin ? cpus : undefined,
      env: {
        ...process.env,
        GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
        GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${statusPort}`,
        // The default log level (info: access log on), unless a case says otherwise: headline rows describe what users run.
        // No load balancer to wait for: stop at once.
        GATEHOUSE_SHUTDOWN_DELAY: '0',
        GLIBC_TUNABLES: mallocTunables(),
        ...env,
      },
      logFile: join(logDir, `${key}.log`),
      onSpawn: (p) => procs.push(p),
    });
    await waitForHealth(proc, `http://127.0.0.1:${statusPort}/health/live`, Number(env.GATEHOUSE_WORKERS ?? 1));
    return { key, url: `http://127.0.0.1:${proxyPort}`, proc };
  };

  /** Per target, when load ran (ms since it was spawned): the profile summary keeps only these samples. */
  const loadWindows = new Map<string, [number, number][]>();
  let issuer: FakeIssuer | undefined;
  let session: SessionLogin | undefined;
  let report: BenchReport | undefined;
  try {
    // --- the upstreams and the reference proxies -------------------------------------------
    const upstream = await nodeJson('upstream', 'upstream.js', [], LOAD_CPU);
    targets.set('direct', await nodeJson('direct', 'upstream.js', [], PROXY_CPU));
    targets.set('bare', await nodeJson('bare', 'bare-proxy.js', [upstream.url], PROXY_CPU));
    if (opts.compareNode) targets.set('bare@base', await nodeJson('bare@base', 'bare-proxy.js', [upstream.url], PROXY_CPU));
    const upstreamPort = new URL(upstream.url).port;
    for (const [key, workers, cpus] of [
      ['nginx', 1, PROXY_CPU],
      ['nginx-unpinned', 1, undefined],
      ['nginx-2w', 2, undefined],
    ] as const) {
      if (!nginx) {
        unavailable.set(key, 'nginx is not installed');
        continue;
      }
      try {
        const n = await startNginx(key, tmp, Number(upstreamPort), workers, pin ? cpus : undefined, (p) => procs.push(p));
        targets.set(key, { key, url: n.url, proc: n.proc });
      } catch (err) {
        failedTargets.set(key, (err as Error).message);
      }
    }

    // --- the fake issuer and its tokens ---------------------------------------------------------
    issuer = await startFakeIssuer();
    const rsToken = await issuer.sign('RS256', 'bench-repeated-rs256');
    const esToken = await issuer.sign('ES256', 'bench-repeated-es256');
    const needsCycle = !opts.only || opts.only.some((id) => ['6', '2', '2-cycle'].includes(id));
    const cycleFile = join(tmp, 'tokens-rs256.txt');
    if (needsCycle) {
      const t0 = performance.now();
      const tokens = await signMany(issuer, 'RS256', opts.cycleTokens);
      writeFileSync(cycleFile, `${tokens.join('\n')}\n`);
      log(`signed ${tokens.length} distinct RS256 tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }

    // --- Gatehouse processes ---------------------------------------------------------------------
    const plainRoute = { name: 'plain', paths: ['/'], strip_path: false };
    const service = (routes: object[]) => ({ _format_version: '3.0', services: [{ name: 'bench', url: upstream.url, routes }] });
    const jwtRoute = {
      name: 'jwt',
      paths: ['/jwt'],
      strip_path: false,
      plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], scopes_required: [BENCH_SCOPE] } }],
    };
    // The same bearer route behind cors (an allowed Origin on every request): what the plugin costs.
    const corsJwtRoute = { ...jwtRoute, name: 'cors-jwt', paths: ['/cors-jwt'], plugins: [{ name: 'cors', config: { origins: ['https://app.example.com'], credentials: true } }, ...jwtRoute.plugins] };
    // proxy-cache (memory) with cache_control on: a plain GET is answered from the cache (11-cache-hit);
    // `Cache-Control: no-cache` makes every request a full miss that fetches, collects and stores again (11-cache-miss).
    const cacheRoute = { name: 'cache', paths: ['/cache'], strip_path: false, plugins: [{ name: 'proxy-cache', config: { strategy: 'memory', cache_control: true } }] };
    // Rate limiting on the bearer route, a limit never reached: every request is counted and passes (cases 10-*).
    let redisPort: number | undefined;
    const startBenchRedis = async (): Promise<number> => {
      if (redisPort) return redisPort;
      const port = await freePort();
      await startProcess('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        cpus: pin ? LOAD_CPU : undefined,
        ready: (l) => /Ready to accept connections/.test(l),
        onSpawn: (p) => procs.push(p),
      });
      return (redisPort = port);
    };
    const rateLimitedJwtRoute = (config: Record<string, unknown>) => ({
      ...jwtRoute,
      plugins: [...jwtRoute.plugins, { name: 'rate-limiting', config: { minute: 1_000_000_000, ...config } }],
    });
    // prometheus with every per-request metric group on, global (cases 12-*): what recording metrics costs per request.
    const prometheusEverything = { name: 'prometheus', config: { status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true } };
    const withPrometheus = (routes: object[]) => ({ ...service(routes), plugins: [prometheusEverything] });
    type GatewayStart = (main?: string, key?: string) => Promise<Target>;
    const gatewayDefs: [string, GatewayStart][] = [
      ['gw', (main, key = 'gw') => startGatehouse(key, service([plainRoute]), {}, PROXY_CPU, undefined, main)],
      ['gw-warn', (main, key = 'gw-warn') => startGatehouse(key, service([plainRoute]), { GATEHOUSE_LOG_LEVEL: 'warn' }, PROXY_CPU, undefined, main)],
      [
        'gw-otel',
        (main, key = 'gw-otel') =>
          // Every request recorded and exported (default sampler); the upstream (CPU 1) takes the OTLP POSTs and discards them.
          startGatehouse(key, service([plainRoute]), { OTEL_EXPORTER_OTLP_ENDPOINT: upstream.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }, PROXY_CPU, undefined, main),
      ],
      ['gw-jwt', (main, key = 'gw-jwt') => startGatehouse(key, service([plainRoute, jwtRoute, corsJwtRoute]), {}, PROXY_CPU, undefined, main)],
      ['gw-jwt-cycle', (main, key = 'gw-jwt-cycle') => startGatehouse(key, service([plainRoute, jwtRoute]), {}, PROXY_CPU, undefined, main)],
      ['gw-cache', (main, key = 'gw-cache') => startGatehouse(key, service([plainRoute, cacheRoute]), {}, PROXY_CPU, undefined, main)],
      ['gw-rl-local', (main, key = 'gw-rl-local') => startGatehouse(key, service([plainRoute, rateLimitedJwtRoute({ policy: 'local' })]), {}, PROXY_CPU, undefined, main)],
      [
        'gw-rl-redis',
        async (main, key = 'gw-rl-redis') =>
          startGatehouse(key, service([plainRoute, rateLimitedJwtRoute({ policy: 'redis', redis: { host: '127.0.0.1', port: await startBenchRedis() } })]), {}, PROXY_CPU, undefined, main),
      ],
      ['gw-prom', (main, key = 'gw-prom') => startGatehouse(key, withPrometheus([plainRoute, jwtRoute]), {}, PROXY_CPU, undefined, main)],
      ['gw-unpinned', (main, key = 'gw-unpinned') => startGatehouse(key, service([plainRoute]), {}, undefined, undefined, main)],
      ['gw-2w', (main, key = 'gw-2w') => startGatehouse(key, service([plainRoute]), { GATEHOUSE_WORKERS: '2' }, undefined, undefined, main)],
      // Group 12: the same plain request shape as case 4, routed through a table of 10,000 routes.
      ['gw-10k', (main, key = 'gw-10k') => startGatehouse(key, routeSet(upstream.url), {}, PROXY_CPU, undefined, main)],
    ];

    let cases = caseList({ rsToken, esToken, cycleFile, session: () => session });
    if (opts.compare || opts.compareNode) {
      // A/B: every pinned Gatehouse case once more against another build or on another Node.js, interleaved in the same rounds.
      const otherMain = opts.compare ? join(resolve(opts.compare), 'src/main.js') : MAIN;
      if (!existsSync(otherMain)) throw new Error(`--compare: ${otherMain} does not exist (give a copy of another build's dist/)`);
      for (const [key, start] of [...gatewayDefs]) {
        gatewayDefs.push([`${key}@base`, () => start(otherMain, `${key}@base`)]);
      }
      const label = opts.compareNode ? `Node ${compareNodeVersion}` : '--compare build';
      // On another runtime the bare proxy (the floor) runs there too.
      const twinned = (c: (typeof cases)[number]) => (c.gatehouse && !c.unpinned && c.target !== 'gw-session') || (opts.compareNode !== undefined && c.target === 'bare');
      cases = cases.flatMap((c) => (twinned(c) ? [c, { ...c, id: `${c.id}@base`, title: `${c.title} [${label}]`, target: `${c.target}@base` }] : [c]));
    }
    const selected = opts.only ? cases.filter((c) => opts.only!.includes(c.id.replace(/@base$/, '')) || opts.only!.includes(String(c.group))) : cases;
    const wanted = new Set(selected.map((c) => c.target));
    await Promise.all(
      gatewayDefs
        .filter(([key]) => wanted.has(key))
        .map(async ([key, start]) => {
          try {
            targets.set(key, await start());
          } catch (err) {
            failedTargets.set(key, (err as Error).message.split('\n').slice(0, 8).join(' | '));
          }
        }),
    );
    if (wanted.has('gw-session')) {
      try {
        session = await startSessionLogin({
          upstreamUrl: upstream.url,
          freePort,
          startGatehouse: (key, config, proxyPort) => startGatehouse(key, config, {}, PROXY_CPU, proxyPort),
        });
        if (session.unavailable) unavailable.set('gw-session', session.unavailable);
        else targets.set('gw-session', session.target);
      } catch (err) {
        failedTargets.set('gw-session', (err as Error).message.split('\n').slice(0, 6).join(' | '));
      }
    }

    // --- group 12: compile time and matcher cost of the 10,000-route table, in a process of its own on the proxy core
    let routeScale: RouteScaleResult | undefined;
    if (selected.some((c) => c.group === 12)) {
      const args = [join(BENCH_DIST, 'route-scale.js'), '--runs', opts.quick ? '3' : '7'];
      const r = spawnSync(pin ? 'taskset' : process.execPath, pin ? ['-c', PROXY_CPU, process.execPath, ...args] : args, { encoding: 'utf8' });
      if (r.status === 0) {
        routeScale = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as RouteScaleResult;
        log(`route scale: ${routeScale.routes} routes, parse ${routeScale.parseMs.toFixed(0)} ms, compile + attach ${routeScale.compileMs.toFixed(0)} ms`);
      } else {
        notes.push(`route-scale.js failed: ${(r.stderr || r.stdout).split('\n').slice(0, 4).join(' ')}`);
      }
    }

    // --- the rounds --------------------------------------------------------------------------------
    // This process (the fake issuer, the demo IdP of case 7, the orchestration) moves to the load
    // generator's core now that setup is done, so that CPU 0 runs only the proxies (the one under test
    // and the idle others): unpinned, its GCs and timers were scheduled on CPU 0 too.
    let runnerPinned = false;
    if (pin) {
      const moved = spawnSync('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
      runnerPinned = moved.status === 0;
      if (!runnerPinned) notes.push(`The runner could not move itself to CPU ${LOAD_CPU} (taskset -a -p failed): it may share CPU ${PROXY_CPU} with the proxy under test.`);
    }
    const results = new Map<string, CaseResult>();
    for (const c of selected) {
      const reason = unavailable.get(c.target);
      const failed = failedTargets.get(c.target);
      results.set(c.id, {
        id: c.id,
        short: c.short,
        group: c.group,
        title: c.title,
        gatehouse: c.gatehouse,
        status: reason ? 'unavailable' : failed ? 'failed' : 'ok',
        reason: reason ?? (failed ? `did not start: ${failed}` : undefined),
        samples: [],
      });
    }
    const tokenOffset = { value: 0 };
    const runnable = runOrder(selected.filter((c) => results.get(c.id)!.status === 'ok'));
    const perRound = runnable.length * (opts.durationS + opts.warmupS);
    log(`${runnable.length} cases × ${opts.rounds} rounds ≈ ${Math.round((perRound * opts.rounds) / 6) / 10} min of load (${wrk ? 'wrk' : 'built-in load generator'})`);

    for (let round = 1; round <= opts.rounds; round++) {
      for (const c of runnable) {
        const result = results.get(c.id)!;
        if (result.status === 'failed') continue;
        const target = targets.get(c.target)!;
        if (target.proc.child.exitCode !== null || target.proc.child.signalCode !== null) {
          result.status = 'failed';
          result.reason = `${target.key} exited (${target.proc.child.exitCode ?? target.proc.child.signalCode})`;
          continue;
        }
        const spec = (durationS: number): LoadSpec => ({
          url: target.url + c.path,
          connections: c.connections,
          durationS,
          method: c.method,
          headers: c.headers?.(),
          bodyBytes: c.bodyBytes,
          tokensFile: c.tokensFile?.(),
          tokenOffset: tokenOffset.value,
          threads: c.unpinned ? 2 : 1,
          strict: opts.quick,
        });
        const problem = await preflight(spec(1));
        if (problem) {
          result.status = 'failed';
          result.reason = problem;
          log(`round ${round} ${c.id}: FAILED ${problem}`);
          continue;
        }
        // Unpinned cases name every core explicitly: a child inherits the runner's own pinning (above).
        const cpus = pin ? (c.unpinned ? `0-${cores - 1}` : LOAD_CPU) : undefined;
        if (opts.warmupS) {
          const w = await load(spec(opts.warmupS), tmp, `${c.id}-warmup`, cpus, !!wrk);
          tokenOffset.value += w.requests;
        }
        const pid = target.proc.pid;
        const windowStart = performance.now() - target.proc.spawnedAt;
        resetPeakRss(pid);
        const cpu0 = cpuSeconds(pid);
        const r = await load({ ...spec(opts.durationS), tokenOffset: tokenOffset.value }, tmp, c.id, cpus, !!wrk);
        const cpu1 = cpuSeconds(pid);
        loadWindows.set(target.key, [...(loadWindows.get(target.key) ?? []), [windowStart, performance.now() - target.proc.spawnedAt]]);
        tokenOffset.value += r.requests;
        const sample: Sample = {
          rps: r.rps,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          cpuUsPerReq: r.requests ? ((cpu1 - cpu0) * 1e6) / r.requests : 0,
          peakRssMiB: peakRssMiB(pid),
          requests: r.requests,
          errors: r.socketErrors + r.badStatus,
          mibPerS: c.bodyBytes || c.path.includes('64k') ? ((c.bodyBytes ?? 64 * 1024) * r.requests) / MiB / r.durationS : undefined,
          round,
        };
        result.samples.push(sample);
        if (sample.errors > 0) {
          result.status = 'errors';
          result.reason = r.firstError;
        } else if (r.requests === 0) {
          result.status = 'errors';
          result.reason = `no request completed within ${opts.durationS} s (the proxy stalled)`;
        }
        log(
          `round ${round} ${c.id.padEnd(14)} ${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ${sample.cpuUsPerReq.toFixed(1)} µs/req  ${sample.peakRssMiB.toFixed(0)} MiB${sample.errors ? `  ERRORS ${sample.errors}: ${r.firstError}` : ''}`,
        );
      }
    }

    // --- 1 GiB through the proxies once, for memory ---------------------------------------------------
    const streams: StreamResult[] = [];
    const streamTargets = selected.some((c) => c.group === 8) ? ['bare', 'nginx', 'gw'] : [];
    for (const key of streamTargets) {
      const t = targets.get(key);
      if (!t) continue;
      for (const direction of ['download', 'upload'] as const) {
        try {
          streams.push(await streamThrough(t, direction, opts.streamBytes));
          const s = streams.at(-1)!;
          log(`stream ${key} ${direction}: ${s.mibPerS.toFixed(0)} MiB/s, RSS ${s.rssBeforeMiB.toFixed(0)} → peak ${s.rssPeakMiB.toFixed(0)} MiB (+${s.rssGrowthMiB.toFixed(1)})`);
        } catch (err) {
          streams.push({ target: key, direction, bytes: opts.streamBytes, error: (err as Error).message, mibPerS: 0, rssBeforeMiB: 0, rssPeakMiB: 0, rssGrowthMiB: 0 });
          log(`stream ${key} ${direction}: FAILED ${(err as Error).message}`);
        }
      }
    }

    for (const r of results.values()) {
      if (r.samples.length) {
        r.median = {
          rps: median(r.samples.map((s) => s.rps))!,
          p50Ms: median(r.samples.map((s) => s.p50Ms))!,
          p99Ms: median(r.samples.map((s) => s.p99Ms))!,
          cpuUsPerReq: median(r.samples.map((s) => s.cpuUsPerReq))!,
          peakRssMiB: Math.max(...r.samples.map((s) => s.peakRssMiB)),
          mibPerS: r.samples[0].mibPerS === undefined ? undefined : median(r.samples.map((s) => s.mibPerS!)),
        };
      }
    }

    report = {
      date: startedAt.toISOString(),
      mode: opts.quick ? 'quick' : 'full',
      rounds: opts.rounds,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
      loadGenerator: wrk ? `${wrk}` : 'built-in (bench/load.ts, undici)',
      compare: opts.compareNode ? `Node ${compareNodeVersion}` : opts.compare ? `the build in ${opts.compare}` : undefined,
      versions: { node: `${process.version} (${NODE_FLAGS.join(' ')}, GLIBC_TUNABLES=${mallocTunables()} for Gatehouse and the bare proxy)`, nginx: nginx ?? 'not installed', wrk: wrk ?? 'not installed', gatehouse: revision },
      machine: { cores, cpu: osCpus()[0]?.model ?? 'unknown', kernel: release() },
      pinning: pin ? `proxy under test on CPU ${PROXY_CPU}; load generator, upstream${runnerPinned ? ' and this runner' : ''} on CPU ${LOAD_CPU}; case 9 unpinned` : 'none',
      connections: { small: SMALL_CONNECTIONS, large: LARGE_CONNECTIONS },
      cycleTokens: opts.cycleTokens,
      notes,
      cases: [...results.values()],
      streams,
      routeScale,
    };
  } finally {
    await cleanup();
    await issuer?.close();
    await session?.close();
  }

  if (opts.cpuProf) {
    const dir = join(tmp, 'profiles');
    if (existsSync(dir)) {
      for (const key of readdirSync(dir)) {
        for (const f of readdirSync(join(dir, key))) {
          const summary = summarizeProfile(join(dir, key, f), 30, loadWindows.get(key));
          process.stdout.write(`\n## CPU profile of ${key} (${f})\n${summary}\n`);
          mkdirSync(RESULTS, { recursive: true });
          writeFileSync(join(RESULTS, `profile-${key}.txt`), summary);
        }
      }
      log(`raw profiles kept in ${dir}`);
    }
  }

  const { markdown, failed } = writeReport(report!, {
    dir: opts.quick || opts.only || opts.cpuProf || opts.compare ? undefined : RESULTS,
    json: opts.json,
  });
  process.stdout.write(markdown);
  if (opts.quick && failed.length) {
    log(`FAILED: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

/** The commit the measured build comes from, marked when the tree has uncommitted changes under src/. */
function gatehouseRevision(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head.status !== 0) return 'unknown';
  const dirty = git(['status', '--porcelain', '--', 'src']).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' + uncommitted changes in src/' : ''}`;
}

/** Polls the status listener until it answers 200 (and, in cluster mode, every worker has been forked). */
async function waitForHealth(proc: Proc, url: string, workers: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${proc.name} exited with ${proc.child.exitCode ?? proc.child.signalCode}:\n${proc.lines.join('\n')}`);
    }
    const ok = await request(url, { headersTimeout: 2_000 }).then(
      async (r) => (await r.body.text(), r.statusCode === 200),
      () => false,
    );
    if (ok && processTree(proc.pid).length > workers - (workers > 1 ? 0 : 1)) break;
    if (Date.now() > deadline) throw new Error(`${proc.name}: ${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Cluster: the first worker answering does not mean the others listen yet; give them the time a start takes.
  if (workers > 1) await new Promise((r) => setTimeout(r, 3_000));
}

function caseList(ctx: { rsToken: string; esToken: string; cycleFile: string; session: () => SessionLogin | undefined }): CaseDef[] {
  const small = SMALL_CONNECTIONS;
  const large = LARGE_CONNECTIONS;
  const bearer = (t: string) => () => ({ authorization: `Bearer ${t}` });
  return [
    { id: '1', short: 'direct upstream', group: 1, title: 'direct to the upstream (ceiling)', target: 'direct', path: '/', connections: small, gatehouse: false },
    { id: '2', short: 'bare undici proxy', group: 2, title: 'bare Node proxy (node:http + undici Pool.stream)', target: 'bare', path: '/', connections: small, gatehouse: false },
    // The bare proxy fed exactly the requests of cases 5 and 6: a Bearer token is several hundred bytes that
    // every proxy parses, validates and forwards, so those cases are compared with these.
    { id: '2-rs256', short: 'bare, RS256 Bearer', group: 2, title: 'bare Node proxy, the requests of #5-rs256 (same Bearer token forwarded)', target: 'bare', path: '/jwt', headers: bearer(ctx.rsToken), connections: small, gatehouse: false },
    { id: '2-es256', short: 'bare, ES256 Bearer', group: 2, title: 'bare Node proxy, the requests of #5-es256 (same Bearer token forwarded)', target: 'bare', path: '/jwt', headers: bearer(ctx.esToken), connections: small, gatehouse: false },
    { id: '2-cycle', short: 'bare, new Bearer each', group: 2, title: 'bare Node proxy, the requests of #6 (a new Bearer token each)', target: 'bare', path: '/jwt', tokensFile: () => ctx.cycleFile, connections: small, gatehouse: false },
    { id: '3', short: 'nginx 1 worker', group: 3, title: 'nginx, 1 worker, upstream keepalive', target: 'nginx', path: '/', connections: small, gatehouse: false },
    { id: '4', short: 'Gatehouse, no plugin', group: 4, title: 'Gatehouse, route without plugin (default settings)', target: 'gw', path: '/', connections: small, gatehouse: true },
    { id: '4-warn', short: 'Gatehouse, access log off', group: 4, title: 'Gatehouse, no plugin, GATEHOUSE_LOG_LEVEL=warn (no access log: the floor)', target: 'gw-warn', path: '/', connections: small, gatehouse: true },
    { id: '4-otel', short: 'Gatehouse, OTLP tracing', group: 4, title: 'Gatehouse, no plugin, OpenTelemetry spans exported over OTLP/HTTP', target: 'gw-otel', path: '/', connections: small, gatehouse: true },
    { id: '5-rs256', short: 'bearer RS256, same token', group: 5, title: 'Gatehouse, bearer RS256 + scopes_required, same token', target: 'gw-jwt', path: '/jwt', headers: bearer(ctx.rsToken), connections: small, gatehouse: true },
    { id: '5-es256', short: 'bearer ES256, same token', group: 5, title: 'Gatehouse, bearer ES256 + scopes_required, same token', target: 'gw-jwt', path: '/jwt', headers: bearer(ctx.esToken), connections: small, gatehouse: true },
    { id: '5-cors', short: 'cors + bearer RS256', group: 5, title: 'Gatehouse, cors (allowed Origin, credentials) + bearer RS256 + scopes_required, same token', target: 'gw-jwt', path: '/cors-jwt', headers: () => ({ ...bearer(ctx.rsToken)(), origin: 'https://app.example.com' }), connections: small, gatehouse: true },
    { id: '6', short: 'bearer RS256, new token', group: 6, title: 'Gatehouse, bearer RS256, new token every request', target: 'gw-jwt-cycle', path: '/jwt', tokensFile: () => ctx.cycleFile, connections: small, gatehouse: true },
    { id: '10-rl-local', short: 'bearer + rate-limiting local', group: 10, title: 'as #5-rs256 plus rate-limiting (policy local, limit_by consumer)', target: 'gw-rl-local', path: '/jwt', headers: bearer(ctx.rsToken), connections: small, gatehouse: true },
    { id: '10-rl-redis', short: 'bearer + rate-limiting redis', group: 10, title: 'as #5-rs256 plus rate-limiting (policy redis, limit_by consumer)', target: 'gw-rl-redis', path: '/jwt', headers: bearer(ctx.rsToken), connections: small, gatehouse: true },
    { id: '12-prom', short: 'no plugin + prometheus', group: 12, title: 'as #4 plus prometheus (global; status code, latency and bandwidth metrics)', target: 'gw-prom', path: '/', connections: small, gatehouse: true },
    { id: '12-prom-jwt', short: 'bearer + prometheus', group: 12, title: 'as #5-rs256 plus prometheus (global; status code, latency and bandwidth metrics)', target: 'gw-prom', path: '/jwt', headers: bearer(ctx.rsToken), connections: small, gatehouse: true },
    { id: '7', short: 'session cookie', group: 7, title: 'Gatehouse, session cookie from a real login', target: 'gw-session', path: '/app/', headers: () => ctx.session()!.headers, connections: small, gatehouse: true },
    { id: '8-64k-bare', short: '64 KiB, bare', group: 8, title: '64 KiB responses, bare Node proxy', target: 'bare', path: '/64k', connections: large, gatehouse: false },
    { id: '8-64k-nginx', short: '64 KiB, nginx', group: 8, title: '64 KiB responses, nginx', target: 'nginx', path: '/64k', connections: large, gatehouse: false },
    { id: '8-64k-gw', short: '64 KiB, Gatehouse', group: 8, title: '64 KiB responses, Gatehouse', target: 'gw', path: '/64k', connections: large, gatehouse: true },
    { id: '8-up-bare', short: '1 MiB upload, bare', group: 8, title: '1 MiB uploads, bare Node proxy', target: 'bare', path: '/upload', method: 'POST', bodyBytes: MiB, connections: large, gatehouse: false },
    { id: '8-up-nginx', short: '1 MiB upload, nginx', group: 8, title: '1 MiB uploads, nginx', target: 'nginx', path: '/upload', method: 'POST', bodyBytes: MiB, connections: large, gatehouse: false },
    { id: '8-up-gw', short: '1 MiB upload, Gatehouse', group: 8, title: '1 MiB uploads, Gatehouse', target: 'gw', path: '/upload', method: 'POST', bodyBytes: MiB, connections: large, gatehouse: true },
    { id: '11-cache-hit', short: 'proxy-cache hit', group: 11, title: 'Gatehouse, proxy-cache (memory), the same GET: every request a Hit', target: 'gw-cache', path: '/cache', connections: small, gatehouse: true },
    { id: '11-cache-miss', short: 'proxy-cache miss', group: 11, title: 'Gatehouse, proxy-cache (memory), Cache-Control: no-cache: every request fetched and stored', target: 'gw-cache', path: '/cache', headers: () => ({ 'cache-control': 'no-cache' }), connections: small, gatehouse: true },
    { id: '13-routes-10k', short: '10,000 routes, plain route', group: 13, title: 'Gatehouse, 10,000 routes (prefix, regex, host, method mixes), request to a plain prefix route', target: 'gw-10k', path: ROUTE_SET_PLAIN_PATH, connections: small, gatehouse: true },
    { id: '9-gw-1w', short: 'unpinned Gatehouse 1 worker', group: 9, title: 'unpinned: Gatehouse, 1 worker', target: 'gw-unpinned', path: '/', connections: small, unpinned: true, gatehouse: true },
    { id: '9-gw-2w', short: 'unpinned Gatehouse 2 workers', group: 9, title: 'unpinned: Gatehouse, GATEHOUSE_WORKERS=2', target: 'gw-2w', path: '/', connections: small, unpinned: true, gatehouse: true },
    { id: '9-nginx-1w', short: 'unpinned nginx 1 worker', group: 9, title: 'unpinned: nginx, 1 worker', target: 'nginx-unpinned', path: '/', connections: small, unpinned: true, gatehouse: false },
    { id: '9-nginx-2w', short: 'unpinned nginx 2 workers', group: 9, title: 'unpinned: nginx, 2 workers', target: 'nginx-2w', path: '/', connections: small, unpinned: true, gatehouse: false },
  ];
}

/** One request exactly like the case's load; returns what is wrong, or undefined when it answered 2xx. */
async function preflight(spec: LoadSpec): Promise<string | undefined> {
  const headers: Record<string, string> = { ...spec.headers };
  if (spec.tokensFile) {
    const { readFileSync } = await import('node:fs');
    headers.authorization = `Bearer ${readFileSync(spec.tokensFile, 'utf8').split('\n')[0]}`;
  }
  try {
    const res = await request(spec.url, {
      method: spec.method ?? 'GET',
      headers,
      body: spec.bodyBytes ? Buffer.alloc(spec.bodyBytes, 'u') : undefined,
      headersTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode > 299) return `HTTP ${res.statusCode} ${text.slice(0, 200)}`;
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

async function load(spec: LoadSpec, tmp: string, name: string, cpus: string | undefined, useWrk: boolean): Promise<LoadResult> {
  if (useWrk) return runWrk(spec, tmp, name, cpus);
  const args = [join(BENCH_DIST, 'load.js'), JSON.stringify(spec)];
  const [cmd, argv] = cpus ? ['taskset', ['-c', cpus, process.execPath, ...args]] : [process.execPath, args];
  return new Promise((resolveLoad, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (!line) return reject(new Error(`load generator exited with ${code}`));
      resolveLoad(JSON.parse(line.slice('BENCH_JSON '.length)) as LoadResult);
    });
  });
}

/** Streams `bytes` through the proxy once (download or upload), sampling its RSS every 20 ms. */
async function streamThrough(target: Target, direction: 'download' | 'upload', bytes: number): Promise<StreamResult> {
  const pid = target.proc.pid;
  // Let garbage from the previous case settle before taking the baseline.
  await new Promise((r) => setTimeout(r, 500));
  const before = rssMiB(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 20);
  const t0 = performance.now();
  try {
    if (direction === 'download') {
      const res = await request(`${target.url}/stream?bytes=${bytes}`, { headersTimeout: 30_000, bodyTimeout: 30_000 });
      let got = 0;
      for await (const chunk of res.body) got += (chunk as Buffer).length;
      if (res.statusCode !== 200 || got !== bytes) throw new Error(`HTTP ${res.statusCode}, ${got} of ${bytes} bytes`);
    } else {
      const chunk = Buffer.alloc(64 * 1024, 'u');
      async function* body() {
        for (let sent = 0; sent < bytes; sent += chunk.length) yield chunk;
      }
      const res = await request(`${target.url}/upload`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
        body: Readable.from(body()),
        headersTimeout: 60_000,
      });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    }
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - t0) / 1000;
  peak = Math.max(peak, rssMiB(pid));
  return { target: target.key, direction, bytes, mibPerS: bytes / MiB / seconds, rssBeforeMiB: before, rssPeakMiB: peak, rssGrowthMiB: peak - before };
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
