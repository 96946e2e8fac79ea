import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisServer {
  host: string;
  port: number;
  child: ChildProcess;
  /** Output so far (for failure messages). */
  lines: string[];
  /** Stops the server (SIGTERM) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Freezes the server (SIGSTOP): its port still accepts connections (the
   * kernel completes the handshake) but nothing is answered, like a hung or
   * partitioned Redis rather than one that refuses.
   */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  /** Starts a fresh, empty server on the same port (after stop()). */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

const REDIS_BIN = process.env.REDIS_SERVER_PATH ?? 'redis-server';
const READY = /Ready to accept connections/;

/**
 * A real `redis-server` (Debian package, see scripts/install-test-deps.sh) on a
 * free loopback port, in-memory only (`--save '' --appendonly no`), working in a
 * temporary directory. Redis cannot listen on port 0, so a port that was free a
 * moment ago is used, and another is tried if it was taken meanwhile.
 */
export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-redis-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      const server: RedisServer = {
        host: '127.0.0.1',
        port,
        child: undefined as unknown as ChildProcess,
        lines: [],
        async stop() {
          const child = server.child;
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          child.kill('SIGCONT'); // a paused server handles SIGTERM only once it runs
          await exited;
        },
        pause() {
          server.child.kill('SIGSTOP');
        },
        resume() {
          server.child.kill('SIGCONT');
        },
        async restart() {
          await server.stop();
          server.child = await spawnRedis(port, dir, server.lines);
        },
        async close() {
          await server.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
      server.child = await spawnRedis(port, dir, server.lines);
      return server;
    } catch (err) {
      lastError = err;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

function spawnRedis(port: number, dir: string, lines: string[]): Promise<ChildProcess> {
  const child = spawn(
    REDIS_BIN,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes', '--loglevel', 'notice'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not become ready on port ${port}:\n${lines.join('\n')}`));
    }, 10_000);
    const onData = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        lines.push(line);
        if (READY.test(line)) {
          clearTimeout(timer);
          resolve(child);
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${REDIS_BIN} (run scripts/install-test-deps.sh): ${err.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code} before it was ready on port ${port}:\n${lines.join('\n')}`));
    });
  });
}
