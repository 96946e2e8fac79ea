import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** Root of the compiled project (dist/test/helpers → project root). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const MAIN = join(PROJECT_ROOT, 'dist/src/main.js');

export interface GatewayProcess {
  proxyUrl: string;
  statusUrl: string;
  child: ChildProcess;
  /** Every stdout/stderr line so far (JSON log lines and plain messages). */
  lines: string[];
  /** Parsed JSON log lines so far. */
  logs(): Record<string, any>[];
  /** Resolves with the first JSON log line (already seen or future) that satisfies `pred`. */
  waitForLog(pred: (l: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  /** A declarative config object (written as YAML) or raw file text; omit for the demo. */
  config?: object | string;
  /** File extension for raw text configs. */
  ext?: '.yaml' | '.json';
  env?: Record<string, string | undefined>;
  args?: string[];
  /** Wait for "gatehouse started" (default) or only for the process to exit. */
  expectStart?: boolean;
  timeoutMs?: number;
}

export function writeConfig(config: object | string, ext = '.yaml'): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  const file = join(dir, `kong${ext}`);
  writeFileSync(file, typeof config === 'string' ? config : ext === '.json' ? JSON.stringify(config) : stringify(config));
  return file;
}

/**
 * Starts the built gateway as its own process (exactly as `npm start` does),
 * on free loopback ports (port 0; the real ports come from the start-up log line).
 */
export async function startGateway(opts: StartOptions = {}): Promise<GatewayProcess> {
  const args = [MAIN, ...(opts.args ?? [])];
  if (opts.config !== undefined) args.push('--config', writeConfig(opts.config, opts.ext));
  const child = spawn(process.execPath, args, {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0',
      GATEHOUSE_STATUS_LISTEN: '127.0.0.1:0',
      GATEHOUSE_LOG_LEVEL: 'debug',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const parsed: Record<string, any>[] = [];
  const waiters = new Set<{ pred: (l: Record<string, any>) => boolean; resolve: (l: Record<string, any>) => void }>();
  const onData = (buf: Buffer, carry: { rest: string }) => {
    const text = carry.rest + buf.toString('utf8');
    const parts = text.split('\n');
    carry.rest = parts.pop()!;
    for (const line of parts) {
      if (!line.trim()) continue;
      lines.push(line);
      if (process.env.GATEHOUSE_TEST_ECHO) process.stderr.write(`[gw] ${line}\n`);
      try {
        const json = JSON.parse(line);
        parsed.push(json);
        for (const w of waiters) if (w.pred(json)) {
          waiters.delete(w);
          w.resolve(json);
        }
      } catch {
        /* plain text (start-up errors) */
      }
    }
  };
  const out = { rest: '' };
  const err = { rest: '' };
  child.stdout!.on('data', (b: Buffer) => onData(b, out));
  child.stderr!.on('data', (b: Buffer) => onData(b, err));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));

  const waitForLog: GatewayProcess['waitForLog'] = (pred, timeoutMs = 15_000) => {
    const seen = parsed.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolveLog, reject) => {
      const w = { pred, resolve: (l: Record<string, any>) => (clearTimeout(t), resolveLog(l)) };
      const t = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`log line not seen within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
      }, timeoutMs);
      waiters.add(w);
    });
  };

  const gw: GatewayProcess = {
    proxyUrl: '',
    statusUrl: '',
    child,
    lines,
    logs: () => parsed,
    waitForLog,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (opts.expectStart === false) return gw;
  const started = await Promise.race([
    waitForLog((l) => l.msg === 'gatehouse started', opts.timeoutMs ?? 30_000),
    exited.then((code) => {
      throw new Error(`gateway exited with ${code} before starting:\n${lines.join('\n')}`);
    }),
  ]);
  gw.proxyUrl = started.proxy;
  gw.statusUrl = started.status;
  return gw;
}
