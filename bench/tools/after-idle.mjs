// Run from the repository root after a build (uses dist/bench and dist/src; writes scratch files to .ab/).
// IDLES=0,0,60,0 GW_NODE_ARGS="--no-memory-reducer" node bench/tools/after-idle.mjs — one gateway, wrk after each idle gap.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
mkdirSync('.ab', { recursive: true });
const up = spawn('taskset', ['-c', '1', process.execPath, 'dist/bench/upstream.js'], { stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = await new Promise((r) => up.stdout.once('data', (d) => r(JSON.parse(d).port)));
writeFileSync('.ab/cfg2.json', JSON.stringify({ _format_version: '3.0', services: [{ name: 'b', url: `http://127.0.0.1:${upPort}`, routes: [{ name: 'plain', paths: ['/'] }] }] }));
const gw = spawn('taskset', ['-c', '0', process.execPath, ...(process.env.GW_NODE_ARGS ? process.env.GW_NODE_ARGS.split(' ') : []), 'dist/src/main.js', '--config', '.ab/cfg2.json'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, GATEHOUSE_PROXY_LISTEN: '127.0.0.1:18700', GATEHOUSE_STATUS_LISTEN: '127.0.0.1:18701', GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_ADMIN_LISTEN: 'off' } });
let gc = []; gw.stdout.on('data', (d) => { for (const l of String(d).split('\n')) if (/Mark|Scavenge/.test(l)) gc.push(l); });
await new Promise((r) => setTimeout(r, 3000));
const wrk = (s) => { const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${s}s`, '--latency', 'http://127.0.0.1:18700/'], { encoding: 'utf8' }); return /99%\s+(\S+)/.exec(out)[1] + ' ' + /Requests\/sec:\s+(\S+)/.exec(out)[1]; };
for (const idle of (process.env.IDLES ?? '0,0,30,0,60,0').split(',').map(Number)) {
  await new Promise((r) => setTimeout(r, idle * 1000));
  gc = []; const w = wrk(1); const gcw = gc.filter((l) => /Mark/.test(l)).length; gc = [];
  const m = wrk(4);
  console.log(`after ${idle}s idle: warmup p99/rps ${w} (mark-compacts ${gcw}); measured p99/rps ${m}; mark-compacts ${gc.filter((l) => /Mark/.test(l)).length}, scavenges ${gc.filter((l) => /Scavenge/.test(l)).length}`, gc.filter((l) => /Mark/.test(l)).map((l) => /MB, ([\d.]+)/.exec(l)?.[1]).join(','));
}
gw.kill(); up.kill();
