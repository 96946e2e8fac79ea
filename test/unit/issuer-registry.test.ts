import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errors as joseErrors } from 'jose';
import type { Logger } from 'pino';
import { IdentityProviderUnavailableError } from '../../src/auth/auth.errors.js';
import { IssuerRegistry, IssuerState, plainHttpEndpoints } from '../../src/auth/issuer.registry.js';
import type { GatewayConfig } from '../../src/config/gateway-config.js';
import { FakeIssuer, signingKey } from '../helpers/fake-issuer.js';

/**
 * Discovery is the issuer's (shared); key sets belong to the verification
 * profile that named them (issuer + extra_jwks_uris + timeout + cooldown);
 * a failing IdP is not asked again on every request.
 */

function logger(lines: { msg: string; obj: Record<string, unknown> }[] = []): Logger {
  const log = (obj: Record<string, unknown>, msg: string) => void lines.push({ obj, msg });
  return { info: log, warn: log, debug() {}, error: log } as unknown as Logger;
}

function registry(log = logger()) {
  return new IssuerRegistry({ openIdConnectConfigs: [] } as unknown as GatewayConfig, log);
}

const profile = (issuer: string, extra: string[] = [], timeout = 10_000, rediscovery_lifetime = 30) => ({ issuer, extra_jwks_uris: extra, timeout, rediscovery_lifetime });

describe('IssuerRegistry: key sets per verification profile', () => {
  it('gives each distinct extra_jwks_uris, timeout and cooldown its own key set, sharing one discovery', () => {
    const r = registry();
    const plain = r.get(profile('https://idp.example'));
    const extra = r.get(profile('https://idp.example', ['https://keys.example/b', 'https://keys.example/a']));
    assert.notEqual(plain, extra);
    assert.equal(r.get(profile('https://idp.example', ['https://keys.example/a', 'https://keys.example/b'])), extra, 'the same URIs in another order are the same key set');
    assert.notEqual(r.get(profile('https://idp.example', [], 5_000)), plain);
    assert.notEqual(r.get(profile('https://idp.example', [], 10_000, 5)), plain);
    assert.equal(r.get('https://idp.example', 10_000, [], 30_000), plain, 'get(config) and get(issuer, timeout, extra, cooldown) agree');
    assert.equal(extra.discovery, plain.discovery);
    assert.notEqual(r.get(profile('https://other.example')).discovery, plain.discovery);
    assert.equal(r.keySets('https://idp.example').length, 4);
  });

  it('the shared discovery waits as long as the most patient route allows', () => {
    const r = registry();
    const a = r.get(profile('https://idp.example', [], 2_000));
    r.get(profile('https://idp.example', ['https://keys.example'], 7_000));
    r.get(profile('https://idp.example', [], 3_000));
    assert.equal(a.discovery.timeoutMs, 7_000);
  });

  it('never trusts a key from one profile\'s extra_jwks_uris in another profile of the same issuer', async () => {
    const idp = await FakeIssuer.start();
    const extra = await FakeIssuer.start([await signingKey('ES256')]);
    try {
      const r = registry();
      const withExtra = r.get(profile(idp.issuer, [`${extra.issuer}/jwks`]));
      const without = r.get(profile(idp.issuer));
      const header = { alg: extra.keys[0].alg, kid: extra.keys[0].kid };
      assert.equal((await withExtra.resolveKeys(header)).length, 1);
      await assert.rejects(without.resolveKeys(header), joseErrors.JWKSNoMatchingKey);
      assert.equal(idp.discoveryFetches, 1, 'one discovery for both');
      assert.equal(extra.jwksFetches, 1, 'the extra key set is fetched only for the profile that names it');
      r.onModuleDestroy();
    } finally {
      await idp.stop();
      await extra.stop();
    }
  });

  it('probes, for readiness, the discovery document and every key set of the issuer', async () => {
    const idp = await FakeIssuer.start();
    const extra = await FakeIssuer.start();
    try {
      const r = registry();
      r.get(profile(idp.issuer));
      r.get(profile(idp.issuer, [`${extra.issuer}/jwks`]));
      assert.deepEqual(await r.probe(idp.issuer), { issuer: idp.issuer, keys: 2, key_sets: 2 });
      assert.equal(idp.jwksFetches, 1, 'a URL shared by key sets is fetched once per probe');
      await extra.stop();
      await assert.rejects(r.probe(idp.issuer), /ECONNREFUSED|fetch failed|connect/);
      r.onModuleDestroy();
    } finally {
      await idp.stop();
    }
  });
});

describe('IssuerState: a failing JWKS is not fetched for every request', () => {
  it('with no keys loaded yet, answers 503 without fetching until the backoff has passed', async () => {
    const idp = await FakeIssuer.start(undefined, 0, { jwksStatus: 500 });
    try {
      const state = new IssuerState(idp.issuer, 1000, logger());
      for (let i = 0; i < 30; i++) {
        await assert.rejects(state.resolveKeys({ alg: 'RS256', kid: idp.keys[0].kid }), IdentityProviderUnavailableError);
      }
      assert.equal(idp.jwksFetches, 1, `${idp.jwksFetches} JWKS fetches for 30 requests`);
      await new Promise((r) => setTimeout(r, 1100));
      await assert.rejects(state.resolveKeys({ alg: 'RS256', kid: idp.keys[0].kid }), /unavailable/);
      assert.equal(idp.jwksFetches, 2, 'retried once the first backoff (1 s) had passed');
      await assert.rejects(state.resolveKeys({ alg: 'RS256', kid: idp.keys[0].kid }), /fetching them failed recently/);
      assert.equal(idp.jwksFetches, 2);
      state.close();
    } finally {
      await idp.stop();
    }
  });

  it('refreshes stale keys in the background at most once per cooldown while the JWKS fails', async () => {
    const idp = await FakeIssuer.start();
    try {
      const state = new IssuerState(idp.issuer, 1000, logger(), [], 60_000);
      const { alg, kid } = idp.keys[0];
      await state.resolveKeys({ alg, kid });
      const fetches = idp.jwksFetches;
      idp.options.jwksStatus = 500;
      // Keys older than JWKS_MAX_AGE_MS, last fetched (and attempted) long ago.
      Object.assign(state as unknown as Record<string, number>, { jwksFetchedAt: 0, jwksAttemptAt: 0 });
      for (let i = 0; i < 20; i++) {
        assert.equal(state.cachedKeys(alg, kid)?.length, 1, 'cached keys keep verifying');
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(idp.jwksFetches, fetches + 1);
      state.close();
    } finally {
      await idp.stop();
    }
  });
});

describe('plain-http endpoints in a discovery document', () => {
  const cases: [string, Record<string, unknown>, { refused: string[]; warned: string[] }][] = [
    [
      'an https issuer: back-channel endpoints refused, browser-facing ones warned about',
      {
        issuer: 'https://idp.example',
        jwks_uri: 'http://idp.example/jwks',
        token_endpoint: 'http://idp.example/token',
        userinfo_endpoint: 'HTTP://idp.example/userinfo',
        introspection_endpoint: 'http://idp.example/introspect',
        revocation_endpoint: 'http://idp.example/revoke',
        authorization_endpoint: 'http://idp.example/auth',
        end_session_endpoint: 'http://idp.example/logout',
        op_policy_uri: 'http://idp.example/policy',
      },
      { refused: ['jwks_uri', 'token_endpoint', 'userinfo_endpoint', 'introspection_endpoint', 'revocation_endpoint'], warned: ['authorization_endpoint', 'end_session_endpoint'] },
    ],
    ['an https issuer with https endpoints', { issuer: 'https://idp.example', jwks_uri: 'https://idp.example/jwks', token_endpoint: 'https://idp.example/token' }, { refused: [], warned: [] }],
    ['a loopback http issuer with loopback endpoints (tests, the demo)', { issuer: 'http://127.0.0.1:8180', jwks_uri: 'http://127.0.0.1:8180/jwks', token_endpoint: 'http://localhost:8180/token' }, { refused: [], warned: [] }],
    ['a loopback http issuer naming a remote http endpoint', { issuer: 'http://127.0.0.1:8180', jwks_uri: 'http://keys.example/jwks' }, { refused: [], warned: ['jwks_uri'] }],
    ['a remote http issuer', { issuer: 'http://idp.internal', jwks_uri: 'http://idp.internal/jwks', token_endpoint: 'http://idp.internal/token' }, { refused: [], warned: ['jwks_uri', 'token_endpoint'] }],
  ];
  for (const [name, doc, expected] of cases) {
    it(name, () => assert.deepEqual(plainHttpEndpoints(doc), expected));
  }
});
