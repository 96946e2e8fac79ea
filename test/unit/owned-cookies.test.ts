import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OwnedCookies } from '../../src/auth/owned-cookies.js';
import { IDENTITY_HEADERS, identityStripRule, upstreamRequestHeaders } from '../../src/proxy/forwarding-headers.js';

describe('OwnedCookies: the gateway\'s cookies never reach an upstream', () => {
  const owned = new OwnedCookies(['session', 'app_session']);
  const cases: [string, string | undefined][] = [
    ['a=1; b=2', 'a=1; b=2'],
    ['session=x', undefined],
    ['session=x; session_2=y; session_10=z; a=1', 'a=1'],
    ['__Host-session=x; __Secure-session_3=y; a=1', 'a=1'],
    ['app_session=x; app_session_2=y', undefined],
    ['gatehouse_auth_abc=1; __Host-gatehouse_auth_def=2; keep=3', 'keep=3'],
    // Names that only start like an owned one are someone else's.
    ['sessionid=1; session_x=2; session_123=3; my_session=4', 'sessionid=1; session_x=2; session_123=3; my_session=4'],
  ];
  for (const [header, expected] of cases) {
    it(`${header} → ${expected ?? '(nothing)'}`, () => assert.equal(owned.filter(header), expected));
  }

  it('passes a header without any owned name through as the same string', () => {
    const header = 'theme=dark; lang=en';
    assert.equal(owned.filter(header), header);
  });

  it('with() adds a route\'s bearer-token cookie', () => {
    assert.equal(owned.with(['at']).filter('at=tok; session=x; a=1'), 'a=1');
    assert.equal(owned.filter('at=tok; a=1'), 'at=tok; a=1');
  });
});

describe('identity headers stripped on plugin routes', () => {
  const facts = { peer: '127.0.0.1', peerTrusted: false, scheme: 'http' as const, localPort: 8000, path: '/p', requestId: 'r', upstreamHost: 'u' };
  const sent = (rule = identityStripRule(['x-user-sub']), raw: string[]) => {
    const out = upstreamRequestHeaders(raw, { ...facts, stripHeaders: rule });
    const names: string[] = [];
    for (let i = 0; i < out.length; i += 2) names.push(out[i].toLowerCase());
    return names;
  };
  const spoofs = ['X-Userinfo', 'X-Consumer-ID', 'x_consumer_username', 'X-Authenticated-Userid', 'X-Auth-Request-Email', 'X-Remote-Group', 'X-Forwarded-User', 'X-HTTP-Method-Override', 'X-Original-URL', 'X-Rewrite-URL', 'X_User_Sub'];
  for (const name of spoofs) {
    it(`drops ${name}`, () => assert.ok(!sent(undefined, [name, 'v', 'accept', '*/*']).includes(name.toLowerCase())));
  }
  it('keeps everything else, and everything on routes without a rule', () => {
    assert.deepEqual(sent(undefined, ['x-custom', '1', 'x-consumer', '2']).slice(0, 2), ['x-custom', 'x-consumer']);
    const out = upstreamRequestHeaders(['X-Userinfo', 'v'], facts);
    assert.equal(out[0], 'X-Userinfo');
  });
  it('lists only canonical lower-case names and "x-" prefixes', () => {
    for (const n of IDENTITY_HEADERS.names) assert.equal(n, n.toLowerCase().replace(/_/g, '-'));
    for (const p of IDENTITY_HEADERS.prefixes) assert.match(p, /^x-[a-z-]+-$/);
  });
});
