import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { PROJECT_ROOT } from './gateway.js';

/**
 * Runs the gateway the way the README tells a newcomer to: `npm start` from the
 * project root. For the end-to-end test of the built-in demo.
 *
 * Two differences, both deliberate:
 * - `npm start --ignore-scripts`: `npm start` first runs the `prestart` script,
 *   which rebuilds dist/ (`rm -rf dist && tsc`) and would pull the compiled
 *   files out from under every other test running at the same time. npm's
 *   --ignore-scripts skips pre/post scripts but still runs the script the
 *   command names, so this runs exactly the `start` script,
 *   `node dist/src/main.js` (the test runs from dist/, so it is built already).
 * - Process tree: npm runs the script through `sh -c`, and Debian's sh (dash)
 *   does not exec the last command, so the tree is npm → sh → node. Signalling
 *   npm alone kills sh and leaves node running as an orphan. The process is
 *   therefore started in its own process group (`detached: true`, npm is the
 *   group leader) and cleaned up by signalling the whole group.
 */

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
  cmdline: string[];
}

export interface NpmStart {
  /** The npm process (leader of its own process group: pgid === npm.pid). */
  npm: ChildProcess;
  /** Every non-empty stdout/stderr line so far, in arrival order per stream. */
  lines: string[];
  /** All output so far as one string (stdout and stderr interleaved). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logs(): Record<string, any>[];
  /** The first JSON log line (already seen or future) that satisfies `pred`. */
  waitForLog(pred: (l: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  /** Resolves once the output contains a match of `re`. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** npm's own exit. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Live (non-zombie) processes of npm's process group. */
  group(): ProcInfo[];
  /** The `node dist/src/main.js` process npm started, if it is alive. */
  gatewayProcess(): ProcInfo | undefined;
  /** SIGKILLs whatever is left of the process group and waits until it is gone; resolves with what was still alive before. */
  cleanup(timeoutMs?: number): Promise<ProcInfo[]>;
}

export function startNpm(opts: { env: NodeJS.ProcessEnv; args?: string[] }): NpmStart {
  const npm = spawn('npm', ['start', '--ignore-scripts', ...(opts.args ? ['--', ...opts.args] : [])], {
    cwd: PROJECT_ROOT,
    env: opts.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pgid = npm.pid!;
  const lines: string[] = [];
  const parsed: Record<string, any>[] = [];
  let text = '';
  const waiters = new Set<() => void>();

  const onData = (buf: Buffer, carry: { rest: string }) => {
    const chunk = buf.toString('utf8');
    text += chunk;
    const parts = (carry.rest + chunk).split('\n');
    carry.rest = parts.pop()!;
    for (const line of parts) {
      if (!line.trim()) continue;
      lines.push(line);
      if (process.env.GATEHOUSE_TEST_ECHO) process.stderr.write(`[npm] ${line}\n`);
      if (line.startsWith('{')) {
        try {
          parsed.push(JSON.parse(line));
        } catch {
          /* not a log line */
        }
      }
    }
    for (const w of [...waiters]) w();
  };
  const out = { rest: '' };
  const err = { rest: '' };
  npm.stdout!.on('data', (b: Buffer) => onData(b, out));
  npm.stderr!.on('data', (b: Buffer) => onData(b, err));
  // The pipes stay open as long as any process of the group holds them: never let them keep the test alive.
  (npm.stdout as any).unref?.();
  (npm.stderr as any).unref?.();

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    npm.once('exit', (code, signal) => resolve({ code, signal })),
  );

  /** Resolves with `find()`'s first non-undefined answer, re-checked on every output chunk. */
  const waitFor = <T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> => {
    const now = find();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found === undefined) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what} not seen within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`));
      }, timeoutMs);
      waiters.add(check);
    });
  };

  const group = () => listProcesses().filter((p) => p.pgrp === pgid && p.state !== 'Z');

  return {
    npm,
    lines,
    output: () => text,
    logs: () => parsed,
    waitForLog: (pred, timeoutMs = 15_000) => waitFor(() => parsed.find(pred), 'log line', timeoutMs),
    waitForOutput: (re, timeoutMs = 15_000) => waitFor(() => text.match(re) ?? undefined, `output ${re}`, timeoutMs),
    exited,
    group,
    gatewayProcess: () => group().find((p) => p.cmdline.some((a) => a.endsWith('dist/src/main.js')) && /(^|\/)node$/.test(p.cmdline[0] ?? '')),
    async cleanup(timeoutMs = 10_000) {
      const leftover = group();
      if (leftover.length) {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      const deadline = Date.now() + timeoutMs;
      while (group().length && Date.now() < deadline) await sleep(50);
      if (npm.exitCode === null && npm.signalCode === null) await exited;
      return leftover;
    },
  };
}

/** Every process visible in /proc (Linux), with its parent, process group, state and argv. */
export function listProcesses(): ProcInfo[] {
  const result: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      result.push({ pid: Number(entry), state: fields[0], ppid: Number(fields[1]), pgrp: Number(fields[2]), cmdline });
    } catch {
      /* exited while we looked */
    }
  }
  return result;
}

export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
