import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refreshedIdTokenProblem } from '../../src/auth/token-refresher.js';

describe('a refreshed ID token must be the same login (OIDC Core §12.2)', () => {
  const session = { iss: 'https://idp', sub: 'alice' };
  const original = { iss: 'https://idp', sub: 'alice', aud: 'gw', azp: 'gw', auth_time: 1000, iat: 1000 };
  const cases: [string, Record<string, unknown> | undefined, string | undefined][] = [
    ['the same user, a new iat', { ...original, iat: 2000 }, undefined],
    ['aud as an array with the same member', { ...original, aud: ['gw'] }, undefined],
    ['no auth_time in the new one', { ...original, auth_time: undefined }, undefined],
    ['another subject', { ...original, sub: 'mallory' }, 'sub differs'],
    ['another issuer', { ...original, iss: 'https://evil' }, 'iss differs'],
    ['another audience', { ...original, aud: ['gw', 'other'] }, 'aud differs'],
    ['another authorized party', { ...original, azp: 'other' }, 'azp differs'],
    ['a new authentication time', { ...original, auth_time: 1500 }, 'auth_time differs'],
    ['an ID token that was not validated', undefined, 'the token response has an id_token that could not be validated'],
  ];
  for (const [name, refreshed, problem] of cases) {
    it(name, () => assert.equal(refreshedIdTokenProblem(original, refreshed, session), problem));
  }
  it('checks against the session when the original ID token is gone', () => {
    assert.equal(refreshedIdTokenProblem(undefined, { ...original, sub: 'mallory' }, session), 'sub differs');
    assert.equal(refreshedIdTokenProblem(undefined, original, session), undefined);
  });
});
