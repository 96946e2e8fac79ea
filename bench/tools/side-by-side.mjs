// The setup shared by the side-by-side tools (ab-same-machine.mjs, profile-diff.mjs): run from the repository root after
// a build; scratch files go to .ab/ (git-ignored). What they measure runs alone on CPU 0; the upstream, wrk and this
// process on CPU 1 — the pinning of the bench itself (bench/README.md, "How it is measured").
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

const root = process.cwd();
const { startFakeIssuer } = await import(`${root}/dist/bench/issuer.js`);
const { cpuSeconds } = await import(`${root}/dist/bench/procstat.js`);
const { NODE_FLAGS } = await import(`${root}/dist/src/runtime/node-flags.js`);
export { cpuSeconds, NODE_FLAGS };

/**
 * Resolves once the gateway on `port` answers /health/live on its status port (port + 1): a cold start takes
 * seconds, and a dozen gateways starting together on one core take far longer.
 */
export async function gatewayReady(port, name = String(port)) {
  for (let t = 0; ; t++) {
    if (await fetch(`http://127.0.0.1:${port + 1}/health/live`).then((r) => r.ok, () => false)) return;
    if (t > 600) throw new Error(`${name}: not ready after 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A fake issuer, the bench upstream on CPU 1, and a gateway config with two routes on it: `/` (no plugin) and `/jwt`
 * (`openid-connect`, bearer, `scopes_required: [bench_scope]`), plus a wrk script that sends one RS256 token.
 */
export async function sideBySide(scratch = '.ab') {
  mkdirSync(scratch, { recursive: true });
  const issuer = await startFakeIssuer();
  const upstream = spawn('taskset', ['-c', '1', process.execPath, 'dist/bench/upstream.js'], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => upstream.kill());
  const upstreamPort = await new Promise((r) => upstream.stdout.once('data', (d) => r(JSON.parse(d).port)));
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  const config = `${scratch}/side-by-side.json`;
  writeFileSync(config, JSON.stringify({ _format_version: '3.0', services: [{ name: 'b', url: upstreamUrl, routes: [
    { name: 'plain', paths: ['/'], strip_path: false },
    { name: 'jwt', paths: ['/jwt'], strip_path: false, plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], scopes_required: ['bench_scope'] } }] },
  ] }] }));
  const tokenScript = `${scratch}/side-by-side-token.lua`;
  writeFileSync(tokenScript, `wrk.headers["Authorization"] = ${JSON.stringify(`Bearer ${await issuer.sign('RS256', 'x')}`)}`);
  const noScript = `${scratch}/side-by-side-none.lua`;
  writeFileSync(noScript, '');
  const uploadScript = `${scratch}/side-by-side-upload.lua`;
  writeFileSync(uploadScript, 'wrk.method = "POST"\nwrk.body = string.rep("u", 1048576)\nwrk.headers["Content-Type"] = "application/octet-stream"\n');

  return {
    upstreamUrl,
    config,
    /** The wrk script for a path: the token for /jwt… paths, a 1 MiB POST for /upload (case 8-up), nothing otherwise. */
    scriptFor: (path) => (path.startsWith('/jwt') ? tokenScript : path.startsWith('/upload') ? uploadScript : noScript),
    /**
     * A gateway from `dist` (dist or a copy such as .ab/base) on CPU 0 with the launcher's NODE_FLAGS, listening on
     * `port` (status listener on port + 1), the Admin API off (two gateways would want one port).
     */
    gateway(dist, port, { nodeArgs = [], env = {}, stdout = 'inherit' } = {}) {
      return spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, ...nodeArgs, `${dist}/src/main.js`, '--config', config], {
        stdio: ['ignore', stdout, 'inherit'],
        env: {
          ...process.env,
          GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=67108864',
          GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}`,
          GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${port + 1}`,
          GATEHOUSE_LOG_LEVEL: 'warn',
          GATEHOUSE_ADMIN_LISTEN: 'off',
          ...env,
        },
      });
    },
    /** The bare proxy from `dist` on CPU 0; resolves with the process and its port. */
    async bare(dist, { nodeArgs = [] } = {}) {
      const proc = spawn('taskset', ['-c', '0', process.execPath, ...NODE_FLAGS, ...nodeArgs, `${dist}/bench/bare-proxy.js`, upstreamUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
      const port = await new Promise((r) => proc.stdout.once('data', (d) => r(JSON.parse(d).port)));
      return { proc, port };
    },
    /** Resolves once the gateway on `port` answers /health/live (gatewayReady). */
    ready: gatewayReady,
    /**
     * wrk on CPU 1, 1 thread, 50 keep-alive connections; returns the request count and wrk's report. `scriptPath`
     * chooses the script when it differs from the path requested (the plain route fed the bearer route's requests).
     */
    wrk(port, path, secs, scriptPath = path) {
      const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${secs}s`, '-s', this.scriptFor(scriptPath), `http://127.0.0.1:${port}${path}`], { encoding: 'utf8' });
      return { requests: Number(/(\d+) requests in/.exec(out)[1]), out };
    },
    async close() {
      upstream.kill();
      await issuer.close();
    },
  };
}
