import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { get } from 'node:http';
import { join } from 'node:path';
import { nginxPrelude } from '../../bench/nginx.js';
import { freePort, tryConnect } from './ports.js';

export interface LoadBalancer {
  /** `http://127.0.0.1:<port>`: what clients call. */
  url: string;
  port: number;
  child: ChildProcess;
  /** nginx's error log so far (upstream failures and retries are logged there at `warn`/`error`). */
  errorLog(): string;
  /** Backends currently marked `down` by the readiness poller (ports), and how many reloads it made. */
  readiness(): { down: number[]; reloads: number };
  /** Stops nginx (SIGQUIT: graceful) and removes its directory. Safe to call twice. */
  close(): Promise<void>;
}

export interface LoadBalancerOptions {
  /** Passive health check: failed attempts before a backend is skipped for `failTimeoutS` (nginx `max_fails`). Default 1. */
  maxFails?: number;
  /** nginx `fail_timeout` in seconds: how long a failed backend is skipped, and the window `maxFails` counts in. Default 2. */
  failTimeoutS?: number;
  /**
   * How long nginx keeps an idle connection to a backend (the upstream block's
   * `keepalive_timeout`), in ms. Default 500: it must be shorter than the
   * gateways' GATEHOUSE_SHUTDOWN_DELAY, so that when a stopping gateway closes
   * its idle connections nginx holds none of them any more; otherwise a POST
   * written on one at that moment is lost (nginx cannot retry a request it sent).
   */
  idleTimeoutMs?: number;
  /**
   * Each backend's readiness URL (same order as the backends): polled every
   * 100 ms, and a backend that does not answer 200 is marked `down` and nginx
   * reloaded (SIGHUP: old workers finish what they serve), the way an ingress
   * controller follows Kubernetes endpoints. Without it only the passive
   * checks take a stopping backend out, by failing requests.
   */
  readinessUrls?: string[];
}

/** One readiness probe: 200 within 500 ms. */
function probe(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Debian installs nginx in /usr/sbin, which is not always on PATH. */
function nginxBinary(): string {
  for (const bin of [process.env.NGINX_PATH, 'nginx', '/usr/sbin/nginx']) {
    if (bin && !spawnSync(bin, ['-v']).error) return bin;
  }
  throw new Error('cannot run nginx (run scripts/install-test-deps.sh)');
}

/**
 * The nginx configuration of a plain round-robin load balancer in front of
 * `backends` (loopback ports), as an operator would put one in front of
 * gateway replicas. nginx OSS has no active health checks: a backend is taken
 * out by the passive ones (`max_fails`/`fail_timeout`), and a request that
 * found a backend refusing connections, resetting one, or answering 503 (a
 * draining or store-less replica) is tried on the next (`proxy_next_upstream`;
 * nginx never retries a non-idempotent request that was already sent).
 * Every answer says which backend(s) served it in `X-Upstream-Addr`.
 */
export function loadBalancerConfig(opts: { port: number; backends: number[]; prefix: string; down?: ReadonlySet<number> } & LoadBalancerOptions): string {
  const maxFails = opts.maxFails ?? 1;
  const failTimeout = opts.failTimeoutS ?? 2;
  const idle = opts.idleTimeoutMs ?? 500;
  const servers = opts.backends.map((p) => `    server 127.0.0.1:${p} max_fails=${maxFails} fail_timeout=${failTimeout}s${opts.down?.has(p) ? ' down' : ''};`).join('\n');
  return `${nginxPrelude({ prefix: opts.prefix, workers: 1, connections: 1024 })}  upstream gatehouse {
${servers}
    keepalive 32;
    keepalive_timeout ${idle}ms;
  }
  # No keep-alive towards clients: a reload then never closes a client's idle connection
  # under a request it is sending (old workers only finish the requests they have).
  keepalive_timeout 0;
  server {
    listen 127.0.0.1:${opts.port};
    location / {
      proxy_pass http://gatehouse;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_next_upstream error timeout http_503;
      proxy_next_upstream_tries ${opts.backends.length};
      proxy_connect_timeout 1s;
      proxy_read_timeout 15s;
      add_header X-Upstream-Addr $upstream_addr always;
    }
  }
}
`;
}

/**
 * Debian's nginx as a round-robin load balancer on a free loopback port, in
 * the foreground (`daemon off`), with its prefix, configuration, pid file and
 * logs in a temporary directory (so it runs without root).
 */
export async function startLoadBalancer(backends: number[], opts: LoadBalancerOptions = {}): Promise<LoadBalancer> {
  const bin = nginxBinary();
  const prefix = mkdtempSync(join(tmpdir(), 'gatehouse-nginx-'));
  mkdirSync(join(prefix, 'logs'));
  const conf = join(prefix, 'nginx.conf');
  const errorLogFile = join(prefix, 'error.log');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(conf, loadBalancerConfig({ port, backends, prefix, ...opts }));
    // -e: the error log before the config is read (the default path needs root).
    const child = spawn(bin, ['-p', prefix, '-e', errorLogFile, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stdout!.on('data', (b: Buffer) => output.push(b.toString('utf8')));
    child.stderr!.on('data', (b: Buffer) => output.push(b.toString('utf8')));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null) {
      if ((await tryConnect(url)) === 'connected') {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const errorLog = () => {
      try {
        return readFileSync(errorLogFile, 'utf8');
      } catch {
        return '';
      }
    };
    if (up) {
      let closed = false;
      const down = new Set<number>();
      let reloads = 0;
      let poller: NodeJS.Timeout | undefined;
      if (opts.readinessUrls) {
        const urls = opts.readinessUrls;
        let busy = false;
        poller = setInterval(async () => {
          if (busy || closed) return;
          busy = true;
          try {
            const ready = await Promise.all(urls.map((u) => probe(u)));
            const next = new Set(backends.filter((_, k) => !ready[k]));
            if (next.size !== down.size || [...next].some((p) => !down.has(p))) {
              down.clear();
              for (const p of next) down.add(p);
              writeFileSync(conf, loadBalancerConfig({ port, backends, prefix, ...opts, down }));
              reloads++;
              child.kill('SIGHUP');
            }
          } finally {
            busy = false;
          }
        }, 100);
      }
      return {
        url,
        port,
        child,
        errorLog,
        readiness: () => ({ down: [...down], reloads }),
        async close() {
          if (closed) return;
          closed = true;
          clearInterval(poller);
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGQUIT');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            await exited;
            clearTimeout(timer);
          }
          rmSync(prefix, { recursive: true, force: true });
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    lastError = new Error(`nginx did not listen on ${url}: ${output.join('')}${errorLog()}`);
  }
  rmSync(prefix, { recursive: true, force: true });
  throw lastError;
}
