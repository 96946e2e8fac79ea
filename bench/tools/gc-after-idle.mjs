// Run from the repository root after a build; scratch files go to .ab/ (git-ignored).
// The bare proxy against one or more gateways on PATH with C connections, all pinned to CPU 0 (wrk and the
// upstream on CPU 1), every process with NODE_FLAGS; IDLE s of idle before each round, as the full bench's
// processes have between their turns. GWS="name@distdir@--extra,--node,--args;...", GWARGS/BAREARGS for all.
// EXTRA_IDLE=N adds N idle gateways on CPU 0, as the full bench has.
// usage: IDLE=60 GWS="gw@dist;init96@dist@--initial-old-space-size=96" node bench/tools/gc-after-idle.mjs /64k 4 4 16
// (GLIBC_TUNABLES comes from the environment, as `npm start` sets it; a variant may override it: "notrim@dist@@GLIBC_TUNABLES=")
// A variant without a flag of NODE_FLAGS: pass its default again, e.g. --initial-old-space-size=0.
// (add --trace-gc --trace-gc-ignore-scavenger to GWARGS to see the mark-compacts of each round)
import { mkdirSync } from 'node:fs';
mkdirSync('.ab', { recursive: true });
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpuSeconds } from '../../dist/bench/procstat.js';
import { NODE_FLAGS } from '../../dist/src/runtime/node-flags.js';
import { gatewayReady } from './side-by-side.mjs';
const [path = '/64k', rounds = '6', secs = '4', conns = '16'] = process.argv.slice(2);
const IDLE = Number(process.env.IDLE ?? 0);
const GWS = (process.env.GWS ?? 'gw@dist').split(';');
const up = spawn('taskset', ['-c', '1', process.execPath, 'dist/bench/upstream.js'], { stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = await new Promise((r) => up.stdout.once('data', (d) => r(JSON.parse(d).port)));
writeFileSync('.ab/paircfg.json', JSON.stringify({ _format_version: '3.0', services: [{ name: 'b', url: `http://127.0.0.1:${upPort}`, routes: [{ name: 'plain', paths: ['/'], strip_path: false }] }] }));
const t = [];
const bare = spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, ...(process.env.BAREARGS ?? '').split(' ').filter(Boolean), 'dist/bench/bare-proxy.js', `http://127.0.0.1:${upPort}`], { stdio: ['ignore', 'pipe', 'inherit'] });
t.push({ name: 'bare', proc: bare, port: await new Promise((r) => bare.stdout.once('data', (d) => r(JSON.parse(d).port))) });
let port = 18700;
for (const g of GWS) {
  // A fourth field sets environment for that variant: "nomalloc@dist@@GLIBC_TUNABLES=" (comma-separated NAME=VALUE).
  const [name, dir, extra = '', envs = ''] = g.split('@'); const p = port; port += 10;
  const own = Object.fromEntries(envs.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  t.push({ name, port: p, proc: spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, ...(process.env.GWARGS ?? '').split(' ').filter(Boolean), ...extra.split(',').filter(Boolean), `${dir}/src/main.js`, '--config', '.ab/paircfg.json'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${p}`, GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${p + 1}`, GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ADMIN_LISTEN: 'off', ...own } }) });
}
// EXTRA_IDLE=N: N more gateways on CPU 0 that are never loaded, as the full bench has (its other cases' proxies).
const idle = [];
for (let i = 0; i < Number(process.env.EXTRA_IDLE ?? 0); i++) {
  const p = 19100 + 10 * i;
  idle.push(spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, 'dist/src/main.js', '--config', '.ab/paircfg.json'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${p}`, GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${p + 1}`, GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ADMIN_LISTEN: 'off' } }));
}
await new Promise((r) => setTimeout(r, 3000));
// A dozen gateways starting together on one core take longer than that: wait until each measured one answers.
for (const x of t.slice(1)) await gatewayReady(x.port, x.name);
const wrk = (x, s) => {
  const c0 = cpuSeconds(x.proc.pid);
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${conns}`, `-d${s}s`, '--latency', `http://127.0.0.1:${x.port}${path}`], { encoding: 'utf8' });
  const ms = (v) => (v.endsWith('us') ? parseFloat(v) / 1000 : v.endsWith('ms') ? parseFloat(v) : parseFloat(v) * 1000);
  const reqs = Number(/(\d+) requests in/.exec(out)[1]);
  return { p99: ms(/99%\s+(\S+)/.exec(out)[1]), rps: Number(/Requests\/sec:\s+(\S+)/.exec(out)[1]), cpu: ((cpuSeconds(x.proc.pid) - c0) * 1e6) / reqs };
};
const res = Object.fromEntries(t.map((x) => [x.name, []]));
for (let r = 0; r < Number(rounds); r++) {
  if (IDLE) await new Promise((ok) => setTimeout(ok, IDLE * 1000));
  for (const x of r % 2 ? [...t].reverse() : t) { wrk(x, 2); res[x.name].push(wrk(x, Number(secs))); }
  console.log(`[${(performance.now()/1000).toFixed(0)}s] round ${r + 1}: ` + t.map((x) => { const m = res[x.name].at(-1); return `${x.name} ${Math.round(m.rps)}/s p99 ${m.p99.toFixed(1)} ${m.cpu.toFixed(1)}µs`; }).join(' | '));
}
const med = (v) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
for (const x of t) console.log(`${x.name}: rps ${Math.round(med(res[x.name].map((m) => m.rps)))} p99 ${med(res[x.name].map((m) => m.p99)).toFixed(2)} cpu ${med(res[x.name].map((m) => m.cpu)).toFixed(1)}`);
for (const x of t) x.proc.kill(); for (const p of idle) p.kill(); up.kill();
