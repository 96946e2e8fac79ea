import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { PostgresSettings } from '../../src/config/gateway-settings.js';
import { freePort } from './ports.js';

/**
 * The machine's PostgreSQL (127.0.0.1:5432, trust authentication for user
 * `postgres`, see scripts/install-test-deps.sh). Tests never share a database:
 * each creates its own with a unique name and drops it.
 */
export const SHARED_PG = {
  host: process.env.GATEHOUSE_TEST_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.GATEHOUSE_TEST_PG_PORT ?? 5432),
  user: process.env.GATEHOUSE_TEST_PG_USER ?? 'postgres',
};

export interface TestDatabase {
  name: string;
  /** Settings for the store (migrations `auto`, 2 s timeout). */
  settings: PostgresSettings;
  /** The same as GATEHOUSE_PG_* variables, for a gateway child process. */
  env: Record<string, string>;
  /** A plain client on the database, for assertions and for writing behind the store's back. */
  connect(): Promise<pg.Client>;
  /** Drops the database (terminating connections still open on it). */
  drop(): Promise<void>;
}

export function pgSettings(host: string, port: number, database: string, user = 'postgres'): PostgresSettings {
  return { host, port, user, password: '', database, ssl: false, sslVerify: false, timeoutMs: 2000, migrations: 'auto' };
}

export function pgEnv(s: PostgresSettings): Record<string, string> {
  return {
    GATEHOUSE_PG_HOST: s.host,
    GATEHOUSE_PG_PORT: String(s.port),
    GATEHOUSE_PG_USER: s.user,
    GATEHOUSE_PG_PASSWORD: s.password,
    GATEHOUSE_PG_DATABASE: s.database,
    GATEHOUSE_PG_TIMEOUT: String(s.timeoutMs),
    GATEHOUSE_PG_MIGRATIONS: s.migrations,
  };
}

async function admin<T>(host: string, port: number, user: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ host, port, user, database: 'postgres', connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A new empty database on `server` (the shared one by default) named `gatehouse_test_<random>`. */
export async function createTestDatabase(server: { host: string; port: number; user?: string } = SHARED_PG): Promise<TestDatabase> {
  const user = server.user ?? 'postgres';
  const name = `gatehouse_test_${randomBytes(6).toString('hex')}`;
  await admin(server.host, server.port, user, (c) => c.query(`CREATE DATABASE ${name}`));
  const settings = pgSettings(server.host, server.port, name, user);
  return {
    name,
    settings,
    env: pgEnv(settings),
    async connect() {
      const client = new pg.Client({ host: server.host, port: server.port, user, database: name, connectionTimeoutMillis: 5000 });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
    async drop() {
      await admin(server.host, server.port, user, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export interface PrivatePostgres {
  host: string;
  port: number;
  /** Output of the server so far (for failure messages). */
  lines: string[];
  /** Fast shutdown (SIGINT: clients are disconnected), waits for the exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and data directory (after stop()): the data is kept. */
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** The newest server binaries Debian installed (`/usr/lib/postgresql/<major>/bin`), or PG_BIN_DIR. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) if (existsSync(join(root, major, 'bin', 'initdb'))) return join(root, major, 'bin');
  throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/install-test-deps.sh)');
}

/**
 * PostgreSQL refuses to run as root; when the tests do (CI here runs as root),
 * initdb and the server run as the `postgres` OS user, which Debian's package
 * creates. Otherwise they run as the current user.
 */
function serverIdentity(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root and there is no "postgres" user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * A PostgreSQL server of the test's own, in a temporary directory on a free
 * loopback port, so a test can stop it and start it again (the shared server
 * must never be stopped). fsync is off: the data only needs to survive a clean
 * stop. Trust authentication, user `postgres`, listening on 127.0.0.1 only.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const identity = serverIdentity();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pg-'));
  if (identity) chownSync(dir, identity.uid, identity.gid);
  const data = join(dir, 'data');
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
    ...identity,
    encoding: 'utf8',
  });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status ?? init.error?.message}):\n${init.stdout}\n${init.stderr}`);
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: PrivatePostgres = {
    host: '127.0.0.1',
    port,
    lines: [],
    async start() {
      child = await spawnPostgres(bin, data, dir, port, identity, server.lines);
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGINT');
      await exited;
    },
    async close() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return server;
}

function spawnPostgres(
  bin: string,
  data: string,
  socketDir: string,
  port: number,
  identity: { uid: number; gid: number } | undefined,
  lines: string[],
): Promise<ChildProcess> {
  const child = spawn(
    join(bin, 'postgres'),
    ['-D', data, '-p', String(port), '-k', socketDir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'shared_buffers=16MB', '-c', 'max_connections=30'],
    { ...identity, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`postgres did not become ready on port ${port}:\n${lines.join('\n')}`));
    }, 30_000);
    const onData = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        lines.push(line);
        if (/database system is ready to accept connections/.test(line)) {
          clearTimeout(timer);
          resolve(child);
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${bin}/postgres: ${err.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`postgres exited with ${code} before it was ready on port ${port}:\n${lines.join('\n')}`));
    });
  });
}

export interface CuttableProxy {
  port: number;
  /**
   * `pass`: forwards both ways. `refuse`: every open connection is reset and new
   * ones are closed at once (a database that went away). `blackhole`: connections
   * stay open but nothing is forwarded either way (a partition, a hung server).
   */
  mode: 'pass' | 'refuse' | 'blackhole';
  setMode(mode: 'pass' | 'refuse' | 'blackhole'): void;
  close(): Promise<void>;
}

/** A TCP proxy on a free loopback port in front of `targetPort` whose link can be cut: one client's view of an outage. */
export async function startCuttableProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<CuttableProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const proxy: CuttableProxy = {
    port: 0,
    mode: 'pass',
    setMode(mode) {
      proxy.mode = mode;
      if (mode === 'refuse') for (const [a, b] of pairs) a.destroy(), b.destroy();
    },
    close: async () => undefined,
  };
  const server = createServer((client) => {
    if (proxy.mode === 'refuse') return void client.destroy();
    const upstream = connect(targetPort, targetHost);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (proxy.mode === 'pass' && to.writable) to.write(chunk);
      });
      from.on('close', () => {
        pairs.delete(pair);
        to.destroy();
      });
      from.on('error', () => to.destroy());
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.close = () =>
    new Promise<void>((r) => {
      for (const [a, b] of pairs) a.destroy(), b.destroy();
      server.close(() => r());
    });
  return proxy;
}
