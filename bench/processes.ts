import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from '../src/demo/free-port.js';
export { freePort };

/** Child processes of the bench: spawned (optionally pinned with taskset), waited for, stopped. */

export interface Proc {
  name: string;
  /** performance.now() when spawned (to place profile samples). */
  spawnedAt: number;
  child: ChildProcess;
  pid: number;
  /** stdout + stderr lines so far (for error reports). */
  lines: string[];
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

let tasksetAvailable: boolean | undefined;
export async function hasTaskset(): Promise<boolean> {
  tasksetAvailable ??= await new Promise<boolean>((resolve) => {
    const c = spawn('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    c.on('error', () => resolve(false));
    c.on('exit', (code) => resolve(code === 0));
  });
  return tasksetAvailable;
}

/**
 * Spawns `cmd args`, pinned to `cpus` when given and taskset works (taskset
 * execs the command, so the pid is the command's own). Resolves once a stdout
 * or stderr line satisfies `ready`, with that line parsed as JSON when possible.
 */
export async function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: {
    cpus?: string;
    env?: NodeJS.ProcessEnv;
    ready?: (line: string) => boolean;
    timeoutMs?: number;
    /** Send stdout/stderr to this file instead of a pipe, so reading the output costs the bench nothing while it measures. */
    logFile?: string;
    /** Called as soon as the process exists, so the caller can stop it even if it never becomes ready. */
    onSpawn?: (proc: Proc) => void;
  },
): Promise<{ proc: Proc; line: string }> {
  const pinned = opts.cpus && (await hasTaskset());
  const fd = opts.logFile ? openSync(opts.logFile, 'w') : undefined;
  const stdio: StdioOptions = fd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', fd, fd];
  const child = pinned
    ? spawn('taskset', ['-c', opts.cpus!, cmd, ...args], { env: opts.env ?? process.env, stdio })
    : spawn(cmd, args, { env: opts.env ?? process.env, stdio });
  if (fd !== undefined) closeSync(fd);
  const lines: string[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const proc: Proc = {
    name,
    spawnedAt: performance.now(),
    child,
    pid: child.pid!,
    lines,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  opts.onSpawn?.(proc);
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${opts.timeoutMs ?? 30_000} ms:\n${lines.slice(-20).join('\n')}`)), opts.timeoutMs ?? 30_000);
    let done = !opts.ready;
    const onLine = (l: string) => {
      lines.push(l);
      if (lines.length > 2000) lines.splice(0, 1000);
      if (!done && opts.ready!(l)) {
        done = true;
        clearTimeout(timer);
        resolve(l);
      }
    };
    if (opts.logFile) {
      // Poll the file until the ready line shows up; later lines stay in the file.
      let seen = 0;
      const poll = setInterval(() => {
        let all: string[];
        try {
          all = readFileSync(opts.logFile!, 'utf8').split('\n');
        } catch {
          return clearInterval(poll);
        }
        const complete = all.slice(seen, all.length - 1);
        seen = all.length - 1;
        for (const l of complete) if (l.trim()) onLine(l);
        if (done) clearInterval(poll);
      }, 50);
      exited.then(() => clearInterval(poll));
    }
    for (const stream of opts.logFile ? [] : [child.stdout!, child.stderr!]) {
      let rest = '';
      stream.on('data', (b: Buffer) => {
        const parts = (rest + b.toString('utf8')).split('\n');
        rest = parts.pop()!;
        for (const p of parts) if (p.trim()) onLine(p);
      });
    }
    if (done) {
      clearTimeout(timer);
      resolve('');
    }
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exited.then((code) => {
      if (done) return;
      clearTimeout(timer);
      if (opts.logFile) {
        try {
          lines.push(...readFileSync(opts.logFile, 'utf8').split('\n').filter(Boolean).slice(-20));
        } catch {
          /* already removed */
        }
      }
      reject(new Error(`${name} exited with ${code} before it was ready:\n${lines.slice(-20).join('\n')}`));
    });
  });
  return { proc, line };
}


/** Resolves when something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => (sock.destroy(), resolve(true)));
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
