import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Self time per function from a V8 .cpuprofile (written by `node --cpu-prof`):
 * samples are attributed to the node on top of the stack; nodes are grouped
 * by function name and source location.
 *
 * Usage: node profile-summary.js FILE.cpuprofile [N]
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * `windowsMs`: only samples inside these intervals (ms since the profile
 * started, i.e. roughly since the process started) count — the load, without
 * start-up (module loading and compilation dominate a short profile otherwise).
 */
export function summarizeProfile(file: string, top = 25, windowsMs?: [number, number][]): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = 0;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    const ms = t / 1000;
    if (windowsMs && !windowsMs.some(([a, b]) => ms >= a && ms <= b)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  });
  const groups = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const url = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anonymous)'}  ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    groups.set(key, (groups.get(key) ?? 0) + us);
    total += us;
  }
  const packages = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    const pkg = packageOf(n.callFrame.url, name);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const idle = [...groups].filter(([k]) => k.startsWith('(idle)')).reduce((s, [, v]) => s + v, 0);
  const busy = total - idle;
  const rows = [...groups].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [
    `${windowsMs ? `samples during the load only (${windowsMs.length} window(s))` : 'whole profile'}: ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (idle excluded below)`,
    '| self ms | % of busy | function  location |',
    '|---:|---:|---|',
    ...rows.map(([k, us]) => `| ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)} | \`${k}\` |`),
    '',
    'Self time by origin:',
    '',
    '| self ms | % of busy | origin |',
    '|---:|---:|---|',
    ...[...packages]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([k, us]) => `| ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)} | ${k} |`),
  ];
  return `${lines.join('\n')}\n`;
}

/** node_modules/<package>, dist/<dir>, node: internals, or native/V8 for frames without a script. */
function packageOf(url: string, functionName: string): string {
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (!url) return '(native: syscalls, V8 builtins, (program))';
  if (url.startsWith('node:')) return 'node: internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return `node_modules/${m[1]}`;
  const d = /\/dist\/(src\/[^/]+|bench)/.exec(url);
  if (d) return `gatehouse ${d[1]}`;
  return url.startsWith('wasm') ? 'wasm (llhttp parser)' : url;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(summarizeProfile(process.argv[2], Number(process.argv[3] ?? 25)));
}
