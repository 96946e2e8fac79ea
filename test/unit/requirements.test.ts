import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  challengeScope,
  claimValues,
  compileRequirement,
  describeFailure,
  evaluateRequirements,
  satisfies,
  type Requirement,
  type RequirementKind,
} from '../../src/auth/requirements.js';

/**
 * Requirement evaluation is pure: every rule is a row in a table. Kong's
 * notation: `["a b", "c"]` = (a AND b) OR c, matched exactly and
 * case-sensitively against a claim that is a space-separated string or an array.
 */

function req(kind: RequirementKind, claim: string[], required: string[]): Requirement {
  const r = compileRequirement(kind, claim, required);
  assert.ok(r, 'a non-empty requirement list compiles');
  return r;
}

describe('compileRequirement', () => {
  const cases: [string, string[] | undefined, string[][] | undefined][] = [
    ['undefined list: no requirement', undefined, undefined],
    ['empty list: no requirement', [], undefined],
    ['one scope', ['read'], [['read']]],
    ['AND group', ['a b'], [['a', 'b']]],
    ['Kong AND/OR', ['a b', 'c'], [['a', 'b'], ['c']]],
    ['extra whitespace inside a group', ['  a \t b  ', 'c'], [['a', 'b'], ['c']]],
  ];
  for (const [name, required, anyOf] of cases) {
    it(name, () => {
      const r = compileRequirement('scopes', ['scope'], required);
      if (anyOf === undefined) assert.equal(r, undefined);
      else assert.deepEqual(r, { kind: 'scopes', claim: ['scope'], anyOf });
    });
  }

  it('refuses a blank group instead of compiling it into "anything passes"', () => {
    // An empty AND-group would be satisfied by every token that has any value at all.
    for (const bad of [[''], ['   '], ['a', ' ']]) {
      assert.throws(() => compileRequirement('scopes', ['scope'], bad), /empty/, JSON.stringify(bad));
    }
  });
});

describe('claimValues', () => {
  const claims = {
    scope: 'openid  profile email',
    scp: ['read', 'write', 3, null, { x: 1 }],
    aud: 'https://api.example',
    realm_access: { roles: ['admin', 'user'], nested: { deeper: 'x y' } },
    empty: '',
    num: 42,
    bool: true,
    nil: null,
    obj: { a: 1 },
    list_of_objects: [{ roles: ['admin'] }],
  };
  const cases: [string, string[], string[]][] = [
    ['space-separated string is split (runs of spaces too)', ['scope'], ['openid', 'profile', 'email']],
    ['array keeps only its strings', ['scp'], ['read', 'write']],
    ['single string value', ['aud'], ['https://api.example']],
    ['nested path (Keycloak realm_access.roles)', ['realm_access', 'roles'], ['admin', 'user']],
    ['deeper nested string', ['realm_access', 'nested', 'deeper'], ['x', 'y']],
    ['missing claim', ['groups'], []],
    ['missing intermediate object', ['resource_access', 'roles'], []],
    ['path through a string', ['aud', 'length'], []],
    ['path through an array', ['list_of_objects', 'roles'], []],
    ['path through null', ['nil', 'roles'], []],
    ['empty string', ['empty'], []],
    ['number', ['num'], []],
    ['boolean', ['bool'], []],
    ['null', ['nil'], []],
    ['object', ['obj'], []],
    ['inherited property is not a claim', ['constructor'], []],
    ['inherited property is not a claim (toString)', ['toString'], []],
  ];
  for (const [name, path, expected] of cases) {
    it(name, () => assert.deepEqual(claimValues(claims, path), expected));
  }
});

describe('satisfies', () => {
  const scopes = req('scopes', ['scope'], ['a b', 'c']);
  const cases: [string, string[], Requirement, boolean][] = [
    ['(a AND b) present', ['a', 'b'], scopes, true],
    ['c alone', ['c'], scopes, true],
    ['all three', ['c', 'b', 'a'], scopes, true],
    ['only a', ['a'], scopes, false],
    ['only b', ['b'], scopes, false],
    ['nothing', [], scopes, false],
    ['unrelated values', ['x', 'y', 'z'], scopes, false],
    ['prefix is not a match', ['ab'], scopes, false],
    ['superstring is not a match (rewrite ≠ write)', ['rewrite'], req('scopes', ['scope'], ['write']), false],
    ['substring is not a match (writ ≠ write)', ['writ'], req('scopes', ['scope'], ['write']), false],
    ['case-sensitive (Write ≠ write)', ['Write'], req('scopes', ['scope'], ['write']), false],
    ['exact match', ['write'], req('scopes', ['scope'], ['write']), true],
    // More than 8 values switches to a Set lookup: the same answers must come out.
    ['many values, group present', ['1', '2', '3', '4', '5', '6', '7', '8', 'a', 'b'], scopes, true],
    ['many values, group incomplete', ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'a'], scopes, false],
    ['many values, case differs', ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'C'], scopes, false],
  ];
  for (const [name, found, requirement, expected] of cases) {
    it(name, () => assert.equal(satisfies(found, requirement), expected));
  }
});

describe('evaluateRequirements', () => {
  const scopes = req('scopes', ['scope'], ['a b', 'c']);
  const audience = req('audience', ['aud'], ['https://api.example']);
  const roles = req('roles', ['realm_access', 'roles'], ['admin']);
  const groups = req('groups', ['groups'], ['staff', 'ops']);

  const cases: [string, Record<string, unknown>, Requirement[], RequirementKind | undefined][] = [
    ['no requirements: allowed', {}, [], undefined],
    ['string scope claim, AND group', { scope: 'b a' }, [scopes], undefined],
    ['array scope claim, OR alternative', { scope: ['c'] }, [scopes], undefined],
    ['half of the AND group', { scope: 'a' }, [scopes], 'scopes'],
    ['scope claim missing', { scp: 'a b' }, [scopes], 'scopes'],
    ['scope claim not a string or array', { scope: 7 }, [scopes], 'scopes'],
    ['audience as a string', { aud: 'https://api.example' }, [audience], undefined],
    ['audience as an array', { aud: ['other', 'https://api.example'] }, [audience], undefined],
    ['audience differs by a trailing slash', { aud: 'https://api.example/' }, [audience], 'audience'],
    ['nested roles present', { realm_access: { roles: ['user', 'admin'] } }, [roles], undefined],
    ['nested roles at the top level do not count', { roles: ['admin'] }, [roles], 'roles'],
    ['nested roles object missing', { realm_access: null }, [roles], 'roles'],
    ['groups OR', { groups: ['ops'] }, [groups], undefined],
    ['groups case-sensitive', { groups: ['Staff'] }, [groups], 'groups'],
    ['all met', { scope: 'c', aud: 'https://api.example', realm_access: { roles: ['admin'] }, groups: 'staff' }, [scopes, audience, roles, groups], undefined],
    ['scopes checked first', { scope: 'x', aud: 'nope' }, [scopes, audience, roles], 'scopes'],
    ['then audience', { scope: 'c', aud: 'nope' }, [scopes, audience, roles], 'audience'],
    ['then roles', { scope: 'c', aud: 'https://api.example' }, [scopes, audience, roles], 'roles'],
    ['order is the list order', { scope: 'x', aud: 'nope' }, [audience, scopes], 'audience'],
  ];
  for (const [name, claims, requirements, failing] of cases) {
    it(name, () => {
      const f = evaluateRequirements(claims, requirements);
      if (failing === undefined) assert.equal(f, undefined);
      else {
        assert.ok(f, 'a failure is reported');
        assert.equal(f.requirement.kind, failing);
      }
    });
  }

  it('reports what the token had at the claim path, not what was required', () => {
    const f = evaluateRequirements({ scope: 'openid profile email' }, [req('scopes', ['scope'], ['kong_api_access'])]);
    assert.deepEqual(f?.found, ['openid', 'profile', 'email']);
    const r = evaluateRequirements({ realm_access: { roles: ['user'] } }, [roles]);
    assert.deepEqual(r?.found, ['user']);
  });
});

describe('describeFailure (the log line)', () => {
  const cases: [string, RequirementKind, string[], Record<string, unknown>, string][] = [
    ['scopes', 'scopes', ['scope'], { scope: 'openid profile email' }, 'required scopes were not found [ openid, profile, email ]'],
    ['audience', 'audience', ['aud'], { aud: ['account', 'other'] }, 'required audience was not found [ account, other ]'],
    ['roles', 'roles', ['realm_access', 'roles'], { realm_access: { roles: ['blog-reader'] } }, 'required roles were not found [ blog-reader ]'],
    ['groups', 'groups', ['groups'], { groups: 'readers' }, 'required groups were not found [ readers ]'],
    ['nothing found', 'scopes', ['scope'], {}, 'required scopes were not found [  ]'],
  ];
  for (const [name, kind, claim, claims, line] of cases) {
    it(name, () => {
      const f = evaluateRequirements(claims, [req(kind, claim, ['kong_api_access'])]);
      assert.ok(f);
      assert.equal(describeFailure(f), line);
    });
  }

  it('never names the missing requirement (only what the token had)', () => {
    const f = evaluateRequirements({ scope: 'openid' }, [req('scopes', ['scope'], ['secret_scope'])]);
    assert.ok(f && !describeFailure(f).includes('secret_scope'));
  });
});

describe('challengeScope (RFC 6750 insufficient_scope)', () => {
  it('is the first alternative for scopes', () => {
    const f = evaluateRequirements({ scope: 'x' }, [req('scopes', ['scope'], ['a b', 'c'])]);
    assert.ok(f);
    assert.equal(challengeScope(f), 'a b');
  });
  it('is absent for audience, roles and groups', () => {
    for (const kind of ['audience', 'roles', 'groups'] as const) {
      const f = evaluateRequirements({}, [req(kind, [kind], ['x'])]);
      assert.ok(f);
      assert.equal(challengeScope(f), undefined, kind);
    }
  });
});
