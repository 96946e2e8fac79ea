import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startProcess, waitForPort, type Proc } from './processes.js';

/** nginx as the industry reference: a reverse proxy with upstream keep-alive, no logging. */

export function nginxVersion(): string | undefined {
  // `nginx -v` prints to stderr; it lives in /usr/sbin, which is not always on PATH.
  for (const bin of ['nginx', '/usr/sbin/nginx']) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    if (!r.error && text.includes('nginx')) return text.replace(/^nginx version:\s*/, '');
  }
  return undefined;
}

export function nginxBinary(): string {
  return spawnSync('nginx', ['-v']).error ? '/usr/sbin/nginx' : 'nginx';
}

/**
 * The start of every nginx configuration the repository runs (the bench's
 * reference proxy, the tests' load balancer): foreground, every file under
 * `prefix` (nginx otherwise writes to /var/lib/nginx and /run), no access log;
 * the caller continues inside `http {`.
 */
export function nginxPrelude(opts: { prefix: string; workers: number; connections: number }): string {
  return `daemon off;
master_process on;
worker_processes ${opts.workers};
pid ${opts.prefix}/nginx.pid;
error_log ${opts.prefix}/error.log warn;
events { worker_connections ${opts.connections}; }
http {
  access_log off;
  client_body_temp_path ${opts.prefix}/body;
  proxy_temp_path ${opts.prefix}/proxy;
  fastcgi_temp_path ${opts.prefix}/fastcgi;
  uwsgi_temp_path ${opts.prefix}/uwsgi;
  scgi_temp_path ${opts.prefix}/scgi;
`;
}

export function nginxConfig(opts: { port: number; upstreamPort: number; workers: number; prefix: string }): string {
  return `${nginxPrelude({ prefix: opts.prefix, workers: opts.workers, connections: 4096 })}  keepalive_requests 1000000;
  upstream bench_upstream {
    server 127.0.0.1:${opts.upstreamPort};
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${opts.port} reuseport;
    client_max_body_size 2g;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream request bodies like the Node proxies do; responses use nginx's
      # default in-memory buffering, never temp files.
      proxy_request_buffering off;
      proxy_max_temp_file_size 0;
    }
  }
}
`;
}

export async function startNginx(name: string, dir: string, upstreamPort: number, workers: number, cpus: string | undefined, register: (p: Proc) => void): Promise<{ proc: Proc; url: string }> {
  const prefix = join(dir, name);
  mkdirSync(prefix, { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxConfig({ port, upstreamPort, workers, prefix }));
  // -e: the error log before the config is read (the default path needs root).
  const { proc } = await startProcess(name, nginxBinary(), ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', conf], { cpus, onSpawn: register });
  try {
    await Promise.race([
      waitForPort(port),
      proc.exited.then((code) => {
        throw new Error(`nginx exited with ${code}: ${proc.lines.join('\n')}`);
      }),
    ]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { proc, url: `http://127.0.0.1:${port}` };
}
