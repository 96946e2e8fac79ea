// Run from the repository root after a build; scratch files go to .ab/ (git-ignored).
// Per-request CPU profile diff: each target runs alone on CPU 0 with --cpu-prof under the same wrk load (wrk and the
// upstream on CPU 1); only samples taken while the measured wrk run lasted count, as µs of self time per request by
// function, printed as the difference from the first target. Sequential, so whole-process CPU differs by the machine's
// noise; the per-function rows are what to read.
// usage: node bench/tools/profile-diff.mjs <path: / | /jwt> <secs> name=bare:DIST name=gw:DIST[:PATH[:LEVEL]] [...]   (DIST: dist or
// .ab/base; LEVEL: that gateway's log level, e.g. `info=gw:dist::info` against `warn=gw:dist::warn`)
// A target's own PATH overrides the path for it alone (the requests stay those of the first argument: the token is sent
// whenever it is /jwt): `/jwt 10
// plain=gw:dist:/ jwt=gw:dist` is what the bearer plugin costs over the plain route fed the same requests.
// env: LEVEL (gateway log level, default warn), LOG=pipe (the gateway's log to a pipe this process reads, as a container
// runtime would, instead of a file), WARM (warm-up seconds, default 5), IDLE (seconds idle after the warm-up, then 2 s of
// load before the measured run, as each process sees in a full bench run), N (rows, default 40)
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpuSeconds, sideBySide } from './side-by-side.mjs';

const [path, secs, ...specs] = process.argv.slice(2);
const bench = await sideBySide();
mkdirSync('.ab/prof', { recursive: true });
const results = [];
let port = 18700;
for (const spec of specs) {
  const [name, rest] = spec.split('=');
  const [kind, dist, pathField, level] = rest.split(':');
  const ownPath = pathField || undefined;
  port += 10;
  const dir = `.ab/prof/${name}`;
  rmSync(dir, { recursive: true, force: true });
  const nodeArgs = ['--cpu-prof', '--cpu-prof-dir', dir];
  let p;
  let target = port;
  if (kind === 'bare') {
    ({ proc: p, port: target } = await bench.bare(dist, { nodeArgs }));
  } else {
    // The gateway's log goes to a file, as in the bench (tmpfs when there is one): a pipe read by this process costs otherwise.
    const stdout = process.env.LOG === 'pipe' ? 'pipe' : openSync(`${existsSync('/dev/shm') ? '/dev/shm' : '.ab/prof'}/profile-diff-${name}.log`, 'w');
    p = bench.gateway(dist, port, { nodeArgs, stdout, env: { GATEHOUSE_LOG_LEVEL: level ?? process.env.LEVEL ?? 'warn' } });
    if (stdout === 'pipe') p.stdout.resume();
    else closeSync(stdout);
    await bench.ready(port, name);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const targetPath = ownPath ?? path;
  bench.wrk(target, targetPath, Number(process.env.WARM ?? 5), path);
  if (process.env.IDLE) {
    // As in a full bench run: the process idles while the other cases run, then gets the bench's 2 s of warm-up.
    await new Promise((r) => setTimeout(r, Number(process.env.IDLE) * 1000));
    bench.wrk(target, targetPath, 2, path);
  }
  const t0 = process.hrtime.bigint(); const c0 = cpuSeconds(p.pid);
  const reqs = bench.wrk(target, targetPath, Number(secs), path).requests;
  const t1 = process.hrtime.bigint(); const c1 = cpuSeconds(p.pid);
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
await bench.close();
