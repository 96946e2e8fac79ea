import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startDemoIdp, type DemoIdp } from '../../src/demo/idp/index.js';
import { LOG_FLUSH_INTERVAL_MS } from '../../src/common/logger.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { gatehouseClient } from '../helpers/demo-client.js';
import { type GatewayProcess, oneService, startGateway } from '../helpers/gateway.js';
import { sessionCookieAfterLogin } from '../helpers/idp-login.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startDelayProxy, type DelayProxy } from '../helpers/tcp-delay.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Each way, between gateway B and Redis: B's reads and lock attempts land on a
 * known clock. A round trip (600 ms) stays under the store's 1 s limit per call.
 */
const B_REDIS_DELAY_MS = 300;

/**
 * Two gateways sharing one Redis refresh a session once. The race that matters:
 * B reads the session just before A refreshes it, and takes the refresh lock
 * just after A has released it. B must work from the session as stored after
 * the lock (A's new tokens), never from its earlier read — with rotating
 * refresh tokens that second refresh would end the session for everyone.
 */
describe('openid-connect: refresh across gateways sharing Redis', () => {
  let idp: DemoIdp;
  let redis: RedisServer;
  let slow: DelayProxy;
  let upstream: Upstream;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let chromium: TestBrowser;
  let baseA: string;
  let baseB: string;
  const client = gatehouseClient();
  const secret = randomBytes(32).toString('base64url');

  before(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    baseA = `http://127.0.0.1:${portA}`;
    baseB = `http://127.0.0.1:${portB}`;
    redis = await startRedis();
    slow = await startDelayProxy(redis.port, 0);
    idp = await startDemoIdp({ clients: [client.registration([`${baseA}/app`, `${baseB}/app`])], resource: baseA, accessTokenTtl: 33 });
    upstream = await startUpstream();
    const gateway = (port: number, base: string, redisPort: number) =>
      startGateway({
        env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${port}` },
        config: oneService(upstream.url, [
          {
            name: 'app',
            paths: ['/app'],
            plugins: [
              {
                name: 'openid-connect',
                config: {
                  ...client.pluginConfig(idp.issuer),
                  redirect_uri: [`${base}/app`],
                  scopes: ['openid', 'profile', 'offline_access'],
                  session_secret: secret,
                  session_storage: 'redis',
                  session_redis_port: redisPort,
                  auth_methods: ['authorization_code', 'session', 'refresh_token'],
                },
              },
            ],
          },
        ]),
      });
    a = await gateway(portA, baseA, redis.port);
    b = await gateway(portB, baseB, slow.port);
    chromium = await launchBrowser();
  });

  after(async () => {
    await chromium?.close();
    await a?.stop();
    await b?.stop();
    await upstream?.close();
    await idp?.stop();
    await slow?.close();
    await redis?.close();
  });

  const call = (base: string, cookie: string) => request(`${base}/app/data`, { headers: { cookie, accept: 'application/json' } });
  const refreshes = () => [...a.logs(), ...b.logs()].filter((l) => l.msg === 'session tokens refreshed').length;

  it('a gateway that takes the lock after another refreshed uses the stored tokens, not its earlier read', async () => {
    // B connects to Redis before the link is slowed, so the race has only its GET and SET NX.
    const warm = (await sessionCookieAfterLogin(chromium.browser, `${baseA}/app`, 'Blog_with_scope')).header;
    const w = await call(baseB, warm);
    assert.equal(w.statusCode, 200);
    await w.body.dump();
    slow.delayMs = B_REDIS_DELAY_MS;

    const cookie = (await sessionCookieAfterLogin(chromium.browser, `${baseA}/app`, 'Blog_with_scope')).header;
    await new Promise((r) => setTimeout(r, 4_000)); // into the refresh window (33 s token, 30 s skew)
    await new Promise((r) => setTimeout(r, LOG_FLUSH_INTERVAL_MS * 3));
    const before = refreshes();

    // B's GET reaches Redis at ~0.3 s (the old tokens); A refreshes from ~0.4 s; B's SET NX reaches Redis at ~0.9 s.
    const fromB = call(baseB, cookie);
    await new Promise((r) => setTimeout(r, B_REDIS_DELAY_MS + 100));
    const fromA = await call(baseA, cookie);
    assert.equal(fromA.statusCode, 200);
    await fromA.body.dump();
    const resB = await fromB;
    assert.equal(resB.statusCode, 200);
    await resB.body.dump();

    await new Promise((r) => setTimeout(r, LOG_FLUSH_INTERVAL_MS * 3));
    assert.equal(refreshes() - before, 1, 'one refresh between the two gateways');
    assert.equal([...a.logs(), ...b.logs()].filter((l) => l.msg === 'refresh refused by the identity provider: session ended').length, 0);
  });
});
