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

export function summarizeProfile(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0)));
  const groups = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const url = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anonymous)'}  ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    groups.set(key, (groups.get(key) ?? 0) + us);
    total += us;
  }
  const idle = [...groups].filter(([k]) => k.startsWith('(idle)')).reduce((s, [, v]) => s + v, 0);
  const busy = total - idle;
  const rows = [...groups].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [
    `profile ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (idle excluded below)`,
    '| self ms | % of busy | function  location |',
    '|---:|---:|---|',
    ...rows.map(([k, us]) => `| ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)} | \`${k}\` |`),
  ];
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(summarizeProfile(process.argv[2], Number(process.argv[3] ?? 25)));
}
