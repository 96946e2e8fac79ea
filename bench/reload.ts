import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { NODE_FLAGS, mallocTunables } from '../src/runtime/node-flags.js';
import { BENCH_AUDIENCE, BENCH_SCOPE, startFakeIssuer } from './issuer.js';
import { freePort, hasTaskset, startProcess, waitForPort, type Proc } from './processes.js';
import { runWrk } from './wrk.js';

/**
 * Live reconfiguration under load: 50 connections on a bearer route while the
 * declarative file is replaced 100 times (a route added and removed, a plugin
 * changed on another route). Every request must succeed, and p99 must stay
 * within 2× of the same load with no change. The gateway is pinned to one core
 * and wrk to the other, as in run.ts; the file writes come from this process.
 *
 *   npm run build && node dist/bench/reload.js [--changes 100] [--interval-ms 250]
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const CHANGES = arg('changes', 100);
// Longer than the file watcher's settle time (150 ms), so every write is its own reload.
const INTERVAL_MS = arg('interval-ms', 250);
const CONNECTIONS = 50;

async function main() {
  const pin = await hasTaskset();
  const procs: Proc[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-reload-'));
  const issuer = await startFakeIssuer();
  try {
    const { proc: up, line } = await startProcess('upstream', process.execPath, [join(ROOT, 'dist/bench/upstream.js')], {
      cpus: pin ? '1' : undefined,
      ready: (l) => l.startsWith('{"port"'),
      onSpawn: (p) => procs.push(p),
    });
    void up;
    const upstreamUrl = `http://127.0.0.1:${JSON.parse(line).port}`;
    const bearer = { name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], audience: [BENCH_AUDIENCE], scopes_required: [BENCH_SCOPE] } };
    const doc = (n: number) => ({
      _format_version: '3.0',
      services: [
        {
          name: 'bench',
          url: upstreamUrl,
          routes: [
            { name: 'jwt', paths: ['/jwt'], strip_path: false, plugins: [bearer] },
            // The change: a route that comes and goes, and a plugin whose config changes every time.
            ...(n % 2 ? [{ name: `extra-${n}`, paths: [`/extra-${n}`] }] : []),
            { name: 'limited', paths: ['/limited'], plugins: [{ name: 'rate-limiting', config: { minute: 1_000_000 + n } }] },
          ],
        },
      ],
    });
    const file = join(dir, 'kong.yaml');
    const write = (n: number) => {
      writeFileSync(`${file}.tmp`, stringify(doc(n)));
      renameSync(`${file}.tmp`, file);
    };
    write(0);
    const [proxyPort, statusPort] = [await freePort(), await freePort()];
    const logFile = join(dir, 'gateway.log');
    await startProcess('gatehouse', process.execPath, [...NODE_FLAGS, join(ROOT, 'dist/src/main.js'), '--config', file], {
      cpus: pin ? '0' : undefined,
      env: {
        ...process.env,
        GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
        GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${statusPort}`,
        GATEHOUSE_LOG_LEVEL: 'info',
        GLIBC_TUNABLES: mallocTunables(),
      },
      logFile,
      onSpawn: (p) => procs.push(p),
    });
    await waitForPort(proxyPort);
    const token = await issuer.sign('RS256', 'reload');
    const durationS = Math.ceil((CHANGES * INTERVAL_MS) / 1000) + 2;
    const spec = {
      url: `http://127.0.0.1:${proxyPort}/jwt`,
      connections: CONNECTIONS,
      durationS,
      headers: { authorization: `Bearer ${token}` },
      strict: true,
    };
    const wrkCpu = pin ? '1' : undefined;
    await runWrk({ ...spec, durationS: 3 }, dir, 'warmup', wrkCpu);
    const steady = await runWrk(spec, dir, 'steady', wrkCpu);

    const applied = () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"config applied"')).length;
    const before = applied();
    const loaded = runWrk(spec, dir, 'reload', wrkCpu);
    await new Promise((r) => setTimeout(r, 1000));
    for (let n = 1; n <= CHANGES; n++) {
      write(n);
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
    }
    const reloading = await loaded;
    const changes = applied() - before;
    const failed = (r: typeof steady) => r.socketErrors + r.badStatus;

    const report = {
      connections: CONNECTIONS,
      changes_written: CHANGES,
      changes_applied: changes,
      steady: { requests: steady.requests, rps: Math.round(steady.rps), p99_ms: steady.p99Ms, failed: failed(steady) },
      reloading: { requests: reloading.requests, rps: Math.round(reloading.rps), p99_ms: reloading.p99Ms, failed: failed(reloading) },
      p99_ratio: +(reloading.p99Ms / steady.p99Ms).toFixed(2),
      rps_ratio: +(reloading.rps / steady.rps).toFixed(2),
    };
    const ok = report.reloading.failed === 0 && report.steady.failed === 0 && changes >= CHANGES && report.p99_ratio <= 2;
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n${ok ? 'PASS' : 'FAIL'}: 0 failed requests and p99 within 2x of steady state across ${changes} applied changes\n`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
