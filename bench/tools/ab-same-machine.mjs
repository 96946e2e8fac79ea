// Run from the repository root after a build; scratch files go to .ab/ (git-ignored).
// Paired A/B of two builds: both gateways pinned to CPU 0, wrk + upstream on CPU 1, load alternates A B A B ...
// usage: node bench/tools/ab-same-machine.mjs <A dist dir> <B dist dir> [path: / | /jwt] [rounds] [secs]
import { cpuSeconds, sideBySide } from './side-by-side.mjs';

const [A, B, path = '/', rounds = '8', secs = '3'] = process.argv.slice(2);
const bench = await sideBySide();
const ports = [18600, 18610];
const gws = [bench.gateway(A, ports[0]), bench.gateway(B, ports[1])];
await Promise.all(ports.map((p) => bench.ready(p)));
const run = (i, s) => {
  const c0 = cpuSeconds(gws[i].pid);
  const { requests } = bench.wrk(ports[i], path, s);
  return ((cpuSeconds(gws[i].pid) - c0) * 1e6) / requests;
};
run(0, 2); run(1, 2);
const a = [], b = [], d = [];
for (let r = 0; r < Number(rounds); r++) { const first = r % 2; const x = [0, 0]; x[first] = run(first, Number(secs)); x[1 - first] = run(1 - first, Number(secs)); a.push(x[0]); b.push(x[1]); d.push(x[1] - x[0]); }
const med = (v) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
console.log(`path ${path}: A ${med(a).toFixed(1)} µs/req, B ${med(b).toFixed(1)} µs/req, median paired B−A ${med(d).toFixed(1)} µs (${d.map((x) => x.toFixed(1)).join(' ')})`);
for (const p of gws) p.kill();
await bench.close();
