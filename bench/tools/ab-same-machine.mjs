// Run from the repository root after a build; scratch files go to .ab/ (git-ignored).
// Paired A/B of two builds: both gateways pinned to CPU 0, wrk + upstream on CPU 1, load alternates A B A B ...
// usage: node bench/tools/ab-same-machine.mjs <A dist dir> <B dist dir> [path: / | /jwt] [rounds] [secs]
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
mkdirSync('.ab', { recursive: true });
import { startFakeIssuer } from '../../dist/bench/issuer.js';
import { cpuSeconds } from '../../dist/bench/procstat.js';
import { NODE_FLAGS } from '../../dist/src/runtime/node-flags.js';
const [A, B, path = '/', rounds = '8', secs = '3'] = process.argv.slice(2);
const issuer = await startFakeIssuer();
const up = spawn('taskset', ['-c', '1', process.execPath, 'dist/bench/upstream.js'], { stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = await new Promise((r) => up.stdout.once('data', (d) => r(JSON.parse(d).port)));
const cfg = { _format_version: '3.0', services: [{ name: 'b', url: `http://127.0.0.1:${upPort}`, routes: [
  { name: 'plain', paths: ['/'], strip_path: false },
  { name: 'jwt', paths: ['/jwt'], strip_path: false, plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], scopes_required: ['bench_scope'] } }] },
] }] };
writeFileSync('.ab/cfg.json', JSON.stringify(cfg));
const start = (dir, port) => spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, `${dir}/src/main.js`, '--config', '.ab/cfg.json'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}`, GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${port + 1}`, GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ADMIN_LISTEN: 'off' } });
const gws = [[A, start(A, 18600)], [B, start(B, 18610)]];
await new Promise((r) => setTimeout(r, 3000));
writeFileSync('.ab/tok.lua', `wrk.headers["Authorization"] = ${JSON.stringify(`Bearer ${await issuer.sign('RS256', 'x')}`)}`);
const run = (i, s) => {
  const port = i ? 18610 : 18600; const gw = gws[i][1];
  const c0 = cpuSeconds(gw.pid);
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${s}s`, '-s', '.ab/tok.lua', `http://127.0.0.1:${port}${path}`], { encoding: 'utf8' });
  const reqs = Number(/(\d+) requests in/.exec(out)[1]);
  return ((cpuSeconds(gw.pid) - c0) * 1e6) / reqs;
};
run(0, 2); run(1, 2);
const a = [], b = [], d = [];
for (let r = 0; r < Number(rounds); r++) { const first = r % 2; const x = [0, 0]; x[first] = run(first, Number(secs)); x[1 - first] = run(1 - first, Number(secs)); a.push(x[0]); b.push(x[1]); d.push(x[1] - x[0]); }
const med = (v) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
console.log(`path ${path}: A ${med(a).toFixed(1)} µs/req, B ${med(b).toFixed(1)} µs/req, median paired B−A ${med(d).toFixed(1)} µs (${d.map((x) => x.toFixed(1)).join(' ')})`);
for (const [, p] of gws) p.kill(); up.kill(); await issuer.close();
