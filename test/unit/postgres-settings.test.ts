import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readGatewaySettings, SettingsError } from '../../src/config/gateway-settings.js';
import { postgresClientConfig, postgresSource } from '../../src/config/stores/postgres-config.store.js';

/** GATEHOUSE_PG_*: Kong's pg_* settings for the postgres config store. */
describe('GATEHOUSE_PG_* settings', () => {
  it('defaults to Kong\'s, with database and user named gatehouse', () => {
    assert.deepEqual(readGatewaySettings({}).postgres, {
      host: '127.0.0.1',
      port: 5432,
      user: 'gatehouse',
      password: '',
      database: 'gatehouse',
      ssl: false,
      sslVerify: false,
      timeoutMs: 5000,
      migrations: 'auto',
    });
  });

  it('reads every variable; on/off and true/false; the password is taken as written', () => {
    const s = readGatewaySettings({
      GATEHOUSE_PG_HOST: 'db.internal',
      GATEHOUSE_PG_PORT: '6432',
      GATEHOUSE_PG_USER: 'gw',
      GATEHOUSE_PG_PASSWORD: ' s3cret ',
      GATEHOUSE_PG_DATABASE: 'gateways',
      GATEHOUSE_PG_SSL: 'ON',
      GATEHOUSE_PG_SSL_VERIFY: 'true',
      GATEHOUSE_PG_TIMEOUT: '1500',
      GATEHOUSE_PG_MIGRATIONS: 'manual',
    }).postgres;
    assert.deepEqual(s, {
      host: 'db.internal',
      port: 6432,
      user: 'gw',
      password: ' s3cret ',
      database: 'gateways',
      ssl: true,
      sslVerify: true,
      timeoutMs: 1500,
      migrations: 'manual',
    });
    const client = postgresClientConfig(s);
    assert.deepEqual(client.ssl, { rejectUnauthorized: true });
    assert.equal(client.connectionTimeoutMillis, 1500);
    assert.equal(client.query_timeout, 1500);
    assert.equal(postgresSource(s), 'postgres://gw@db.internal:6432/gateways', 'no password in the source');
    assert.equal(postgresSource({ ...s, host: '::1' }), 'postgres://gw@[::1]:6432/gateways');
    assert.equal(postgresClientConfig({ ...s, ssl: false }).ssl, false);
  });

  it('collects every problem with its variable name', () => {
    try {
      readGatewaySettings({
        GATEHOUSE_PG_PORT: '70000',
        GATEHOUSE_PG_SSL: 'maybe',
        GATEHOUSE_PG_SSL_VERIFY: 'yes please',
        GATEHOUSE_PG_TIMEOUT: '0',
        GATEHOUSE_PG_MIGRATIONS: 'sometimes',
      });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof SettingsError, String(err));
      assert.deepEqual(
        err.problems.map((p) => p.path).sort(),
        ['GATEHOUSE_PG_MIGRATIONS', 'GATEHOUSE_PG_PORT', 'GATEHOUSE_PG_SSL', 'GATEHOUSE_PG_SSL_VERIFY', 'GATEHOUSE_PG_TIMEOUT'],
      );
      assert.match(err.message, /GATEHOUSE_PG_PORT: must be a TCP port \(1-65535\), got "70000"/);
      assert.match(err.message, /GATEHOUSE_PG_SSL: must be "on" or "off", got "maybe"/);
      assert.match(err.message, /GATEHOUSE_PG_MIGRATIONS: must be "auto" or "manual", got "sometimes"/);
      assert.match(err.message, /GATEHOUSE_PG_TIMEOUT: must be a positive integer, got "0"/);
    }
  });
});
