import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { DEMO_PASSWORD } from '../../src/demo/idp/index.js';
import { EMBEDDED_STORE_FILE } from '../../src/config/stores/embedded-config.store.js';
import { DEMO_WITHOUT_ENTITIES_DIR } from '../../src/config/stores/config-store.factory.js';
import { type GatewayProcess, startGateway } from '../helpers/gateway.js';

/** `http [-f] POST host:port/path k=v … [-f]` → the URL and the items, as httpie reads them. */
function parseHttpie(command: string): { url: string; items: [string, string][] } {
  const words = command.split(/\s+/).filter(Boolean);
  assert.equal(words[0], 'http', command);
  const rest = words.slice(1).filter((w) => w !== '-f');
  assert.equal(rest[0], 'POST', command);
  // httpie reads `localhost:8001/x` as http://localhost:8001/x and tries every address of localhost;
  // the admin listener is on 127.0.0.1, which is where localhost's IPv4 address leads.
  const url = `http://${rest[1].replace(/^localhost:/, '127.0.0.1:')}`;
  const items = rest.slice(2).map((item): [string, string] => {
    const eq = item.indexOf('=');
    assert.ok(eq > 0, `an httpie data item: ${item}`);
    return [item.slice(0, eq), item.slice(eq + 1)];
  });
  return { url, items };
}

/**
 * `GATEHOUSE_DEMO_ENTITIES=off npm start`: the demo IdP and echo upstream run,
 * the store starts empty, and the banner prints the blog's three Admin API
 * commands filled in. They are taken from the banner and sent as
 * `http -f` sends them (form-encoded), then the blog's two users call the route.
 */
describe('the demo without its entities: the blog\'s commands from the banner, verbatim', () => {
  let gw: GatewayProcess;
  let banner: string;
  let commands: string[];
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-demo-blog-'));

  before(async () => {
    const env: Record<string, string | undefined> = {};
    // A newcomer's shell: no other Gatehouse settings than the ports this test needs free.
    for (const k of Object.keys(process.env)) if (k.startsWith('GATEHOUSE_')) env[k] = undefined;
    gw = await startGateway({
      env: {
        ...env,
        GATEHOUSE_DEMO_ENTITIES: 'off',
        GATEHOUSE_DATA_DIR: dataDir,
        GATEHOUSE_DEMO_IDP_LISTEN: '127.0.0.1:0',
        GATEHOUSE_DEMO_UPSTREAM_LISTEN: '127.0.0.1:0',
      },
    });
    banner = gw.lines.join('\n');
    assert.match(banner, /GATEHOUSE DEMO MODE/);
    // A command continued with `\` goes on on the next line.
    commands = [...banner.replace(/ \\\n\s+/g, ' ').matchAll(/^\s+(http (?:-f )?POST .*)$/gm)].map((m) => m[1]);
  });

  after(async () => {
    await gw?.stop();
  });

  it('starts empty: no route yet, the store in its own directory', async () => {
    assert.equal((await request(`${gw.proxyUrl}/oidc`)).statusCode, 404);
    const services = (await (await request(`${gw.adminUrl}/services`)).body.json()) as { data: unknown[] };
    assert.deepEqual(services.data, []);
    assert.ok(existsSync(join(dataDir, DEMO_WITHOUT_ENTITIES_DIR, EMBEDDED_STORE_FILE)));
    assert.ok(!existsSync(join(dataDir, EMBEDDED_STORE_FILE)), 'the full demo\'s store is not touched');
  });

  it('the banner\'s three commands, form-encoded, create the blog\'s service, route and plugin', async () => {
    assert.equal(commands.length, 3, banner);
    assert.match(commands[0], /^http POST localhost:\d+\/services name=openidconnect url=http:\/\/127\.0\.0\.1:\d+\/anything$/);
    assert.match(commands[1], /^http POST localhost:\d+\/services\/openidconnect\/routes name=openidconnectRoute paths=\/oidc -f$/);
    assert.match(commands[2], /^http -f POST localhost:\d+\/routes\/openidconnectRoute\/plugins name=openid-connect config\.issuer=\S+ config\.client_id=gatehouse config\.client_secret=\S+ config\.redirect_uri=\S+\/oidc config\.consumer_optional=true config\.scopes_required=kong_api_access$/);
    for (const command of commands) {
      const { url, items } = parseHttpie(command);
      assert.equal(new URL(url).port, new URL(gw.adminUrl!).port, 'the banner names the admin listener');
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: '*/*' },
        body: new URLSearchParams(items).toString(),
      });
      const body = await res.body.text();
      assert.equal(res.statusCode, 201, `${command}\n→ ${body}`);
    }
  });

  async function token(username: string): Promise<string> {
    const { items } = parseHttpie(commands[2]);
    const config = Object.fromEntries(items);
    const res = await request(`${config['config.issuer']}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        client_id: config['config.client_id'],
        client_secret: config['config.client_secret'],
        username,
        password: DEMO_PASSWORD,
        scope: 'openid kong_api_access',
      }).toString(),
    });
    const body = (await res.body.json()) as { access_token?: string };
    assert.equal(res.statusCode, 200, JSON.stringify(body));
    return body.access_token!;
  }

  it('Blog_with_scope gets 200 from the echo upstream, Blog_without_scope 403 with the log line', async () => {
    const ok = await request(`${gw.proxyUrl}/oidc`, { headers: { authorization: `Bearer ${await token('Blog_with_scope')}` } });
    const echoed = (await ok.body.json()) as { url?: string };
    assert.equal(ok.statusCode, 200);
    assert.match(String(echoed.url), /^\/anything/);

    const denied = await request(`${gw.proxyUrl}/oidc`, { headers: { authorization: `Bearer ${await token('Blog_without_scope')}` } });
    assert.equal(denied.statusCode, 403);
    assert.deepEqual(await denied.body.json(), { message: 'Forbidden' });
    assert.match(String(denied.headers['www-authenticate']), /insufficient_scope/);
    const line = await gw.waitForLog((l) => l.route === 'openidconnectRoute' && /required scopes were not found/.test(String(l.msg)), 5_000);
    assert.equal(line.level, 'warn');
  });
});
