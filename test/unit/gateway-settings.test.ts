import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { readGatewaySettings, SETTINGS_DEFAULTS, SettingsError } from '../../src/config/gateway-settings.js';
import { isTrustedPeer } from '../../src/proxy/forwarding-headers.js';

/** Gateway-level settings from GATEHOUSE_* variables and the --config flag. */

function problemsOf(env: NodeJS.ProcessEnv, argv: string[] = []): string[] {
  try {
    readGatewaySettings(env, argv);
  } catch (err) {
    assert.ok(err instanceof SettingsError, String(err));
    assert.equal(err.code, 'GATEHOUSE_SETTINGS_INVALID');
    const lines = err.problems.map((p) => `${p.path}: ${p.message}`);
    for (const line of lines) assert.ok(err.message.includes(line), `message lacks ${line}`);
    return lines;
  }
  assert.fail('the settings were accepted');
}

describe('readGatewaySettings: defaults', () => {
  it('an empty environment gives the documented defaults', () => {
    const s = readGatewaySettings({});
    assert.equal(s.declarativeConfig, undefined, 'no config: the built-in demo');
    assert.deepEqual(s.proxyListen, { host: '0.0.0.0', port: 8000 });
    assert.deepEqual(s.statusListen, { host: '0.0.0.0', port: 8100 });
    assert.equal(s.trustedIpsText, '');
    assert.equal(isTrustedPeer(s.trustedIps, '127.0.0.1'), false, 'nobody is trusted by default');
    assert.equal(s.logLevel, 'info');
    assert.equal(s.clientHeaderTimeoutMs, 60000);
    assert.equal(s.clientBodyTimeoutMs, 60000);
    assert.equal(s.shutdownTimeoutMs, 10000);
    assert.equal(s.shutdownDelayMs, 0, 'the built-in demo stops at once: nothing routes to it by readiness');
    assert.equal(s.maxHeaderSize, 16384);
    assert.equal(s.workers, 1);
    assert.equal(s.database, 'embedded', 'no config file: the embedded store');
  });

  it('GATEHOUSE_DATABASE defaults to off (DB-less) with a file, and is checked', () => {
    assert.equal(readGatewaySettings({ GATEHOUSE_DECLARATIVE_CONFIG: 'kong.yaml' }).database, 'off');
    assert.equal(readGatewaySettings({}, ['--config', 'kong.yaml']).database, 'off');
    assert.equal(readGatewaySettings({ GATEHOUSE_DATABASE: 'postgres' }).database, 'postgres');
    assert.deepEqual(problemsOf({ GATEHOUSE_DATABASE: 'cassandra' }), ['GATEHOUSE_DATABASE: must be one of off, embedded, postgres, got "cassandra"']);
    assert.deepEqual(problemsOf({ GATEHOUSE_DATABASE: 'off' }), [
      'GATEHOUSE_DATABASE: is "off", which needs a declarative config (--config PATH or GATEHOUSE_DECLARATIVE_CONFIG)',
    ]);
  });

  it('GATEHOUSE_SHUTDOWN_DELAY: 5 s with a config, seconds (fractions too), 0 allowed, set explicitly it applies to the demo', () => {
    assert.equal(readGatewaySettings({}, ['--config', 'kong.yaml']).shutdownDelayMs, 5000);
    assert.equal(readGatewaySettings({ GATEHOUSE_SHUTDOWN_DELAY: '' }, ['--config', 'kong.yaml']).shutdownDelayMs, 5000);
    assert.equal(readGatewaySettings({ GATEHOUSE_SHUTDOWN_DELAY: '0' }, ['--config', 'kong.yaml']).shutdownDelayMs, 0);
    assert.equal(readGatewaySettings({ GATEHOUSE_SHUTDOWN_DELAY: '1.5', GATEHOUSE_DECLARATIVE_CONFIG: 'kong.yaml' }).shutdownDelayMs, 1500);
    assert.equal(readGatewaySettings({ GATEHOUSE_SHUTDOWN_DELAY: '15' }).shutdownDelayMs, 15000);
  });

  it('GATEHOUSE_SHUTDOWN_DELAY refuses what is not 0–3600 seconds, collected with the other problems', () => {
    for (const bad of ['-1', 'five', '5s', '3601', '1e3']) {
      assert.deepEqual(problemsOf({ GATEHOUSE_SHUTDOWN_DELAY: bad, GATEHOUSE_LOG_LEVEL: 'loud' }), [
        'GATEHOUSE_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, got "loud"',
        `GATEHOUSE_SHUTDOWN_DELAY: must be a number of seconds from 0 to 3600, got "${bad}"`,
      ]);
    }
  });

  it('SETTINGS_DEFAULTS lists the variables the README documents', () => {
    assert.deepEqual(Object.keys(SETTINGS_DEFAULTS).sort(), [
      'GATEHOUSE_ADMIN_AUDIENCE',
      'GATEHOUSE_ADMIN_ISSUER',
      'GATEHOUSE_ADMIN_LISTEN',
      'GATEHOUSE_CLIENT_BODY_TIMEOUT',
      'GATEHOUSE_CLIENT_HEADER_TIMEOUT',
      'GATEHOUSE_DATABASE',
      'GATEHOUSE_DATA_DIR',
      'GATEHOUSE_DECLARATIVE_CONFIG',
      'GATEHOUSE_DEMO_ENTITIES',
      'GATEHOUSE_LOG_LEVEL',
      'GATEHOUSE_MAX_HEADER_SIZE',
      'GATEHOUSE_PG_DATABASE',
      'GATEHOUSE_PG_HOST',
      'GATEHOUSE_PG_MIGRATIONS',
      'GATEHOUSE_PG_PASSWORD',
      'GATEHOUSE_PG_PORT',
      'GATEHOUSE_PG_SSL',
      'GATEHOUSE_PG_SSL_VERIFY',
      'GATEHOUSE_PG_TIMEOUT',
      'GATEHOUSE_PG_USER',
      'GATEHOUSE_PROXY_LISTEN',
      'GATEHOUSE_SHUTDOWN_DELAY',
      'GATEHOUSE_SHUTDOWN_TIMEOUT',
      'GATEHOUSE_SSL_CERT',
      'GATEHOUSE_SSL_CERT_KEY',
      'GATEHOUSE_SSL_CIPHERS',
      'GATEHOUSE_SSL_CIPHER_SUITE',
      'GATEHOUSE_STATUS_LISTEN',
      'GATEHOUSE_TRUSTED_IPS',
      'GATEHOUSE_WORKERS',
    ]);
  });

  it('an empty variable means the default', () => {
    const s = readGatewaySettings({ GATEHOUSE_PROXY_LISTEN: '', GATEHOUSE_LOG_LEVEL: ' ', GATEHOUSE_SHUTDOWN_TIMEOUT: '', GATEHOUSE_DECLARATIVE_CONFIG: '' });
    assert.deepEqual(s.proxyListen, { host: '0.0.0.0', port: 8000 });
    assert.equal(s.logLevel, 'info');
    assert.equal(s.shutdownTimeoutMs, 10000);
    assert.equal(s.declarativeConfig, undefined);
  });

  it('every variable is read', () => {
    const s = readGatewaySettings({
      GATEHOUSE_DECLARATIVE_CONFIG: '/etc/gatehouse/kong.yaml',
      GATEHOUSE_PROXY_LISTEN: '127.0.0.1:0',
      GATEHOUSE_STATUS_LISTEN: '[::1]:9100',
      GATEHOUSE_TRUSTED_IPS: '10.0.0.0/8, 192.168.1.7,fd00::/64',
      GATEHOUSE_LOG_LEVEL: 'DEBUG',
      GATEHOUSE_CLIENT_HEADER_TIMEOUT: '5000',
      GATEHOUSE_CLIENT_BODY_TIMEOUT: '6000',
      GATEHOUSE_SHUTDOWN_TIMEOUT: '7000',
      GATEHOUSE_MAX_HEADER_SIZE: '8192',
      GATEHOUSE_WORKERS: '3',
    });
    assert.equal(s.declarativeConfig, '/etc/gatehouse/kong.yaml');
    assert.deepEqual(s.proxyListen, { host: '127.0.0.1', port: 0 });
    assert.deepEqual(s.statusListen, { host: '::1', port: 9100 });
    assert.equal(s.logLevel, 'debug');
    assert.deepEqual(
      [s.clientHeaderTimeoutMs, s.clientBodyTimeoutMs, s.shutdownTimeoutMs, s.maxHeaderSize],
      [5000, 6000, 7000, 8192],
    );
    assert.equal(s.workers, 3);
  });

  it('GATEHOUSE_WORKERS=auto means one worker per core', () => {
    assert.equal(readGatewaySettings({ GATEHOUSE_WORKERS: 'auto' }).workers, availableParallelism());
  });
});

describe('readGatewaySettings: trusted proxies', () => {
  const s = readGatewaySettings({ GATEHOUSE_TRUSTED_IPS: '10.0.0.0/8, 192.168.1.7,fd00::/64' });
  const cases: [string, boolean][] = [
    ['10.255.0.1', true],
    ['::ffff:10.1.2.3', true], // a v4 proxy seen on a dual-stack socket
    ['192.168.1.7', true],
    ['::ffff:192.168.1.7', true],
    ['192.168.1.8', false],
    ['::ffff:192.168.1.8', false],
    ['fd00::42', true],
    ['fd01::1', false],
    ['11.0.0.1', false],
  ];
  for (const [address, trusted] of cases) {
    it(`${address} is ${trusted ? '' : 'not '}trusted`, () => assert.equal(isTrustedPeer(s.trustedIps, address), trusted));
  }
});

describe('readGatewaySettings: --config', () => {
  const cases: [argv: string[], env: NodeJS.ProcessEnv, expected: string | undefined][] = [
    [['--config', '/a.yaml'], {}, '/a.yaml'],
    [['--config=/b.yaml'], {}, '/b.yaml'],
    [['--config', '/flag.yaml'], { GATEHOUSE_DECLARATIVE_CONFIG: '/env.yaml' }, '/flag.yaml'],
    [[], { GATEHOUSE_DECLARATIVE_CONFIG: '/env.yaml' }, '/env.yaml'],
    [['--other'], {}, undefined],
  ];
  for (const [argv, env, expected] of cases) {
    it(`${JSON.stringify(argv)} with ${JSON.stringify(env)} → ${expected}`, () => {
      assert.equal(readGatewaySettings(env, argv).declarativeConfig, expected);
    });
  }

  for (const argv of [['--config'], ['--config='], ['--config', '--other']]) {
    it(`${JSON.stringify(argv)} is refused: the flag needs a path`, () => {
      assert.deepEqual(problemsOf({}, argv), ['--config: needs a file path']);
    });
  }
});

describe('readGatewaySettings: problems', () => {
  const cases: [env: NodeJS.ProcessEnv, expected: string][] = [
    [{ GATEHOUSE_PROXY_LISTEN: 'nonsense' }, 'GATEHOUSE_PROXY_LISTEN: must be "host:port" and optional flags (e.g. 0.0.0.0:8000 or [::]:8443 ssl http2), got "nonsense"'],
    [{ GATEHOUSE_PROXY_LISTEN: '8000' }, 'GATEHOUSE_PROXY_LISTEN: must be "host:port" and optional flags (e.g. 0.0.0.0:8000 or [::]:8443 ssl http2), got "8000"'],
    [{ GATEHOUSE_PROXY_LISTEN: '0.0.0.0:70000' }, 'GATEHOUSE_PROXY_LISTEN: must be "host:port" and optional flags (e.g. 0.0.0.0:8000 or [::]:8443 ssl http2), got "0.0.0.0:70000"'],
    [{ GATEHOUSE_STATUS_LISTEN: '::1:8100' }, 'GATEHOUSE_STATUS_LISTEN: must be "host:port" (e.g. 0.0.0.0:8000 or [::]:8000), got "::1:8100"'],
    [{ GATEHOUSE_TRUSTED_IPS: '10.0.0.0/33' }, 'GATEHOUSE_TRUSTED_IPS: "10.0.0.0/33" is not an IP address or CIDR block'],
    [{ GATEHOUSE_TRUSTED_IPS: 'fd00::/129' }, 'GATEHOUSE_TRUSTED_IPS: "fd00::/129" is not an IP address or CIDR block'],
    [{ GATEHOUSE_TRUSTED_IPS: '10.0.0.0/' }, 'GATEHOUSE_TRUSTED_IPS: "10.0.0.0/" is not an IP address or CIDR block'],
    [{ GATEHOUSE_TRUSTED_IPS: '10.0.0.0/8/9' }, 'GATEHOUSE_TRUSTED_IPS: "10.0.0.0/8/9" is not an IP address or CIDR block'],
    [{ GATEHOUSE_TRUSTED_IPS: '10.0.0.0/-1' }, 'GATEHOUSE_TRUSTED_IPS: "10.0.0.0/-1" is not an IP address or CIDR block'],
    [{ GATEHOUSE_TRUSTED_IPS: 'proxy.internal' }, 'GATEHOUSE_TRUSTED_IPS: "proxy.internal" is not an IP address or CIDR block'],
    [{ GATEHOUSE_TRUSTED_IPS: '300.0.0.1' }, 'GATEHOUSE_TRUSTED_IPS: "300.0.0.1" is not an IP address or CIDR block'],
    [{ GATEHOUSE_LOG_LEVEL: 'verbose' }, 'GATEHOUSE_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, got "verbose"'],
    [{ GATEHOUSE_SHUTDOWN_TIMEOUT: '-1' }, 'GATEHOUSE_SHUTDOWN_TIMEOUT: must be a positive integer, got "-1"'],
    [{ GATEHOUSE_MAX_HEADER_SIZE: '16k' }, 'GATEHOUSE_MAX_HEADER_SIZE: must be a positive integer, got "16k"'],
    [{ GATEHOUSE_CLIENT_HEADER_TIMEOUT: '1.5' }, 'GATEHOUSE_CLIENT_HEADER_TIMEOUT: must be a positive integer, got "1.5"'],
    [{ GATEHOUSE_CLIENT_BODY_TIMEOUT: '0' }, 'GATEHOUSE_CLIENT_BODY_TIMEOUT: must be a positive integer, got "0"'],
    [{ GATEHOUSE_WORKERS: 'many' }, 'GATEHOUSE_WORKERS: must be a positive integer or "auto", got "many"'],
  ];
  for (const [env, expected] of cases) {
    it(expected, () => assert.deepEqual(problemsOf(env), [expected]));
  }

  it('every problem is collected, not just the first', () => {
    const problems = problemsOf(
      {
        GATEHOUSE_PROXY_LISTEN: 'nonsense',
        GATEHOUSE_STATUS_LISTEN: 'also:nonsense',
        GATEHOUSE_TRUSTED_IPS: '10.0.0.1, bad, 10.0.0.0/99',
        GATEHOUSE_LOG_LEVEL: 'loud',
        GATEHOUSE_SHUTDOWN_TIMEOUT: 'soon',
      },
      ['--config'],
    );
    assert.deepEqual(problems.map((p) => p.slice(0, p.indexOf(':'))).sort(), [
      '--config',
      'GATEHOUSE_LOG_LEVEL',
      'GATEHOUSE_PROXY_LISTEN',
      'GATEHOUSE_SHUTDOWN_TIMEOUT',
      'GATEHOUSE_STATUS_LISTEN',
      'GATEHOUSE_TRUSTED_IPS',
      'GATEHOUSE_TRUSTED_IPS',
    ]);
    assert.ok(problems.includes('GATEHOUSE_TRUSTED_IPS: "bad" is not an IP address or CIDR block'));
    assert.ok(problems.includes('GATEHOUSE_TRUSTED_IPS: "10.0.0.0/99" is not an IP address or CIDR block'));
  });
});
