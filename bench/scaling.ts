import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Pool, request } from 'undici';
import { stringify } from 'yaml';
import { BENCH_SCOPE, signMany, startFakeIssuer } from './issuer.js';
import { cpuSeconds, peakRssMiB, rssMiB } from './procstat.js';
import { freePort, startProcess, type Proc } from './processes.js';
import { scriptedLogin } from './session.js';
import { mallocTunables, NODE_FLAGS } from '../src/runtime/node-flags.js';
import { startDemoIdp, DEMO_PASSWORD } from '../src/demo/idp/index.js';

/**
 * What one gateway instance costs per request, and whether that stays flat
 * when the same load is spread over three instances sharing one Redis and one
 * PostgreSQL (docs/scaling.md). For each kind of route it sends a fixed number
 * of requests, once all to instance A and once round-robin over A, B and C,
 * and reports per request:
 *
 * - gateway CPU: utime + stime from /proc of every gateway process (summed),
 *   delta over the measured requests;
 * - Redis commands: `INFO commandstats` calls delta (the INFO calls themselves
 *   left out), and Redis's own CPU (`INFO cpu`);
 * - PostgreSQL round trips: messages the gateways sent to PostgreSQL, counted
 *   by a TCP relay between them and the server (the configuration store's
 *   LISTEN connection and queries all pass it).
 *
 * Throughput is not measured: the machine is shared and has two cores, the
 * load generator runs on them too. CPU time per request does not depend on
 * how busy the machine is (to within a few %), which is why it is the figure.
 *
 *   node dist/bench/scaling.js [--requests 10000] [--concurrency 8 (per instance)] [--rounds 2] [--out bench/results/scaling.md]
 *
 * Needs redis-server and PostgreSQL on 127.0.0.1:5432 (trust auth for user
 * postgres), as the tests (scripts/install-test-deps.sh).
 */

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../src/main.js');
const PG = { host: process.env.GATEHOUSE_TEST_PG_HOST ?? '127.0.0.1', port: Number(process.env.GATEHOUSE_TEST_PG_PORT ?? 5432), user: process.env.GATEHOUSE_TEST_PG_USER ?? 'postgres' };
const INSTANCES = ['A', 'B', 'C'] as const;

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '10000' },
    warmup: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    out: { type: 'string' },
    only: { type: 'string' },
  },
});
const REQUESTS = Number(args.requests);
const WARMUP = Number(args.warmup);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);

interface Gateway {
  name: string;
  url: string;
  proc: Proc;
  pool: Pool;
}

interface Kind {
  id: string;
  title: string;
  path: string;
  /** Headers of the i-th request of the measurement. */
  headers(i: number): Record<string, string>;
}

interface Measure {
  kind: string;
  instances: number;
  cpuUs: number;
  redisOps: number;
  /** Per request, by command name ("evalsha 0.05, incr 1"). */
  redisByName: string;
  redisCpuUs: number;
  pgTrips: number;
  errors: number;
}

/** A TCP relay that counts the chunks (≥ one per query or sync message) clients send to the server. */
async function countingRelay(targetPort: number, targetHost: string): Promise<{ port: number; sent(): number; close(): Promise<void> }> {
  let chunks = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', () => chunks++);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    sent: () => chunks,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * Redis's counters: commands by name (commands a Lua script runs are counted
 * too, under their own names, next to the EVALSHA that ran them) and CPU.
 */
async function redisCounters(redis: Redis): Promise<{ calls: number; byName: Map<string, number>; cpuS: number }> {
  const stats = String(await redis.info('commandstats'));
  let calls = 0;
  const byName = new Map<string, number>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === 'info' || m[1] === 'memory' || m[1] === 'keys') continue;
    calls += Number(m[2]);
    byName.set(m[1], Number(m[2]));
  }
  const cpu = String(await redis.info('cpu'));
  const num = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  return { calls, byName, cpuS: num('used_cpu_user') + num('used_cpu_sys') };
}

/**
 * `count` requests spread evenly over `targets`, CONCURRENCY in flight at each
 * (so every instance sees the same load whatever their number: what a load
 * balancer in front of N replicas does); counts non-2xx and failures.
 */
async function send(targets: Gateway[], kind: Kind, count: number, offset: number): Promise<number> {
  let next = 0;
  let errors = 0;
  const worker = async (w: number) => {
    const gw = targets[w % targets.length];
    for (;;) {
      const i = next++;
      if (i >= count) return;
      try {
        const res = await gw.pool.request({ method: 'GET', path: kind.path, headers: kind.headers(offset + i) });
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode >= 300) errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY * targets.length }, (_, w) => worker(w)));
  return errors;
}

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-scaling-'));
  const procs: Proc[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const dbName = `gatehouse_scaling_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ ...PG, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  try {
    // --- shared services ------------------------------------------------------------------
    const redisPort = await freePort();
    await startProcess('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], {
      ready: (l) => /Ready to accept connections/.test(l),
      onSpawn: (p) => procs.push(p),
    });
    const redis = new Redis({ host: '127.0.0.1', port: redisPort });
    closers.push(async () => redis.disconnect());
    const relay = await countingRelay(PG.port, PG.host);
    closers.push(relay.close);

    const { line } = await startProcess('upstream', process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'upstream.js')], {
      ready: (l) => l.startsWith('{'),
      onSpawn: (p) => procs.push(p),
    });
    const upstreamUrl = `http://127.0.0.1:${JSON.parse(line).port}`;
    const issuer = await startFakeIssuer();
    closers.push(issuer.close);

    const ports = await Promise.all(INSTANCES.map(async () => ({ proxy: await freePort(), status: await freePort() })));
    const baseA = `http://127.0.0.1:${ports[0].proxy}`;
    const clientSecret = randomBytes(24).toString('base64url');
    const idp = await startDemoIdp({ clients: [{ client_id: 'bench', client_secret: clientSecret, redirect_uris: [`${baseA}/app/callback`] }], resource: baseA, accessTokenTtl: 3 * 3600 });
    closers.push(() => idp.stop());

    const bearer = { name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], scopes_required: [BENCH_SCOPE] } };
    const redisConf = { host: '127.0.0.1', port: redisPort };
    const config = {
      _format_version: '3.0',
      services: [
        {
          name: 'bench',
          url: upstreamUrl,
          routes: [
            { name: 'plain', paths: ['/plain'] },
            { name: 'jwt', paths: ['/jwt'], plugins: [bearer] },
            { name: 'limited', paths: ['/limited'], plugins: [bearer, { name: 'rate-limiting', config: { hour: 1_000_000_000, limit_by: 'consumer', policy: 'redis', redis: redisConf } }] },
            { name: 'cached', paths: ['/cached'], plugins: [{ name: 'proxy-cache', config: { strategy: 'redis', cache_ttl: 3600, redis: redisConf } }] },
            {
              name: 'app',
              paths: ['/app'],
              strip_path: false,
              plugins: [
                {
                  name: 'openid-connect',
                  config: {
                    issuer: idp.issuer,
                    client_id: ['bench'],
                    client_secret: [clientSecret],
                    redirect_uri: [`${baseA}/app/callback`],
                    auth_methods: ['authorization_code', 'session'],
                    scopes: ['openid', 'profile'],
                    session_secret: randomBytes(32).toString('base64url'),
                    session_storage: 'redis',
                    session_redis_host: '127.0.0.1',
                    session_redis_port: redisPort,
                    login_action: 'redirect',
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    const configFile = join(tmp, 'kong.yaml');
    writeFileSync(configFile, stringify(config));

    // --- three gateways on one Redis and one PostgreSQL (through the relay) -----------------
    const gateways: Gateway[] = [];
    for (const [k, name] of INSTANCES.entries()) {
      const { proc } = await startProcess(`gw-${name}`, process.execPath, [...NODE_FLAGS, MAIN, ...(k === 0 ? ['--config', configFile] : [])], {
        env: {
          ...process.env,
          GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${ports[k].proxy}`,
          GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${ports[k].status}`,
          GATEHOUSE_ADMIN_LISTEN: 'off',
          GATEHOUSE_DATABASE: 'postgres',
          GATEHOUSE_PG_HOST: '127.0.0.1',
          GATEHOUSE_PG_PORT: String(relay.port),
          GATEHOUSE_PG_USER: PG.user,
          GATEHOUSE_PG_DATABASE: dbName,
          GATEHOUSE_DATA_DIR: tmp,
          GATEHOUSE_SHUTDOWN_DELAY: '0',
          GLIBC_TUNABLES: mallocTunables(),
        },
        logFile: join(tmp, `gw-${name}.log`),
        onSpawn: (p) => procs.push(p),
      });
      const statusUrl = `http://127.0.0.1:${ports[k].status}`;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const ok = await request(`${statusUrl}/health/ready`).then(async (r) => (await r.body.text(), r.statusCode === 200), () => false);
        if (ok) break;
        if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`gateway ${name} did not become ready (log: ${join(tmp, `gw-${name}.log`)})`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const url = `http://127.0.0.1:${ports[k].proxy}`;
      gateways.push({ name, url, proc, pool: new Pool(url, { connections: CONCURRENCY, pipelining: 1 }) });
    }
    closers.push(async () => Promise.all(gateways.map((g) => g.pool.close())));

    // --- credentials --------------------------------------------------------------------
    const sameToken = await issuer.sign('RS256', 'scaling-same');
    const perRun = WARMUP * INSTANCES.length + REQUESTS;
    process.stderr.write(`signing ${perRun * 2 * ROUNDS} RS256 tokens …\n`);
    const fresh = await signMany(issuer, 'RS256', perRun * 2 * ROUNDS);
    let freshNext = 0;
    const cookie = await scriptedLogin(`${baseA}/app/`, 'Blog_with_scope', DEMO_PASSWORD);

    const kinds: Kind[] = [
      { id: 'plain', title: 'plain (no plugin)', path: '/plain', headers: () => ({}) },
      { id: 'bearer-cached', title: 'bearer, token seen before (RS256)', path: '/jwt', headers: () => ({ authorization: `Bearer ${sameToken}` }) },
      { id: 'bearer-new', title: 'bearer, new token every request (RS256)', path: '/jwt', headers: () => ({ authorization: `Bearer ${fresh[freshNext++ % fresh.length]}` }) },
      { id: 'session', title: 'session cookie (session_storage: redis)', path: '/app/', headers: () => ({ cookie }) },
      { id: 'rate-limited', title: 'bearer (seen) + rate-limiting policy redis', path: '/limited', headers: () => ({ authorization: `Bearer ${sameToken}` }) },
      { id: 'cached', title: 'proxy-cache strategy redis, hit', path: '/cached', headers: () => ({}) },
    ].filter((k) => !args.only || args.only.split(',').includes(k.id));

    // --- measurements -------------------------------------------------------------------
    const results: Measure[] = [];
    const pids = () => gateways.map((g) => g.proc.pid);
    const cpuAll = () => pids().reduce((s, p) => s + cpuSeconds(p), 0);
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of kinds) {
        for (const n of [1, 3]) {
          const targets = gateways.slice(0, n);
          // Every instance warms up (JIT, connection pools, caches), whichever are measured: V8's
          // compiler threads are the process's CPU too, and a cold instance would charge them to ×3.
          await send(gateways, kind, WARMUP * gateways.length, 0);
          await new Promise((r) => setTimeout(r, 300));
          const cpu0 = cpuAll();
          const r0 = await redisCounters(redis);
          const pg0 = relay.sent();
          const errors = await send(targets, kind, REQUESTS, WARMUP * gateways.length);
          // Let batched work (rate-limit scripts, background session touches) land before reading.
          await new Promise((r) => setTimeout(r, 300));
          const cpu1 = cpuAll();
          const r1 = await redisCounters(redis);
          const pg1 = relay.sent();
          // The two INFO calls of r0 are counted by neither (cmdstat_info is left out).
          const m: Measure = {
            kind: kind.id,
            instances: n,
            cpuUs: ((cpu1 - cpu0) * 1e6) / REQUESTS,
            redisOps: (r1.calls - r0.calls) / REQUESTS,
            redisByName: [...r1.byName]
              .map(([name, calls]) => [name, (calls - (r0.byName.get(name) ?? 0)) / REQUESTS] as const)
              .filter(([, per]) => per >= 0.005)
              .map(([name, per]) => `${name} ${per.toFixed(2)}`)
              .join(', '),
            redisCpuUs: ((r1.cpuS - r0.cpuS) * 1e6) / REQUESTS,
            pgTrips: (pg1 - pg0) / REQUESTS,
            errors,
          };
          results.push(m);
          process.stderr.write(`round ${round + 1} ${kind.id} ×${n}: ${m.cpuUs.toFixed(1)} µs CPU, ${m.redisOps.toFixed(3)} Redis cmds (${m.redisByName}), ${m.pgTrips.toFixed(4)} PG trips per request, ${errors} errors\n`);
        }
      }
    }

    // --- report -------------------------------------------------------------------------
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
    const pick = (kind: string, n: number, f: 'cpuUs' | 'redisOps' | 'redisCpuUs' | 'pgTrips') => med(results.filter((r) => r.kind === kind && r.instances === n).map((r) => r[f] as number));
    const rows = kinds.map((k) => {
      const c1 = pick(k.id, 1, 'cpuUs');
      const c3 = pick(k.id, 3, 'cpuUs');
      const errors = results.filter((r) => r.kind === k.id).reduce((s, r) => s + r.errors, 0);
      const names = (n: number) => results.filter((r) => r.kind === k.id && r.instances === n).at(-1)?.redisByName || '–';
      const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(0)} %`;
      return `| ${k.title} | ${c1.toFixed(0)} | ${c3.toFixed(0)} | ${signed((c3 / c1 - 1) * 100)} | ${names(1)} | ${names(3)} | ${pick(k.id, 1, 'redisCpuUs').toFixed(1)} | ${pick(k.id, 3, 'redisCpuUs').toFixed(1)} | ${pick(k.id, 1, 'pgTrips').toFixed(4)} | ${pick(k.id, 3, 'pgTrips').toFixed(4)} | ${errors} |`;
    });
    const rss = gateways.map((g) => `${g.name} ${rssMiB(g.proc.pid).toFixed(0)} MiB (peak ${peakRssMiB(g.proc.pid).toFixed(0)})`).join(', ');
    const sessionKey = (await redis.keys('gatehouse:session:*'))[0];
    const rlKey = (await redis.keys('gatehouse:ratelimit:*'))[0];
    const cacheKey = (await redis.keys('gatehouse:proxy-cache:*'))[0];
    const usage = async (key: string | undefined) => (key ? `${await redis.memory('USAGE', key)} B` : 'n/a');
    const md = [
      `Per request, median of ${ROUNDS} rounds (the lower middle for an even count) of ${REQUESTS} requests (after ${WARMUP} warm-up), ` +
        `all to A (×1) or spread evenly over A, B, C (×3), ${CONCURRENCY} in flight at each instance. Gateway CPU summed over the three processes. ` +
        `Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
      '',
      '| route kind | gateway CPU µs ×1 | ×3 | Δ | Redis commands ×1 | ×3 | Redis CPU µs ×1 | ×3 | PG messages ×1 | ×3 | errors |',
      '|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      `Gateway RSS after the run: ${rss}. Redis memory per entry (MEMORY USAGE): session ${await usage(sessionKey)}, ` +
        `rate-limit counter ${await usage(rlKey)}, cached 123-byte response ${await usage(cacheKey)}.`,
    ].join('\n');
    process.stdout.write(`${md}\n`);
    if (args.out) writeFileSync(args.out, `${md}\n`);
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
