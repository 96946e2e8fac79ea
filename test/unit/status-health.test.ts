import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeclarativeConfig } from '../../src/config/declarative.schema.js';
import { EMPTY_CONFIGURATION_HASH, isEmptyConfiguration } from '../../src/health/configuration-hash.js';
import { discoveryVerdict } from '../../src/health/issuer-discovery.health.js';
import { ReadinessState } from '../../src/health/readiness.state.js';

const doc = (x: object) => ({ services: [], routes: [], plugins: [], ...x }) as unknown as DeclarativeConfig;

describe('an empty configuration (Kong: not ready, empty hash)', () => {
  it('declares no service, route or plugin', () => {
    assert.equal(isEmptyConfiguration(doc({})), true);
    assert.equal(isEmptyConfiguration(doc({ plugins: [{ name: 'cors' }] })), false);
    assert.equal(isEmptyConfiguration(doc({ services: [{ name: 'a' }] })), false);
    assert.equal(EMPTY_CONFIGURATION_HASH, '00000000000000000000000000000000');
  });
});

describe('discoveryVerdict (OpenID Connect Discovery §4.3)', () => {
  const issuer = 'https://idp.example/realms/a';
  it('accepts a 200 naming exactly the configured issuer', () => {
    assert.equal(discoveryVerdict(issuer, { status: 200, data: { issuer } }), undefined);
  });
  it('refuses another issuer, a trailing-slash variant, a non-200 and a body that is not an object', () => {
    assert.match(discoveryVerdict(issuer, { status: 200, data: { issuer: 'https://evil.example' } })!, /does not match/);
    assert.match(discoveryVerdict(issuer, { status: 200, data: { issuer: `${issuer}/` } })!, /does not match/);
    assert.match(discoveryVerdict(issuer, { status: 200, data: {} })!, /discovered issuer null does not match/);
    assert.equal(discoveryVerdict(issuer, { status: 503, data: { issuer } }), 'discovery answered 503');
    assert.equal(discoveryVerdict(issuer, { status: 200, data: '<html>' }), 'discovery did not answer a JSON object');
    assert.equal(discoveryVerdict(issuer, { status: 200, data: [issuer] }), 'discovery did not answer a JSON object');
  });
  it('with the full discovery URL configured (as Kong allows), the document names the issuer', () => {
    assert.equal(discoveryVerdict(`${issuer}/.well-known/openid-configuration`, { status: 200, data: { issuer } }), undefined);
  });
});

describe('ReadinessState', () => {
  it('draining is one-way and its listeners run once, with the origin', () => {
    const state = new ReadinessState();
    const origins: string[] = [];
    state.onDraining((o) => origins.push(o));
    assert.equal(state.draining, false);
    assert.equal(state.startDraining('status-api'), true);
    assert.equal(state.startDraining('signal'), false);
    assert.equal(state.draining, true);
    assert.ok(state.drainingSince instanceof Date);
    assert.deepEqual(origins, ['status-api']);
  });
});
