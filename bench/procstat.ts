import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/**
 * Per-process measurements from /proc (Linux): CPU time (utime + stime, in
 * clock ticks of 10 ms) and peak resident memory (VmHWM). The process tree is
 * summed, so nginx's master + workers and a cluster's primary + workers count
 * as one proxy.
 */

const CLOCK_TICKS_PER_S = 100;

function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: split after its closing parenthesis.
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The pid and every descendant currently alive. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (!f) continue;
    const ppid = Number(f[1]);
    if (!parents.has(ppid)) parents.set(ppid, []);
    parents.get(ppid)!.push(Number(entry));
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of parents.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** CPU seconds (user + system) used so far by the process tree. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const f = statFields(p);
    // After the command: state(0) ppid(1) ... utime is field 14 overall → index 11 here, stime 12.
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLOCK_TICKS_PER_S;
}

function statusKb(pid: number, key: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak RSS in MiB since start (or since the last resetPeakRss), summed over the tree. */
export function peakRssMiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKb(p, 'VmHWM'), 0) / 1024;
}

/** Current RSS in MiB, summed over the tree. */
export function rssMiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKb(p, 'VmRSS'), 0) / 1024;
}

/**
 * Resets VmHWM to the current RSS (writing 5 to clear_refs, Linux ≥ 4.0), so
 * the peak measured next belongs to one case, not to the process's whole life.
 * Returns false where that is not permitted; the peak is then lifetime.
 */
export function resetPeakRss(pid: number): boolean {
  let ok = true;
  for (const p of processTree(pid)) {
    try {
      writeFileSync(`/proc/${p}/clear_refs`, '5');
    } catch {
      ok = false;
    }
  }
  return ok;
}
