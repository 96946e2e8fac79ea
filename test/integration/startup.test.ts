import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { httpRequest, oneService, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';

/** A loopback port that is free right now, for a gateway that must never listen on it. */

/** Runs the gateway expecting it to refuse to start; returns its exit code and output. */
async function failedStart(opts: Parameters<typeof startGateway>[0]): Promise<{ code: number | null; output: string; gw: GatewayProcess }> {
  const gw = await startGateway({ ...opts, expectStart: false });
  const timeout = setTimeout(() => gw.child.kill('SIGKILL'), 20_000);
  const code = await gw.exited;
  clearTimeout(timeout);
  // Let the last stderr chunk be read.
  await new Promise((r) => setImmediate(r));
  return { code, output: gw.lines.join('\n'), gw };
}

function assertNeverStarted(gw: GatewayProcess) {
  assert.equal(
    gw.logs().some((l) => l.msg === 'gatehouse started'),
    false,
    'the gateway must not report that it started',
  );
}

describe('start-up refuses bad configuration', () => {
  test('a config file with several problems: every problem printed with its path, exit non-zero, never listening', async () => {
    const proxyPort = await freePort();
    const { code, output, gw } = await failedStart({
      config: [
        '_format_version: "3.0"',
        'services:',
        '  - name: api',
        '    url: http://127.0.0.1:1',
        '    routes:',
        '      - name: r',
        '        paths: [api]',
        '  - name: other',
        '    url: http://127.0.0.1:2',
        '    read_timout: 100',
        '    routes:',
        '      - paths: [/other]',
        '',
      ].join('\n'),
      env: { GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}` },
    });
    assert.notEqual(code, 0);
    assert.notEqual(code, null);
    assert.match(output, /services\[0\]\.routes\[0\]\.paths\[0\]: must start with "\/" or "~"/);
    assert.match(output, /services\[1\]\.read_timout: unknown key/);
    assert.match(output, /did you mean "read_timeout"/);
    assert.match(output, /2 problems/);
    assertNeverStarted(gw);
    // Nothing is (or was left) listening on the configured proxy port.
    await assert.rejects(httpRequest(`http://127.0.0.1:${proxyPort}`, '/other', { timeoutMs: 2_000 }), { code: 'ECONNREFUSED' });
  });

  test('a JSON config with problems is reported the same way', async () => {
    const { code, output, gw } = await failedStart({
      config: JSON.stringify({ _format_version: '3.0', services: [{ name: 'api', url: 'ftp://x', routes: [{ paths: ['/a'] }] }], routes: [{ paths: ['/b'], service: 'apj' }] }),
      ext: '.json',
    });
    assert.equal(code, 1);
    assert.match(output, /services\[0\]\.url: /);
    assert.match(output, /routes\[0\]\.service: no service named "apj"/);
    assertNeverStarted(gw);
  });

  test('a missing vault environment variable is named; present secrets never appear in the output', async () => {
    const secret = 'n0t-printed-s3cr3t';
    const { code, output, gw } = await failedStart({
      config: {
        _format_version: '3.0',
        services: [{ name: 'api', url: 'http://127.0.0.1:1', routes: [{ paths: ['/api'] }] }],
        plugins: [
          {
            name: 'openid-connect',
            config: {
              issuer: 'http://127.0.0.1:1/realms/test',
              auth_methods: ['bearer'],
              client_id: ['gatehouse'],
              client_secret: ['{vault://env/GATEHOUSE_TEST_MISSING_SECRET}'],
              // Present but too short: a problem whose value must still not be echoed.
              session_secret: '{vault://env/GATEHOUSE_TEST_PRESENT_SECRET}',
            },
          },
        ],
      },
      env: { GATEHOUSE_TEST_MISSING_SECRET: undefined, GATEHOUSE_TEST_PRESENT_SECRET: secret },
    });
    assert.equal(code, 1);
    assert.match(output, /plugins\[0\]\.config\.client_secret\[0\]: .*GATEHOUSE_TEST_MISSING_SECRET/);
    assert.match(output, /plugins\[0\]\.config\.session_secret: /);
    assert.doesNotMatch(output, new RegExp(secret));
    assertNeverStarted(gw);
  });

  test('a config file that does not exist is named', async () => {
    const { code, output, gw } = await failedStart({ args: ['--config', '/nonexistent/gatehouse/kong.yaml'] });
    assert.equal(code, 1);
    assert.match(output, /\/nonexistent\/gatehouse\/kong\.yaml/);
    assert.match(output, /cannot read the file \(ENOENT\)/);
    assertNeverStarted(gw);
  });

  test('GATEHOUSE_PROXY_LISTEN=nonsense fails clearly', async () => {
    const { code, output, gw } = await failedStart({
      config: { _format_version: '3.0', services: [{ name: 'api', url: 'http://127.0.0.1:1', routes: [{ paths: ['/'] }] }] },
      env: { GATEHOUSE_PROXY_LISTEN: 'nonsense' },
    });
    assert.equal(code, 1);
    assert.match(output, /GATEHOUSE_PROXY_LISTEN: must be "host:port".*got "nonsense"/);
    assertNeverStarted(gw);
  });

  test('several bad settings are all reported', async () => {
    const { code, output } = await failedStart({
      config: { _format_version: '3.0', services: [{ name: 'api', url: 'http://127.0.0.1:1', routes: [{ paths: ['/'] }] }] },
      env: { GATEHOUSE_STATUS_LISTEN: '127.0.0.1:99999', GATEHOUSE_TRUSTED_IPS: '10.0.0.0/99', GATEHOUSE_LOG_LEVEL: 'loud' },
    });
    assert.equal(code, 1);
    assert.match(output, /GATEHOUSE_STATUS_LISTEN: /);
    assert.match(output, /GATEHOUSE_TRUSTED_IPS: "10\.0\.0\.0\/99"/);
    assert.match(output, /GATEHOUSE_LOG_LEVEL: /);
  });
});

describe('start-up with a good configuration', () => {
  test('a JSON config loads and both listeners serve', async (t) => {
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({
      config: JSON.stringify({ _format_version: '3.0', services: [{ name: 'api', url: upstream.url, routes: [{ paths: ['/api'] }] }] }),
      ext: '.json',
    });
    t.after(() => gw.stop());
    const started = await gw.waitForLog((l) => l.msg === 'gatehouse started');
    assert.equal(started.demo, false);
    assert.match(started.config, /kong\.json$/);
    assert.equal((await httpRequest(gw.proxyUrl, '/api/x')).json().url, '/x');
    assert.equal((await httpRequest(gw.statusUrl, '/health/live')).status, 200);
  });

  test('warns when GATEHOUSE_MAX_HEADER_SIZE leaves cookie sessions too little room, and only for them', async (t) => {
    const plugin = (issuer: string, config: Record<string, unknown>) => ({
      name: 'openid-connect',
      config: { issuer, auth_methods: ['session'], session_secret: 'a-test-secret-that-is-long-enough-0123456789', ...config },
    });
    const gw = await startGateway({
      config: oneService('http://127.0.0.1:1', [
        { name: 'cookies', paths: ['/cookies'], plugins: [plugin('http://127.0.0.1:1/cookie-idp', {})] },
        { name: 'redis', paths: ['/redis'], plugins: [plugin('http://127.0.0.1:1/redis-idp', { session_storage: 'redis' })] },
      ]),
      env: { GATEHOUSE_MAX_HEADER_SIZE: '6144' },
    });
    t.after(() => gw.stop());
    await gw.waitForLog((l) => l.msg === 'gatehouse started');
    const warnings = gw.logs().filter((l) => typeof l.msg === 'string' && l.msg.includes('GATEHOUSE_MAX_HEADER_SIZE=6144'));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0].level, 'warn');
    assert.equal(warnings[0].issuer, 'http://127.0.0.1:1/cookie-idp');
    assert.match(warnings[0].msg, /leaves room for \d+ bytes of tokens.*use session_storage: redis or raise GATEHOUSE_MAX_HEADER_SIZE/);
  });
});
