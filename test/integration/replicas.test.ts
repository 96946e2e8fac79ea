import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { DEMO_USERS, startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { sessionCookieAfterLogin } from '../helpers/idp-login.js';
import { startLoadBalancer, type LoadBalancer } from '../helpers/nginx.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Several instances are one gateway: three gateway processes (A, B, C) share
 * one Redis (sessions, rate-limit counters) and one PostgreSQL database (the
 * configuration, GATEHOUSE_DATABASE=postgres), behind nginx round-robin on
 * loopback, as a team deploys replicas behind a load balancer.
 */

const RATE_LIMIT = 30;
/** Clients of the steady load during the rolling restart, and its bounds. */
const LOAD_CLIENTS = 8;
const LOAD_MAX_REQUESTS = 40_000;
const LOAD_MAX_MS = 120_000;
/** Each client pauses this long between requests: steady load that leaves CPU for the restarting instances. */
const LOAD_PAUSE_MS = 5;

interface Instance {
  name: 'A' | 'B' | 'C';
  proxyPort: number;
  statusPort: number;
  adminPort: number;
  base: string;
  gw: GatewayProcess;
}

describe('three gateways behind nginx, one Redis, one PostgreSQL', () => {
  let redis: RedisServer;
  let probe: Redis;
  let db: TestDatabase;
  let upstream: Upstream;
  let issuer: FakeIssuer;
  let idp: DemoIdp;
  let chromium: TestBrowser;
  let lb: LoadBalancer;
  const instances: Instance[] = [];
  const client = gatehouseClient();
  const user = DEMO_USERS.find((u) => u.username === 'Blog_with_scope')!;
  /** One keep-alive pool per test run, as a real client of the load balancer. */
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: LOAD_CLIENTS * 2 });

  const byName = (n: Instance['name']) => instances.find((i) => i.name === n)!;
  const envOf = (i: Omit<Instance, 'gw' | 'base'>) => ({
    ...db.env,
    GATEHOUSE_DATABASE: 'postgres',
    GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${i.proxyPort}`,
    GATEHOUSE_STATUS_LISTEN: `127.0.0.1:${i.statusPort}`,
    GATEHOUSE_ADMIN_LISTEN: `127.0.0.1:${i.adminPort}`,
    // Long enough for the load balancer to see readiness turn 503 and stop sending, short for the test.
    GATEHOUSE_SHUTDOWN_DELAY: '1',
    GATEHOUSE_LOG_LEVEL: 'info',
  });

  /** A GET (or `method` with `body`) to any base URL; never throws for an HTTP answer. */
  async function get(base: string, path: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'GET', body?: string) {
    const res = await request(base + path, { method, body, headers, dispatcher: agent, headersTimeout: 15_000, bodyTimeout: 15_000 });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const session = (cookie: string) => ({ cookie: `session=${cookie}`, accept: 'application/json' });
  /** The instance that answered through nginx: the last address of X-Upstream-Addr ("a, b" after a retry). */
  const servedBy = (headers: Record<string, string | string[] | undefined>) => {
    const addr = String(headers['x-upstream-addr'] ?? '').split(',').at(-1)!.trim();
    return instances.find((i) => addr === `127.0.0.1:${i.proxyPort}`)?.name ?? `?${addr}`;
  };

  async function waitReady(i: Instance, withinMs = 30_000) {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const r = await request(`http://127.0.0.1:${i.statusPort}/health/ready`).then(
        async (res) => (await res.body.text(), res.statusCode),
        () => 0,
      );
      if (r === 200) return;
      if (Date.now() > deadline) throw new Error(`${i.name} not ready within ${withinMs} ms (last ${r})`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  before(async () => {
    redis = await startRedis();
    probe = new Redis({ host: redis.host, port: redis.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    await probe.connect();
    db = await createTestDatabase();
    upstream = await startUpstream();
    issuer = await FakeIssuer.start();
    chromium = await launchBrowser();

    const taken = new Set<number>();
    const port = async () => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) return taken.add(p), p;
      }
    };
    const plan: Omit<Instance, 'gw' | 'base'>[] = [];
    for (const name of ['A', 'B', 'C'] as const) plan.push({ name, proxyPort: await port(), statusPort: await port(), adminPort: await port() });
    const baseA = `http://127.0.0.1:${plan[0].proxyPort}`;
    idp = await startDemoIdp({ clients: [client.registration([`${baseA}/oidc`], [`${baseA}/bye`])], resource: baseA });

    const config = {
      _format_version: '3.0',
      services: [
        {
          name: 'echo',
          url: `${upstream.url}/anything`,
          routes: [
            { name: 'plain', paths: ['/plain'] },
            { name: 'api', paths: ['/api'], plugins: [bearerPlugin(issuer.issuer)] },
            {
              name: 'limited',
              paths: ['/limited'],
              plugins: [
                bearerPlugin(issuer.issuer),
                { name: 'rate-limiting', config: { hour: RATE_LIMIT, limit_by: 'consumer', policy: 'redis', fault_tolerant: false, redis: { host: redis.host, port: redis.port } } },
              ],
            },
            {
              name: 'oidc',
              paths: ['/oidc'],
              plugins: [
                {
                  name: 'openid-connect',
                  config: {
                    ...client.pluginConfig(idp.issuer),
                    // One configuration for every replica: the redirect URI names A, where the browser logs in.
                    redirect_uri: [`${baseA}/oidc`],
                    scopes: ['openid', 'profile', 'email', 'offline_access', 'kong_api_access'],
                    scopes_required: ['kong_api_access'],
                    auth_methods: ['authorization_code', 'session'],
                    session_secret: randomBytes(32).toString('base64url'),
                    session_storage: 'redis',
                    session_redis_host: redis.host,
                    session_redis_port: redis.port,
                    logout_uri_suffix: '/logout',
                    logout_methods: ['GET', 'POST'],
                    upstream_headers_claims: ['sub'],
                    upstream_headers_names: ['x-user-sub'],
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    // A seeds the empty database from its file; B and C have no file and run what is stored.
    const a = await startGateway({ config, env: envOf(plan[0]) });
    instances.push({ ...plan[0], base: baseA, gw: a });
    const rest = await Promise.all(plan.slice(1).map((p) => startGateway({ env: envOf(p) })));
    plan.slice(1).forEach((p, k) => instances.push({ ...p, base: `http://127.0.0.1:${p.proxyPort}`, gw: rest[k] }));
    for (const i of instances) await waitReady(i);
    // nginx follows each replica's readiness as an ingress controller follows Kubernetes endpoints
    // (a draining replica is marked down within ~100 ms), with the passive checks behind it.
    lb = await startLoadBalancer(
      instances.map((i) => i.proxyPort),
      { maxFails: 1, failTimeoutS: 2, readinessUrls: instances.map((i) => `http://127.0.0.1:${i.statusPort}/health/ready`) },
    );
  });

  after(async () => {
    await chromium?.close();
    await lb?.close();
    await Promise.all(instances.map((i) => i.gw.stop('SIGKILL')));
    await agent.close();
    await idp?.stop();
    await issuer?.stop();
    await upstream?.close();
    probe?.disconnect();
    await redis?.close();
    await db?.drop();
  });

  async function loginThroughA(): Promise<string> {
    const a = byName('A');
    const login = await sessionCookieAfterLogin(chromium.browser, `${a.base}/oidc/start`, user.username);
    assert.ok(login.redirectedTo.startsWith(idp.issuer), `sent to the IdP, got ${login.redirectedTo}`);
    assert.equal(JSON.parse(login.body).headers['x-user-sub'], user.sub, 'A proxied the original request after the login');
    assert.deepEqual(login.cookies.map((c) => c.name), ['session']);
    return login.cookies[0].value;
  }

  it('all three run the configuration A seeded into PostgreSQL, and nginx spreads requests over them', async () => {
    assert.ok(byName('A').gw.logs().some((l) => l.msg === 'postgres: the empty database was seeded from the declarative file'));
    const seen = new Map<string, number>();
    for (let n = 0; n < 9; n++) {
      const r = await get(lb.url, '/plain/x');
      assert.equal(r.status, 200, r.text);
      seen.set(servedBy(r.headers), (seen.get(servedBy(r.headers)) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['A', 'B', 'C'], `round robin: ${JSON.stringify([...seen])}`);
  });

  it('a browser login through A is a session on B and C; a logout at C ends it on A and B', async () => {
    const cookie = await loginThroughA();
    for (const name of ['B', 'C', 'A'] as const) {
      const r = await get(byName(name).base, '/oidc/data', session(cookie));
      assert.equal(r.status, 200, `${name}: ${r.text}`);
      assert.equal(r.json().headers['x-user-sub'], user.sub, `${name} knows the user from Redis`);
    }
    const logout = await request(`${byName('C').base}/oidc/logout`, { method: 'POST', headers: { cookie: `session=${cookie}` } });
    await logout.body.dump();
    assert.ok(logout.statusCode === 302 || logout.statusCode === 200, `logout at C answered ${logout.statusCode}`);
    const cleared = ([] as string[]).concat(logout.headers['set-cookie'] ?? []);
    assert.ok(cleared.some((c) => /^session=; .*Max-Age=0/.test(c)), `C deletes the cookie (${cleared.join(' | ')})`);
    for (const name of ['A', 'B', 'C'] as const) {
      const r = await get(byName(name).base, '/oidc/data', session(cookie));
      assert.equal(r.status, 401, `${name} still accepts the logged-out session: ${r.text}`);
    }
  });

  it(`one caller's rate limit holds exactly across the three: ${RATE_LIMIT} allowed, the next refused`, async () => {
    // Fixed hourly windows (Kong's): do not straddle the hour, or the count would restart half way.
    const now = new Date();
    if (now.getUTCMinutes() === 59 && now.getUTCSeconds() >= 45) await new Promise((r) => setTimeout(r, (61 - now.getUTCSeconds()) * 1000));
    const token = await issuer.token({ sub: `caller-${randomBytes(4).toString('hex')}` });
    const other = await issuer.token({ sub: `other-${randomBytes(4).toString('hex')}` });
    const allowedBy = new Map<string, number>();
    for (let n = 1; n <= RATE_LIMIT; n++) {
      const r = await get(lb.url, '/limited/x', bearer(token));
      assert.equal(r.status, 200, `request ${n} of ${RATE_LIMIT}: ${r.status} ${r.text}`);
      assert.equal(r.headers['x-ratelimit-remaining-hour'], String(RATE_LIMIT - n), `request ${n} sees the shared count`);
      allowedBy.set(servedBy(r.headers), (allowedBy.get(servedBy(r.headers)) ?? 0) + 1);
    }
    assert.deepEqual([...allowedBy.keys()].sort(), ['A', 'B', 'C'], `the allowed requests were spread: ${JSON.stringify([...allowedBy])}`);
    // The next one is refused whichever instance it reaches: try each directly and through nginx.
    for (const base of [...instances.map((i) => i.base), lb.url]) {
      const refused = await get(base, '/limited/x', bearer(token));
      assert.equal(refused.status, 429, `${base}: ${refused.text}`);
      assert.deepEqual(refused.json(), { message: 'API rate limit exceeded' });
    }
    // Another caller has a budget of its own.
    assert.equal((await get(lb.url, '/limited/x', bearer(other))).status, 200);
  });

  it('an Admin API change on A is routed by B and C within 1 s', async () => {
    for (const i of instances) assert.equal((await get(i.base, '/added/x')).status, 404);
    const res = await request(`http://127.0.0.1:${byName('A').adminPort}/services/echo/routes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'added', paths: ['/added'] }),
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 201, text);
    const stored = Date.now();
    const pending = new Set(instances.filter((i) => i.name !== 'A'));
    while (pending.size) {
      for (const i of [...pending]) if ((await get(i.base, '/added/x')).status === 200) pending.delete(i);
      if (!pending.size) break;
      const took = Date.now() - stored;
      if (took > 1000) assert.fail(`not routed by ${[...pending].map((i) => i.name).join(' and ')} after ${took} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal((await get(byName('A').base, '/added/x')).status, 200);
  });

  it('a rolling restart under steady load through nginx fails no request', async (t) => {
    const token = await issuer.token({ sub: 'load' }, { expiresIn: 600 });
    const cookie = await loginThroughA();
    // Three kinds of route: plain, bearer (no Redis), session (Redis): each must survive every restart.
    // The POSTs matter most: nginx never sends a non-idempotent request it already sent to another
    // replica, so one cut off by a stopping gateway would fail here instead of being retried.
    const json = { 'content-type': 'application/json' };
    const kinds: [string, Record<string, string>, 'GET' | 'POST'][] = [
      ['/plain/load', {}, 'GET'],
      ['/api/load', bearer(token), 'GET'],
      ['/oidc/load', session(cookie), 'GET'],
      ['/plain/load', json, 'POST'],
      ['/api/load', { ...bearer(token), ...json }, 'POST'],
    ];
    let sent = 0;
    let failed = 0;
    const failures: string[] = [];
    const servedByName = new Map<string, number>();
    let stop = false;
    const started = Date.now();
    const clientLoop = async (c: number) => {
      for (let n = c; !stop && sent < LOAD_MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS; n++) {
        const [path, headers, method] = kinds[n % kinds.length];
        sent++;
        try {
          const r = await get(lb.url, path, headers, method, method === 'POST' ? JSON.stringify({ n }) : undefined);
          if (r.status !== 200) {
            failed++;
            if (failures.length < 10) failures.push(`${method} ${path}: ${r.status} ${r.text.slice(0, 200)} via ${String(r.headers['x-upstream-addr'])}`);
          } else servedByName.set(servedBy(r.headers), (servedByName.get(servedBy(r.headers)) ?? 0) + 1);
        } catch (err) {
          failed++;
          if (failures.length < 10) failures.push(`${method} ${path}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, LOAD_PAUSE_MS));
      }
    };
    const load = Promise.all(Array.from({ length: LOAD_CLIENTS }, (_, c) => clientLoop(c)));
    const exits: Record<string, number | null> = {};
    const reloadsBefore = lb.readiness().reloads;
    try {
      await new Promise((r) => setTimeout(r, 500));
      for (const i of instances) {
        const exited = i.gw.stop('SIGTERM');
        exits[i.name] = await exited;
        i.gw = await startGateway({ env: envOf(i) });
        await waitReady(i);
        // Wait until nginx sends to it again (its fail_timeout passed) before taking the next one out.
        const deadline = Date.now() + 15_000;
        for (;;) {
          const before = servedByName.get(i.name) ?? 0;
          await new Promise((r) => setTimeout(r, 200));
          if ((servedByName.get(i.name) ?? 0) > before) break;
          if (Date.now() > deadline) assert.fail(`nginx did not send to the restarted ${i.name} within 15 s`);
        }
      }
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      stop = true;
      await load;
    }
    t.diagnostic(`rolling restart of A, B, C under ${LOAD_CLIENTS} clients through nginx: ${sent} requests sent, failed: ${failed}`);
    t.diagnostic(`nginx reloaded ${lb.readiness().reloads} times following readiness; it retried on another replica ${(lb.errorLog().match(/while connecting to upstream|while reading response header/g) ?? []).length} times`);
    t.diagnostic(`served by ${JSON.stringify(Object.fromEntries(servedByName))}; took ${Date.now() - started} ms`);
    assert.ok(sent < LOAD_MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS + 15_000, 'the restarts finished within the load bounds');
    assert.equal(failed, 0, `failed requests:\n${failures.join('\n')}\nnginx error log:\n${lb.errorLog().slice(-3000)}`);
    assert.deepEqual(exits, { A: 0, B: 0, C: 0 }, 'each instance exits 0 after SIGTERM');
    assert.ok(lb.readiness().reloads - reloadsBefore >= 6, 'nginx took each replica out when its readiness turned 503, and back in');
    for (const i of instances) {
      assert.ok(i.gw.logs().some((l) => l.msg === 'gatehouse started'), `${i.name} restarted`);
    }
  });

  it('Redis stopping: bearer routes keep working, session routes answer 503 (not 500, not a pass), and both recover when it returns', async () => {
    const cookie = await loginThroughA();
    const token = await issuer.token({ sub: 'during-outage' });
    for (const i of instances) assert.equal((await get(i.base, '/oidc/x', session(cookie))).status, 200, `${i.name} before the outage`);
    // Saved on the way down, so the same sessions are there when it returns (a Redis with persistence).
    await probe.call('SHUTDOWN', 'SAVE').catch(() => undefined);
    await new Promise<void>((r) => (redis.child.exitCode !== null ? r() : redis.child.once('exit', () => r())));
    try {
      for (const i of instances) {
        const api = await get(i.base, '/api/x', bearer(token));
        assert.equal(api.status, 200, `${i.name} bearer route without Redis: ${api.text}`);
        const s = await get(i.base, '/oidc/x', session(cookie));
        assert.equal(s.status, 503, `${i.name} session route without Redis: ${s.status} ${s.text}`);
        assert.equal(typeof s.json().message, 'string', `${i.name}: a JSON error body`);
        assert.equal(s.headers['retry-after'], '5', `${i.name}: Retry-After`);
        assert.ok(!s.text.includes(user.sub), 'nothing of the session leaks');
      }
      assert.equal((await get(lb.url, '/api/x', bearer(token))).status, 200, 'through nginx too');
      for (const i of instances) {
        assert.ok(!i.gw.logs().some((l) => l.status === 500), `${i.name} logged no 500`);
      }
    } finally {
      await redis.restart();
    }
    for (const i of instances) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const r = await get(i.base, '/oidc/x', session(cookie));
        if (r.status === 200) break;
        assert.ok(r.status === 503, `${i.name} while reconnecting: ${r.status} ${r.text}`);
        if (Date.now() > deadline) assert.fail(`${i.name} did not serve the session again within 15 s`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    assert.equal((await get(lb.url, '/oidc/x', session(cookie))).status, 200, 'the same session, through nginx, after the outage');
  });
});
