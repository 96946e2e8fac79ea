import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { Proc } from './processes.js';

/**
 * Case 7: a Gatehouse route with `authorization_code` + `session`, the demo
 * IdP (src/demo/idp/index.ts, oidc-provider) in the bench process, and a real
 * login scripted over HTTP (authorization code + PKCE, the IdP's login form,
 * the gateway's callback). The session cookie it yields is then replayed by
 * the load generator.
 */

export interface SessionLogin {
  /** Set when the case cannot run (e.g. the demo IdP is not built). */
  unavailable?: string;
  target: { key: string; url: string; proc: Proc };
  headers: Record<string, string>;
  close(): Promise<void>;
}

interface DemoIdpModule {
  startDemoIdp(options: Record<string, unknown>): Promise<{ issuer: string; stop(): Promise<void> }>;
  DEMO_PASSWORD: string;
}

const DEMO_IDP = join(dirname(fileURLToPath(import.meta.url)), '../src/demo/idp/index.js');
const USER = 'Blog_with_scope';
const MAX_STEPS = 20;

export async function startSessionLogin(ctx: {
  upstreamUrl: string;
  freePort(): Promise<number>;
  startGatehouse(key: string, config: object, proxyPort: number): Promise<{ key: string; url: string; proc: Proc }>;
}): Promise<SessionLogin> {
  const none = { target: undefined as never, headers: {}, close: async () => {} };
  if (!existsSync(DEMO_IDP)) return { ...none, unavailable: 'the demo IdP (src/demo/idp/index.ts) is not built' };
  // A computed specifier: the bench compiles whether or not the demo exists yet.
  const demo = (await import(DEMO_IDP)) as DemoIdpModule;
  if (typeof demo.startDemoIdp !== 'function') return { ...none, unavailable: 'src/demo/idp/index.ts does not export startDemoIdp' };

  const port = await ctx.freePort();
  const base = `http://127.0.0.1:${port}`;
  const clientSecret = randomBytes(24).toString('base64url');
  const idp = await demo.startDemoIdp({
    clients: [{ client_id: 'bench', client_secret: clientSecret, redirect_uris: [`${base}/app/callback`] }],
    resource: base,
    // Longer than any run, so the session's access token never needs a refresh mid-measurement.
    accessTokenTtl: 3 * 3600,
  });
  try {
    const target = await ctx.startGatehouse(
      'gw-session',
      {
        _format_version: '3.0',
        services: [
          {
            name: 'bench',
            url: ctx.upstreamUrl,
            routes: [
              {
                name: 'app',
                paths: ['/app'],
                strip_path: false,
                plugins: [
                  {
                    name: 'openid-connect',
                    config: {
                      issuer: idp.issuer,
                      client_id: ['bench'],
                      client_secret: [clientSecret],
                      redirect_uri: [`${base}/app/callback`],
                      auth_methods: ['authorization_code', 'session'],
                      scopes: ['openid', 'profile'],
                      session_secret: randomBytes(32).toString('base64url'),
                      login_action: 'redirect',
                    },
                  },
                ],
              },
            ],
          },
        ],
      },
      port,
    );
    const cookie = await scriptedLogin(`${base}/app/`, USER, demo.DEMO_PASSWORD);
    return { target, headers: { cookie }, close: () => idp.stop() };
  } catch (err) {
    await idp.stop();
    throw err;
  }
}

/** Cookies per origin; enough for a login (no paths, no domains beyond the host). */
class CookieJar {
  private readonly jar = new Map<string, Map<string, string>>();
  store(origin: string, setCookie: string | string[] | undefined) {
    if (!setCookie) return;
    const cookies = this.jar.get(origin) ?? new Map<string, string>();
    this.jar.set(origin, cookies);
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a)) || attrs.some((a) => /^\s*expires\s*=\s*Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') cookies.delete(name);
      else cookies.set(name, value);
    }
  }
  header(origin: string): string {
    return [...(this.jar.get(origin) ?? new Map<string, string>())].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

const unescapeHtml = (s: string) => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');

/**
 * Follows the login like a browser: redirects with cookies, and the IdP's
 * login form posted with the user's credentials. Returns the gateway's cookies
 * once the gateway answers 200 from the upstream.
 */
export async function scriptedLogin(start: string, username: string, password: string): Promise<string> {
  const jar = new CookieJar();
  const gatewayOrigin = new URL(start).origin;
  let url = start;
  let method = 'GET';
  let body: string | undefined;
  for (let step = 0; step < MAX_STEPS; step++) {
    const origin = new URL(url).origin;
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = jar.header(origin);
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await request(url, { method: method as 'GET', headers, body });
    jar.store(origin, res.headers['set-cookie']);
    const text = await res.body.text();
    const location = res.headers.location;
    if (res.statusCode >= 300 && res.statusCode < 400 && location) {
      url = new URL(String(location), url).href;
      method = 'GET';
      body = undefined;
      continue;
    }
    if (res.statusCode === 200 && origin === gatewayOrigin) {
      const session = jar.header(gatewayOrigin);
      if (!session) throw new Error('login finished without a gateway session cookie');
      return session;
    }
    const form = /<form[^>]*method="post"[^>]*action="([^"]+)"/i.exec(text);
    if (res.statusCode === 200 && form && /name="password"/.test(text)) {
      const fields = new URLSearchParams();
      for (const m of text.matchAll(/<input[^>]*type="hidden"[^>]*>/gi)) {
        const name = /name="([^"]+)"/.exec(m[0])?.[1];
        const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
        if (name) fields.set(name, unescapeHtml(value));
      }
      fields.set('username', username);
      fields.set('password', password);
      url = new URL(unescapeHtml(form[1]), url).href;
      method = 'POST';
      body = fields.toString();
      continue;
    }
    throw new Error(`login stopped at ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  }
  throw new Error(`login did not finish within ${MAX_STEPS} steps`);
}
