import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { INTERMEDIATE_CIPHERS } from '../src/common/tls-context.js';
import { generateCertificate } from '../src/common/tls-self-signed.js';
import { mallocTunables, NODE_FLAGS } from '../src/runtime/node-flags.js';
import { nginxBinary, nginxVersion } from './nginx.js';
import { freePort, startProcess, waitForPort, type Proc } from './processes.js';
import { cpuSeconds } from './procstat.js';
import { median } from './report.js';
import { runWrk } from './wrk.js';

/**
 * What TLS, HTTP/2 and WebSockets cost, side by side in one run:
 *
 *   node dist/bench/protocols.js [--rounds N] [--duration S]
 *
 * - GET of the 123-byte JSON through nginx (1 worker, TLS on the same
 *   certificate and cipher list) and through Gatehouse (access log on, as
 *   shipped), over plain HTTP/1.1 and HTTPS/1.1 (wrk, 50 connections) and
 *   HTTP/2 (h2load, 50 connections × 10 streams);
 * - WebSocket echo (1 KiB binary messages, 50 connections × 8 in flight):
 *   direct to a `ws` echo server and through Gatehouse.
 *
 * Proxies on CPU 0, load generators and upstreams on CPU 1 (taskset), cases
 * interleaved per round, medians reported with ratios. Needs wrk, nginx and
 * h2load (`GATEHOUSE_BENCH_DEPS=1 bash scripts/install-test-deps.sh`).
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'dist/src/main.js');
const BENCH_DIST = join(ROOT, 'dist/bench');
const PROXY_CPU = '0';
const LOAD_CPU = '1';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const rounds = arg('--rounds', 3);
const durationS = arg('--duration', 5);

interface Sample {
  rps: number;
  cpuUsPerReq?: number;
}

const procs: Proc[] = [];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-protocols-'));
  const logDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/gatehouse-bench-') : dir;
  const cert = generateCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  const certFile = join(dir, 'bench.crt');
  const keyFile = join(dir, 'bench.key');
  writeFileSync(certFile, cert.cert);
  writeFileSync(keyFile, cert.key);

  const nodeJson = async (name: string, script: string, cpus: string) => {
    const { line } = await startProcess(name, process.execPath, [join(BENCH_DIST, script)], { cpus, ready: (l) => l.startsWith('{"port"'), onSpawn: (p) => procs.push(p) });
    return JSON.parse(line).port as number;
  };
  const upstreamPort = await nodeJson('upstream', 'upstream.js', LOAD_CPU);
  const wsPort = await nodeJson('ws-echo', 'ws-echo.js', LOAD_CPU);

  // nginx: plain and TLS+h2 listeners, the same certificate and TLS 1.2 cipher list as Gatehouse.
  const [nginxPlain, nginxTls] = [await freePort(), await freePort()];
  const prefix = join(dir, 'nginx');
  mkdirSync(prefix, { recursive: true });
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy; fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  upstream bench_upstream { server 127.0.0.1:${upstreamPort}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${nginxPlain};
    listen 127.0.0.1:${nginxTls} ssl http2;
    ssl_certificate ${certFile};
    ssl_certificate_key ${keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${INTERMEDIATE_CIPHERS};
    ssl_prefer_server_ciphers on;
    location / { proxy_pass http://bench_upstream; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const nginx = await startProcess('nginx', nginxBinary(), ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')], { cpus: PROXY_CPU, onSpawn: (p) => procs.push(p) });
  await waitForPort(nginxTls);

  const [gwPlain, gwTls] = [await freePort(), await freePort()];
  const config = join(dir, 'kong.yaml');
  writeFileSync(
    config,
    stringify({
      _format_version: '3.0',
      services: [
        { name: 'api', url: `http://127.0.0.1:${upstreamPort}`, routes: [{ name: 'api', paths: ['/'] }] },
        { name: 'ws', url: `http://127.0.0.1:${wsPort}`, routes: [{ name: 'ws', paths: ['/ws'], protocols: ['http', 'https', 'ws', 'wss'] }] },
      ],
    }),
  );
  const gatehouse = await startProcess('gatehouse', process.execPath, [...NODE_FLAGS, MAIN, '--config', config], {
    cpus: PROXY_CPU,
    env: {
      ...process.env,
      GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${gwPlain}, 127.0.0.1:${gwTls} ssl http2`,
      GATEHOUSE_STATUS_LISTEN: '127.0.0.1:0',
      GATEHOUSE_SSL_CERT: certFile,
      GATEHOUSE_SSL_CERT_KEY: keyFile,
      GATEHOUSE_LOG_LEVEL: 'info',
      GLIBC_TUNABLES: mallocTunables(),
    },
    ready: (l) => l.includes('"gatehouse started"'),
    logFile: join(logDir, 'gatehouse.log'),
    onSpawn: (p) => procs.push(p),
  });

  const h1 = (name: string, url: string, proc: Proc) => async (): Promise<Sample> => {
    const cpu0 = cpuSeconds(proc.pid);
    const r = await runWrk({ url, connections: 50, durationS, strict: true }, dir, name, LOAD_CPU);
    if (r.socketErrors || r.badStatus) throw new Error(`${name}: ${r.firstError}`);
    return { rps: r.rps, cpuUsPerReq: ((cpuSeconds(proc.pid) - cpu0) * 1e6) / r.requests };
  };
  const h2 = (name: string, url: string, proc: Proc) => async (): Promise<Sample> => {
    const cpu0 = cpuSeconds(proc.pid);
    const out = await run('taskset', ['-c', LOAD_CPU, 'h2load', '-D', String(durationS), '-c', '50', '-m', '10', '-t', '1', url]);
    const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1]);
    const m = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
    if (!m || !rps || m[2] !== m[3]) throw new Error(`${name}: h2load failed:\n${out}`);
    if (!/Application protocol: h2/.test(out)) throw new Error(`${name}: h2 was not negotiated:\n${out}`);
    return { rps, cpuUsPerReq: ((cpuSeconds(proc.pid) - cpu0) * 1e6) / Number(m[3]) };
  };
  const ws = (url: string, proc?: Proc) => async (): Promise<Sample> => {
    const cpu0 = proc ? cpuSeconds(proc.pid) : 0;
    const out = await run('taskset', ['-c', LOAD_CPU, process.execPath, join(BENCH_DIST, 'ws-load.js'), url, '50', '8', '1024', String(durationS)]);
    const r = JSON.parse(out.trim().split('\n').at(-1)!);
    const rps = r.messages / r.seconds;
    // CPU includes the warm-up second: an upper bound per message.
    return { rps, cpuUsPerReq: proc ? ((cpuSeconds(proc.pid) - cpu0) * 1e6) / r.messages : undefined };
  };

  const cases: [string, () => Promise<Sample>][] = [
    ['nginx http/1.1', h1('nginx-http', `http://127.0.0.1:${nginxPlain}/`, nginx.proc)],
    ['gatehouse http/1.1', h1('gw-http', `http://127.0.0.1:${gwPlain}/`, gatehouse.proc)],
    ['nginx https/1.1', h1('nginx-https', `https://127.0.0.1:${nginxTls}/`, nginx.proc)],
    ['gatehouse https/1.1', h1('gw-https', `https://127.0.0.1:${gwTls}/`, gatehouse.proc)],
    ['nginx h2', h2('nginx-h2', `https://127.0.0.1:${nginxTls}/`, nginx.proc)],
    ['gatehouse h2', h2('gw-h2', `https://127.0.0.1:${gwTls}/`, gatehouse.proc)],
    ['websocket echo direct', ws(`ws://127.0.0.1:${wsPort}/ws`)],
    ['websocket echo via gatehouse', ws(`ws://127.0.0.1:${gwPlain}/ws`, gatehouse.proc)],
  ];
  const samples = new Map<string, Sample[]>(cases.map(([n]) => [n, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const [name, fn] of cases) {
      const s = await fn();
      samples.get(name)!.push(s);
      process.stderr.write(`round ${round} ${name}: ${s.rps.toFixed(0)}/s${s.cpuUsPerReq ? `, ${s.cpuUsPerReq.toFixed(1)} µs CPU each` : ''}\n`);
    }
  }
  const med = (name: string) => median(samples.get(name)!.map((s) => s.rps)) ?? 0;
  const cpu = (name: string) => {
    const v = samples.get(name)!.map((s) => s.cpuUsPerReq).filter((x): x is number => x !== undefined);
    return v.length ? (median(v) ?? 0).toFixed(1) : "—";
  };
  const row = (name: string, baseline: string) => `| ${name} | ${med(name).toFixed(0)} | ${cpu(name)} | ${(med(name) / med(baseline)).toFixed(2)}× ${baseline} |`;
  const report = [
    `# Protocols bench (${new Date().toISOString().slice(0, 16)}Z, ${rounds} rounds × ${durationS} s, medians)`,
    '',
    `node ${process.version}, ${nginxVersion() ?? 'nginx ?'}; proxies pinned to CPU ${PROXY_CPU}, load and upstreams on CPU ${LOAD_CPU}. Gatehouse with its access log on (as shipped). A busy shared machine: compare the ratios, measured side by side, not the absolute numbers.`,
    '',
    '| case | req/s (msg/s) | proxy CPU µs each | ratio |',
    '|---|---:|---:|---|',
    row('nginx http/1.1', 'nginx http/1.1'),
    row('gatehouse http/1.1', 'nginx http/1.1'),
    row('nginx https/1.1', 'nginx http/1.1'),
    row('gatehouse https/1.1', 'gatehouse http/1.1'),
    row('gatehouse https/1.1', 'nginx https/1.1'),
    row('nginx h2', 'nginx https/1.1'),
    row('gatehouse h2', 'gatehouse https/1.1'),
    row('gatehouse h2', 'nginx h2'),
    row('websocket echo direct', 'websocket echo direct'),
    row('websocket echo via gatehouse', 'websocket echo direct'),
    '',
  ].join('\n');
  process.stdout.write(report);
  const out = join(ROOT, 'bench/results', `protocols-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-')}.md`);
  writeFileSync(out, report);
  process.stderr.write(`written ${out}\n`);
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (out += b));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`${cmd} exited with ${code}:\n${out}`))));
  });
}

main()
  .catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await Promise.all(procs.map((p) => p.stop()));
  });
