// Run from the repository root after a build; scratch files go to .ab/ (git-ignored).
// Gateways run with exactly the node args given per variant (NODE_FLAGS are not added: that is what it compares).
// p99 as the bench sees it: each proxy idles while the others run, then gets WARM s of unmeasured load and SECS s measured.
// Targets: the bare proxy (fed the bearer token; node args from BARE_ARGS), and one gateway per GW_VARIANTS entry ("name=node args", ';'-separated).
// usage: IDLE=20 ROUNDS=8 GW_VARIANTS="base@.ab/base=;new=;semi16=--min-semi-space-size=16;plain#/=--no-memory-reducer" node bench/tools/p99-after-idle.mjs [/jwt]
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
mkdirSync('.ab', { recursive: true });
import { startFakeIssuer } from '../../dist/bench/issuer.js';
import { cpuSeconds } from '../../dist/bench/procstat.js';
const path = process.argv[2] ?? '/jwt';
const IDLE = Number(process.env.IDLE ?? 20), ROUNDS = Number(process.env.ROUNDS ?? 8), WARM = Number(process.env.WARM ?? 2), SECS = Number(process.env.SECS ?? 4);
const issuer = await startFakeIssuer();
const up = spawn('taskset', ['-c', '1', process.execPath, 'dist/bench/upstream.js'], { stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = await new Promise((r) => up.stdout.once('data', (d) => r(JSON.parse(d).port)));
writeFileSync('.ab/p99cfg.json', JSON.stringify({ _format_version: '3.0', services: [{ name: 'b', url: `http://127.0.0.1:${upPort}`, routes: [
  { name: 'plain', paths: ['/'], strip_path: false },
  { name: 'jwt', paths: ['/jwt'], strip_path: false, plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], scopes_required: ['bench_scope'] } }] },
] }] }));
writeFileSync('.ab/p99tok.lua', `wrk.headers["Authorization"] = ${JSON.stringify(`Bearer ${await issuer.sign('RS256', 'x')}`)}`);
const targets = [];
const bare = spawn('taskset', ['-c', '0', process.execPath, ...(process.env.BARE_ARGS ?? '').split(' ').filter(Boolean), 'dist/bench/bare-proxy.js', `http://127.0.0.1:${upPort}`], { stdio: ['ignore', 'pipe', 'inherit'] });
targets.push({ name: 'bare', proc: bare, port: await new Promise((r) => bare.stdout.once('data', (d) => r(JSON.parse(d).port))) });
let port = 18800;
for (const v of (process.env.GW_VARIANTS ?? 'gw=').split(';')) {
  const eq = v.indexOf('=');
  const [label, args] = eq === -1 ? [v, ''] : [v.slice(0, eq), v.slice(eq + 1)];
  // "name@dir": that variant runs another build's dist (e.g. .ab/base); "name#/path": it is loaded on that path.
  const [nameDir, ownPath] = label.split('#');
  const [name, dir = 'dist'] = nameDir.split('@');
  const p = port; port += 10;
  const proc = spawn('taskset', ['-c', '0', process.execPath, ...args.split(' ').filter(Boolean), `${dir}/src/main.js`, '--config', '.ab/p99cfg.json'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${p}`, GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${p + 1}`, GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ADMIN_LISTEN: 'off' } });
  targets.push({ name, proc, port: p, gw: true, path: ownPath ?? path });
}
// EXTRA_IDLE=N: N more gateways on CPU 0 that are never loaded, as the full bench has (its other cases' proxies).
const idle = [];
for (let i = 0; i < Number(process.env.EXTRA_IDLE ?? 0); i++) {
  const p = 19000 + 10 * i;
  idle.push(spawn('taskset', ['-c', '0', process.execPath, '--no-memory-reducer', 'dist/src/main.js', '--config', '.ab/p99cfg.json'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${p}`, GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${p + 1}`, GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ADMIN_LISTEN: 'off' } }));
}
await new Promise((r) => setTimeout(r, 3000));
const wrk = (t, s) => {
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${s}s`, '--latency', '-s', '.ab/p99tok.lua', `http://127.0.0.1:${t.port}${t.gw ? t.path : '/'}`], { encoding: 'utf8' });
  const ms = (v) => (v.endsWith('us') ? parseFloat(v) / 1000 : v.endsWith('ms') ? parseFloat(v) : parseFloat(v) * 1000);
  return { p99: ms(/99%\s+(\S+)/.exec(out)[1]), rps: Number(/Requests\/sec:\s+(\S+)/.exec(out)[1]), reqs: Number(/(\d+) requests in/.exec(out)[1]) };
};
const res = Object.fromEntries(targets.map((t) => [t.name, []]));
for (let r = 0; r < ROUNDS; r++) {
  await new Promise((ok) => setTimeout(ok, IDLE * 1000));
  const order = r % 2 ? [...targets].reverse() : targets;
  for (const t of order) { wrk(t, WARM); const c0 = cpuSeconds(t.proc.pid); const m = wrk(t, SECS); m.cpu = ((cpuSeconds(t.proc.pid) - c0) * 1e6) / m.reqs; res[t.name].push(m); }
  console.log(`round ${r + 1}: ` + targets.map((t) => { const m = res[t.name].at(-1); return `${t.name} p99 ${m.p99.toFixed(1)} ms ${Math.round(m.rps)}/s ${m.cpu.toFixed(1)}µs`; }).join(' | '));
}
const med = (v) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
for (const t of targets) console.log(`${t.name}: median p99 ${med(res[t.name].map((m) => m.p99)).toFixed(2)} ms, rps ${Math.round(med(res[t.name].map((m) => m.rps)))}, cpu ${med(res[t.name].map((m) => m.cpu)).toFixed(1)} µs/req; p99s ${res[t.name].map((m) => m.p99.toFixed(1)).join(' ')}`);
for (const t of targets) t.proc.kill(); for (const p of idle) p.kill(); up.kill(); await issuer.close();
