// Run from the repository root after a build; scratch files go to .ab/ (git-ignored).
// Per-request CPU profile diff: each target runs alone on CPU 0 with --cpu-prof under the same wrk load (wrk and the
// upstream on CPU 1); only samples taken while the measured wrk run lasted count, as µs of self time per request by
// function, printed as the difference from the first target. Sequential, so whole-process CPU differs by the machine's
// noise; the per-function rows are what to read.
// usage: node bench/tools/profile-diff.mjs <path: / | /jwt> <secs> name=bare:DIST name=gw:DIST[:PATH] [...]   (DIST: dist or .ab/base)
// A target's own PATH overrides the path for it alone (the token is still sent when the path is /jwt): `/jwt 10
// plain=gw:dist:/ jwt=gw:dist` is what the bearer plugin costs over the plain route fed the same requests.
// env: LEVEL (gateway log level, default warn), LOG=pipe (the gateway's log to a pipe this process reads, as a container
// runtime would, instead of a file), WARM (warm-up seconds, default 5), N (rows, default 40)
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readdirSync, readFileSync, rmSync, openSync, closeSync, existsSync } from 'node:fs';
const root = process.cwd();
mkdirSync('.ab', { recursive: true });
const { startFakeIssuer } = await import(`${root}/dist/bench/issuer.js`);
const { cpuSeconds } = await import(`${root}/dist/bench/procstat.js`);
const { NODE_FLAGS } = await import(`${root}/dist/src/runtime/node-flags.js`);
const [path, secs, ...specs] = process.argv.slice(2);
const issuer = await startFakeIssuer();
const up = spawn('taskset', ['-c', '1', process.execPath, 'dist/bench/upstream.js'], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => up.kill());
const upPort = await new Promise((r) => up.stdout.once('data', (d) => r(JSON.parse(d).port)));
mkdirSync('.ab/prof', { recursive: true });
const cfg = { _format_version: '3.0', services: [{ name: 'b', url: `http://127.0.0.1:${upPort}`, routes: [
  { name: 'plain', paths: ['/'], strip_path: false },
  { name: 'jwt', paths: ['/jwt'], strip_path: false, plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], scopes_required: ['bench_scope'] } }] },
] }] };
writeFileSync('.ab/prof/cfg.json', JSON.stringify(cfg));
writeFileSync('.ab/prof/tok.lua', path.startsWith('/jwt') ? `wrk.headers["Authorization"] = ${JSON.stringify(`Bearer ${await issuer.sign('RS256', 'x')}`)}` : '');
const env = { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=67108864', GATEHOUSE_LOG_LEVEL: process.env.LEVEL ?? 'warn', GATEHOUSE_ADMIN_LISTEN: 'off' };
const results = [];
let port = 18700;
for (const spec of specs) {
  const [name, rest] = spec.split('='); const [kind, dist, ownPath] = rest.split(':');
  port += 10;
  const dir = `.ab/prof/${name}`; rmSync(dir, { recursive: true, force: true });
  const args = kind === 'bare' ? [`${dist}/bench/bare-proxy.js`, `http://127.0.0.1:${upPort}`] : [`${dist}/src/main.js`, '--config', '.ab/prof/cfg.json'];
  // The gateway's log goes to a file, as in the bench (tmpfs when there is one): a pipe read by this process costs otherwise.
  const logFd = kind === 'bare' || process.env.LOG === 'pipe' ? 'pipe' : openSync(`${existsSync('/dev/shm') ? '/dev/shm' : '.ab/prof'}/profile-diff-${name}.log`, 'w');
  const p = spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, '--cpu-prof', '--cpu-prof-dir', dir, ...args], { stdio: ['ignore', logFd, 'inherit'], env: { ...env, GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}`, GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${port + 1}` } });
  let target = port;
  if (kind === 'bare') target = await new Promise((r) => p.stdout.once('data', (d) => r(JSON.parse(d).port)));
  else if (logFd === 'pipe') p.stdout.resume();
  else closeSync(logFd);
  // Ready when the status listener answers (a cold start can take seconds), then a moment to settle.
  if (kind !== 'bare') {
    for (let t = 0; ; t++) {
      const ok = await fetch(`http://127.0.0.1:${port + 1}/health/live`).then((r) => r.ok, () => false);
      if (ok) break;
      if (t > 300) throw new Error(`${name}: not ready after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await new Promise((r) => setTimeout(r, 1000));
  const wrk = (s) => execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${s}s`, '-s', '.ab/prof/tok.lua', `http://127.0.0.1:${target}${ownPath ?? path}`], { encoding: 'utf8' });
  wrk(Number(process.env.WARM ?? 5));
  const t0 = process.hrtime.bigint(); const c0 = cpuSeconds(p.pid);
  const out = wrk(Number(secs));
  const t1 = process.hrtime.bigint(); const c1 = cpuSeconds(p.pid);
  const reqs = Number(/(\d+) requests in/.exec(out)[1]);
  p.kill('SIGTERM'); await new Promise((r) => p.once('exit', r));
  const prof = JSON.parse(readFileSync(`${dir}/${readdirSync(dir)[0]}`, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const from = Number(t0 / 1000n), to = Number(t1 / 1000n);
  let t = prof.startTime; const self = new Map(); let busy = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i]; const d = prof.timeDeltas[i + 1] ?? 0;
    if (t < from || t > to) continue;
    const cf = byId.get(prof.samples[i]).callFrame;
    if (cf.functionName === '(idle)') continue;
    const key = `${cf.functionName || '(anon)'} ${cf.url.replace(/.*\/(node_modules|dist|src)\//, '$1/')}:${cf.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + d); busy += d;
  }
  for (const [k, v] of self) self.set(k, v / reqs);
  const cpu = ((c1 - c0) * 1e6) / reqs;
  results.push({ name, self, cpu, busy: busy / reqs, rps: reqs / Number(secs) });
  console.log(`${name}: ${(reqs / Number(secs)).toFixed(0)} req/s, CPU ${cpu.toFixed(1)} µs/req, profiled busy ${(busy / reqs).toFixed(1)} µs/req`);
}
const base = results[0];
for (const r of results.slice(1)) {
  console.log(`\n== ${r.name} − ${base.name}: CPU ${(r.cpu - base.cpu).toFixed(1)} µs, busy ${(r.busy - base.busy).toFixed(1)} µs`);
  const keys = new Set([...base.self.keys(), ...r.self.keys()]);
  const rows = [...keys].map((k) => [k, base.self.get(k) ?? 0, r.self.get(k) ?? 0]).map((x) => [...x, x[2] - x[1]]).sort((x, y) => Math.abs(y[3]) - Math.abs(x[3]));
  for (const x of rows.slice(0, Number(process.env.N ?? 40))) console.log(`${x[3] >= 0 ? '+' : ''}${x[3].toFixed(2).padStart(6)}  ${x[1].toFixed(2).padStart(5)} ${x[2].toFixed(2).padStart(5)}  ${x[0]}`);
}
up.kill(); await issuer.close();
