import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequestRaw } from 'node:http';
import { connect } from 'node:net';
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
  /** The Admin API, when the gateway runs one (a writable store, or a file in `off` mode). */
  adminUrl?: string;
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
  /** node's own flags before the script, e.g. the launchers' NODE_FLAGS where memory behaviour is what a test checks. */
  nodeArgs?: readonly string[];
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
  const args = [...(opts.nodeArgs ?? []), MAIN, ...(opts.args ?? [])];
  if (opts.config !== undefined) args.push('--config', writeConfig(opts.config, opts.ext));
  const child = spawn(process.execPath, args, {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0',
      GATEHOUSE_STATUS_LISTEN: '127.0.0.1:0',
      GATEHOUSE_ADMIN_LISTEN: '127.0.0.1:0',
      // Every test process its own embedded store, never the project's data/ directory.
      GATEHOUSE_DATA_DIR: mkdtempSync(join(tmpdir(), 'gatehouse-data-')),
      GATEHOUSE_LOG_LEVEL: 'debug',
      // Tests stop gateways all the time and no load balancer needs time to notice: tests of the delay set it.
      GATEHOUSE_SHUTDOWN_DELAY: '0',
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
  gw.adminUrl = started.admin;
  return gw;
}

export interface RawResponse {
  status: number;
  headers: import('node:http').IncomingHttpHeaders;
  body: Buffer;
  text(): string;
  json(): any;
}

/**
 * One request with node:http and no keep-alive: the path is sent exactly as
 * given (no URL normalisation), so tests can send `..` or `%2F` verbatim.
 */
export function httpRequest(
  baseUrl: string,
  path: string,
  opts: { method?: string; headers?: import('node:http').OutgoingHttpHeaders | string[]; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const u = new URL(baseUrl);
  let headers = opts.headers;
  // node:http sends a DELETE/OPTIONS body without any length unless told one.
  if (opts.body !== undefined && !Array.isArray(headers) && headers?.['content-length'] === undefined) {
    headers = { ...headers, 'content-length': Buffer.byteLength(opts.body) };
  }
  return new Promise((resolvePromise, reject) => {
    const req = httpRequestRaw(
      { host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers, agent: false, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolvePromise({
            status: res.statusCode!,
            headers: res.headers,
            body,
            text: () => body.toString('utf8'),
            json: () => JSON.parse(body.toString('utf8')),
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Writes `bytes` on a fresh TCP connection and collects everything the server
 * sends until it closes the connection (or `timeoutMs` passes).
 */
export function rawExchange(baseUrl: string, bytes: string | Buffer, timeoutMs = 5_000): Promise<{ data: string; closed: boolean; error?: string }> {
  const u = new URL(baseUrl);
  return new Promise((resolvePromise) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const socket = connect(Number(u.port), u.hostname, () => socket.write(bytes));
    const t = setTimeout(() => {
      socket.destroy();
      resolvePromise({ data: Buffer.concat(chunks).toString('latin1'), closed: false, error });
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(t);
      resolvePromise({ data: Buffer.concat(chunks).toString('latin1'), closed: true, error });
    });
  });
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** A declarative config with one service `api` in front of `url`, and the given routes. */
export function oneService(url: string, routes: object[], name = 'api'): object {
  return { _format_version: '3.0', services: [{ name, url, routes }] };
}

/** An openid-connect plugin entry accepting bearer tokens from `issuer`, plus `config`. */
export function bearerPlugin(issuer: string, config: Record<string, unknown> = {}) {
  return { name: 'openid-connect', config: { issuer, auth_methods: ['bearer'], ...config } };
}
