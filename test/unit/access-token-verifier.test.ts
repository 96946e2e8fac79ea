import assert from 'node:assert/strict';
import { constants, createPublicKey, generateKeyPairSync, KeyObject, randomBytes, sign as nodeSign, type webcrypto } from 'node:crypto';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Logger } from 'pino';
import { AccessTokenVerifier, ASYMMETRIC_ALGORITHMS, checkClaims, InvalidTokenError, type VerifiedToken, type VerifyOptions } from '../../src/auth/access-token.verifier.js';
import { IssuerState } from '../../src/auth/issuer.registry.js';
import { keyProblem, verifySignature } from '../../src/auth/jws-signature.js';

/**
 * The signature step (node:crypto on KeyObjects) and the claim checks of the
 * bearer verifier, against tokens signed by jose: every algorithm of the
 * allow-list, and the ways a token or a key can be wrong.
 */

const ISSUER = 'https://idp.example';
const SIGNED_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

async function keyPair(alg: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey: KeyObject.from(publicKey as webcrypto.CryptoKey), jwk: await exportJWK(publicKey) };
}

/** A JWS built by hand, for what jose refuses to produce (unknown crit, PS256 with an RS256 key). */
function rawJws(header: Record<string, unknown>, claims: Record<string, unknown>, key: webcrypto.CryptoKey, pss = false) {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, exp: Math.floor(Date.now() / 1000) + 300, ...claims })).toString('base64url')}`;
  const k = KeyObject.from(key);
  const sig = nodeSign('sha256', Buffer.from(input), pss ? { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : k);
  return `${input}.${sig.toString('base64url')}`;
}

function parts(token: string) {
  const last = token.lastIndexOf('.');
  return { input: Buffer.from(token.slice(0, last)), signature: Buffer.from(token.slice(last + 1), 'base64url') };
}

async function sign(alg: string, privateKey: webcrypto.CryptoKey | Uint8Array, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) {
  return new SignJWT({ sub: 'alice', ...claims })
    .setProtectedHeader({ alg, typ: 'at+jwt', ...header })
    .setIssuer(ISSUER)
    .setExpirationTime('5m')
    .sign(privateKey);
}

describe('verifySignature (RFC 7518 §3 with node:crypto)', () => {
  for (const alg of SIGNED_ALGS) {
    it(`${alg}: accepts jose's signature, refuses a changed payload or signature`, async () => {
      const { privateKey, publicKey } = await keyPair(alg);
      assert.equal(keyProblem(alg, publicKey), undefined);
      const token = await sign(alg, privateKey);
      const { input, signature } = parts(token);
      assert.equal(verifySignature(alg, publicKey, input, signature), true);
      const changed = Buffer.from(input);
      changed[changed.length - 2] ^= 1;
      assert.equal(verifySignature(alg, publicKey, changed, signature), false);
      const flipped = Buffer.from(signature);
      flipped[0] ^= 1;
      assert.equal(verifySignature(alg, publicKey, input, flipped), false);
      assert.equal(verifySignature(alg, publicKey, input, Buffer.alloc(0)), false);
    });
  }

  it('HS256: the secret verifies, another secret or a public key does not', async () => {
    const secret = new TextEncoder().encode('a-shared-secret-that-is-long-enough-000');
    const { input, signature } = parts(await sign('HS256', secret));
    assert.equal(verifySignature('HS256', secret, input, signature), true);
    assert.equal(verifySignature('HS256', new TextEncoder().encode('another-secret-that-is-long-enough-0000'), input, signature), false);
    assert.equal(verifySignature('HS256', (await keyPair('RS256')).publicKey, input, signature), false);
    assert.equal(verifySignature('HS256', secret, input, signature.subarray(1)), false);
  });

  it('refuses an ES256 signature in DER form (JWS uses R || S)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const input = Buffer.from('eyJhbGciOiJFUzI1NiJ9.e30');
    const der = nodeSign('sha256', input, privateKey);
    assert.equal(verifySignature('ES256', publicKey, input, der), false);
    assert.equal(verifySignature('ES256', publicKey, input, nodeSign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })), true);
  });

  it('an unknown algorithm or "none" verifies nothing', async () => {
    const { publicKey } = await keyPair('RS256');
    assert.equal(verifySignature('none', publicKey, Buffer.from('a.b'), Buffer.alloc(0)), false);
    assert.equal(verifySignature('RS1', publicKey, Buffer.from('a.b'), Buffer.alloc(256)), false);
  });
});

describe('keyProblem (a key must fit the algorithm)', () => {
  it('refuses RSA keys shorter than 2048 bits', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.match(keyProblem('RS256', publicKey)!, /1024 bits/);
  });

  it('refuses a key of another type or curve', async () => {
    const rsa = (await keyPair('RS256')).publicKey;
    const p256 = (await keyPair('ES256')).publicKey;
    const ed = (await keyPair('EdDSA')).publicKey;
    assert.ok(keyProblem('ES256', rsa));
    assert.ok(keyProblem('ES384', p256));
    assert.ok(keyProblem('RS256', p256));
    assert.ok(keyProblem('EdDSA', p256));
    assert.ok(keyProblem('PS256', ed));
    assert.ok(keyProblem('HS256', rsa));
    assert.equal(keyProblem('PS256', rsa), undefined, 'an RSA key serves PS* as well as RS*');
  });

  it('refuses a private key', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.equal(keyProblem('ES256', privateKey), 'not a public key');
  });
});

describe('checkClaims (RFC 7519 §4.1, RFC 9068 §4)', () => {
  const now = 1_800_000_000;
  const ok = { iss: ISSUER, exp: now + 60 };
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['another issuer', { ...ok, iss: 'https://idp.example/' }, /iss/],
    ['no exp', { iss: ISSUER }, /exp/],
    ['exp as a string', { ...ok, exp: String(now + 60) }, /exp/],
    ['expired beyond the leeway', { ...ok, exp: now - 11 }, /expired/],
    ['nbf beyond the leeway', { ...ok, nbf: now + 11 }, /nbf/],
    ['nbf as a string', { ...ok, nbf: 'soon' }, /nbf/],
    ['iat as a string', { ...ok, iat: 'yesterday' }, /iat/],
    ['iat in the future beyond the leeway', { ...ok, iat: now + 11 }, /^claim check failed: iat \(in the future\)$/],
  ];
  for (const [name, claims, reason] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => checkClaims(claims, ISSUER, 10, undefined, now), (e: Error) => e instanceof InvalidTokenError && reason.test(e.message)));
  }

  it('accepts exp, nbf and iat within the leeway', () => {
    assert.ok(checkClaims({ ...ok, exp: now - 9, nbf: now + 9, iat: now }, ISSUER, 10, undefined, now));
    assert.ok(checkClaims({ ...ok, iat: now + 10 }, ISSUER, 10, undefined, now));
    assert.throws(() => checkClaims({ ...ok, iat: now + 1 }, ISSUER, 0, undefined, now), /iat \(in the future\)/);
  });

  it('requires one of the route\'s audiences when it names any, exactly', () => {
    assert.ok(checkClaims({ ...ok, aud: ['x', 'https://api'] }, ISSUER, 0, ['https://api'], now));
    assert.ok(checkClaims({ ...ok, aud: 'https://api' }, ISSUER, 0, ['https://api'], now));
    for (const aud of [undefined, 'https://api/', ['https://API'], [1]]) {
      assert.throws(() => checkClaims({ ...ok, aud: aud as string }, ISSUER, 0, ['https://api'], now), /aud/, JSON.stringify(aud));
    }
  });
});

describe('AccessTokenVerifier', () => {
  const silent = { info() {}, warn() {}, debug() {}, error() {} } as unknown as Logger;

  /** An issuer whose discovery and JWKS are already in hand, as after the first request. */
  function knownIssuer(keys: object[]): IssuerState {
    const issuer = new IssuerState(ISSUER, 1000, silent);
    issuer.metadata = { issuer: ISSUER, jwks_uri: 'https://idp.example/jwks' };
    (issuer as unknown as { adoptKeys(k: object[]): void }).adoptKeys(keys);
    // Just fetched: an unknown kid now waits for the refetch cooldown instead of fetching.
    (issuer as unknown as { jwksAttemptAt: number }).jwksAttemptAt = Date.now();
    return issuer;
  }

  async function setup() {
    const rs = await keyPair('RS256');
    const es = await keyPair('ES256');
    const issuer = knownIssuer([{ ...rs.jwk, kid: 'rs', alg: 'RS256', use: 'sig' }, { ...es.jwk, kid: 'es', use: 'sig' }]);
    const opts: VerifyOptions = { issuer, algorithms: ASYMMETRIC_ALGORITHMS, leewaySeconds: 0, verifySignature: true };
    return { rs, es, issuer, opts, verifier: new AccessTokenVerifier() };
  }

  it('verifies a token whose key is known without waiting, once the key has been resolved', async () => {
    const { rs, opts, verifier } = await setup();
    const first = await sign('RS256', rs.privateKey, { n: 1 }, { kid: 'rs' });
    assert.equal(verifier.verifyNow(first, opts, AccessTokenVerifier.cacheKey(first)), undefined, 'the key is not resolved yet');
    assert.equal((await verifier.verify(first, opts)).claims.n, 1);
    const second = await sign('RS256', rs.privateKey, { n: 2 }, { kid: 'rs' });
    assert.equal(verifier.verifyNow(second, opts, AccessTokenVerifier.cacheKey(second))?.claims.n, 2);
  });

  it('caches a token from its second verification on, and serves repeats from the cache', async () => {
    const { rs, opts, verifier } = await setup();
    const token = await sign('RS256', rs.privateKey, { n: 1 }, { kid: 'rs' });
    const key = AccessTokenVerifier.cacheKey(token);
    const first = await verifier.verify(token, opts);
    const second = verifier.verifyNow(token, opts, key);
    assert.ok(second && second !== first, 'seen once: verified again, not served from the cache');
    assert.equal(verifier.verifyNow(token, opts, key), second, 'seen twice: now a cache hit');
    assert.equal(verifier.lookup(key), second);
  });

  it('remembers the last token verified on a connection, compared in full, until it expires', async () => {
    const { rs, opts, verifier } = await setup();
    await verifier.verify(await sign('RS256', rs.privateKey, { n: 0 }, { kid: 'rs' }), opts); // resolves the key
    const token = await sign('RS256', rs.privateKey, { n: 1 }, { kid: 'rs' });
    const [a, b] = [{}, {}];
    // As TokenAuthenticator.verifyCached uses the two steps.
    const onConnection = (v: AccessTokenVerifier, t: string, c: object) => v.repeatOnConnection(t, c) ?? v.verifyAndRemember(t, opts, c);
    // First sight: verified, not admitted to the cache (doorkeeper), remembered on connection a.
    const first = onConnection(verifier, token, a);
    assert.ok(first);
    assert.equal(onConnection(verifier, token, a), first, 'the same token on the same connection: the memo');
    const other = onConnection(verifier, token, b);
    assert.ok(other && other !== first, 'connection b has no memo: verified again (second sight, now cached)');
    // A token that differs in one character of its signature is another token (and a bad signature).
    // Not the last character: of an RS256 signature's it carries only 2 bits, and changing the 4
    // padding bits decodes to the same bytes (this made the test flaky).
    const at = token.length - 10;
    const tampered = token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
    assert.throws(() => onConnection(verifier, tampered, a), /signature verification failed|not a JWS/);
    assert.equal(onConnection(verifier, token, a), first, 'a refused token does not replace the memo');
    first.expiresAt = Date.now() - 1;
    const again = onConnection(verifier, token, a);
    assert.equal(again, other, 'an expired memo is not used: the cache answers');
    // Another verifier (another verification profile) never uses this one's memo.
    const strict = new AccessTokenVerifier();
    assert.notEqual(onConnection(strict, token, a), again);
  });

  it('does not let tokens seen once evict the tokens that come back (doorkeeper admission)', () => {
    const verifier = new AccessTokenVerifier(2);
    const entry = (): VerifiedToken => ({ claims: {}, expiresAt: Date.now() + 60_000 });
    const regular = AccessTokenVerifier.cacheKey('a regular client');
    assert.equal(verifier.admit(regular, entry()), false);
    const cached = entry();
    assert.equal(verifier.admit(regular, cached), true);
    for (let i = 0; i < 1000; i++) assert.equal(verifier.admit(AccessTokenVerifier.cacheKey(`one-off ${i}`), entry()), false);
    assert.equal(verifier.lookup(regular), cached, 'still cached after 1,000 one-off tokens with room for 2');
  });

  it('forgets a token seen once after 16,384 other misses', () => {
    const verifier = new AccessTokenVerifier();
    const entry = (): VerifiedToken => ({ claims: {}, expiresAt: Date.now() + 60_000 });
    const key = AccessTokenVerifier.cacheKey('seen long ago');
    assert.equal(verifier.admit(key, entry()), false);
    for (let i = 0; i < 16_384; i++) verifier.admit(randomBytes(32).toString('base64url'), entry());
    assert.equal(verifier.admit(key, entry()), false, 'the doorkeeper was cleared: a first sight again');
    assert.equal(verifier.admit(key, entry()), true);
  });

  it('refuses, on the synchronous path too, a token signed by another key under a known kid', async () => {
    const { rs, opts, verifier } = await setup();
    await verifier.verify(await sign('RS256', rs.privateKey, {}, { kid: 'rs' }), opts);
    const forged = await sign('RS256', (await keyPair('RS256')).privateKey, {}, { kid: 'rs' });
    assert.throws(() => verifier.verifyNow(forged, opts, AccessTokenVerifier.cacheKey(forged)), /signature verification failed/);
    await assert.rejects(verifier.verify(forged, opts), /signature verification failed/);
  });

  it('chooses the algorithm from the allow-list, never from the token', async () => {
    const { rs, es, opts, verifier } = await setup();
    const secret = new TextEncoder().encode(JSON.stringify(rs.jwk));
    const confused = await sign('HS256', secret, {}, { kid: 'rs' });
    await assert.rejects(verifier.verify(confused, opts), /algorithm not allowed/);
    const esOnly = { ...opts, algorithms: ['ES256'] };
    await assert.rejects(verifier.verify(await sign('RS256', rs.privateKey, {}, { kid: 'rs' }), esOnly), /algorithm not allowed/);
    assert.ok(await verifier.verify(await sign('ES256', es.privateKey, {}, { kid: 'es' }), esOnly));
  });

  it('never uses a key the JWKS binds to another algorithm', async () => {
    const { rs, opts, verifier } = await setup();
    // The "rs" JWK says alg RS256: a PS256 token under that kid finds no key.
    const ps = rawJws({ alg: 'PS256', kid: 'rs' }, {}, rs.privateKey, true);
    await assert.rejects(verifier.verify(ps, opts), /no key of the issuer matches/);
  });

  it('tries every key that fits when the token names no kid', async () => {
    const rs2 = await keyPair('RS256');
    const rs1 = await keyPair('RS256');
    const issuer = knownIssuer([{ ...rs1.jwk, kid: 'a' }, { ...rs2.jwk, kid: 'b' }]);
    const opts: VerifyOptions = { issuer, algorithms: ['RS256'], leewaySeconds: 0, verifySignature: true };
    const verifier = new AccessTokenVerifier();
    assert.equal((await verifier.verify(await sign('RS256', rs2.privateKey, { k: 2 }), opts)).claims.k, 2);
    const again = await sign('RS256', rs2.privateKey, { k: 3 });
    assert.equal(verifier.verifyNow(again, opts, AccessTokenVerifier.cacheKey(again))?.claims.k, 3);
  });

  it('refuses malformed tokens, crit headers and ID tokens before or after the signature', async () => {
    const { rs, opts, verifier } = await setup();
    const valid = await sign('RS256', rs.privateKey, {}, { kid: 'rs' });
    const [h, p, s] = valid.split('.');
    const cases: [string, string, RegExp][] = [
      ['two parts', `${h}.${p}`, /not a JWS/],
      ['four parts', `${valid}.x`, /not a JWS/],
      ['padding in a part', `${h}=.${p}.${s}`, /not a JWS/],
      ['a header that is not JSON', `${Buffer.from('nope').toString('base64url')}.${p}.${s}`, /not a JWS/],
      ['alg none', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.${s}`, /algorithm not allowed/],
      ['crit', rawJws({ alg: 'RS256', kid: 'rs', crit: ['urn:x'], 'urn:x': 1 }, {}, rs.privateKey), /crit/],
      ['a logout token type', await sign('RS256', rs.privateKey, {}, { kid: 'rs', typ: 'logout+jwt' }), /not an access token/],
      ['an ID token', await sign('RS256', rs.privateKey, { nonce: 'n' }, { kid: 'rs', typ: 'JWT' }), /ID token/],
      ['a payload that is not an object', await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'rs' }).sign(rs.privateKey).then((t) => {
        const [th, , ts] = t.split('.');
        return `${th}.${Buffer.from('[1]').toString('base64url')}.${ts}`;
      }), /signature verification failed|not a JSON object/],
    ];
    for (const [name, token, reason] of cases) await assert.rejects(verifier.verify(token, opts), reason, name);
  });

  it('checks claims even when verify_signature is off', async () => {
    const { opts, verifier } = await setup();
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.x`;
    const lax = { ...opts, verifySignature: false };
    assert.ok(await verifier.verify(unsigned, lax));
    const noSignature = unsigned.slice(0, unsigned.lastIndexOf('.') + 1);
    assert.ok(await verifier.verify(noSignature, lax), 'an unsigned token (empty signature) where signatures are not checked');
    // Another verifier: the gateway never shares a cache between verification profiles (OpenIdConnectInstance.verificationProfile).
    await assert.rejects(new AccessTokenVerifier().verify(noSignature, opts), /not a JWS|algorithm not allowed/);
    const expired = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, exp: 1 })).toString('base64url')}.x`;
    await assert.rejects(verifier.verify(expired, lax), /expired/);
  });

  it('remembers resolved keys only until the JWKS changes', async () => {
    const { rs, issuer } = await setup();
    await issuer.resolveKeys({ alg: 'RS256', kid: 'rs' });
    assert.equal(issuer.cachedKeys('RS256', 'rs')?.length, 1);
    (issuer as unknown as { adoptKeys(k: object[]): void }).adoptKeys([{ ...rs.jwk, kid: 'rs2' }]);
    assert.equal(issuer.cachedKeys('RS256', 'rs'), undefined);
    assert.equal(createPublicKey({ key: rs.jwk as never, format: 'jwk' }).asymmetricKeyType, 'rsa');
  });
});

/**
 * Access tokens and ID tokens as real IdPs issue them (claim sets trimmed to
 * what matters, `iss`/`exp`/`sub` added by sign()), all signed by the same key
 * and without `typ: at+jwt` unless noted: the claims alone must tell them apart
 * (RFC 9068 §4, RFC 8725 §3.11).
 */
describe('ID tokens are not access tokens', () => {
  const now = Math.floor(Date.now() / 1000);
  const CLIENT = 'gatehouse';
  type Case = { claims: Record<string, unknown>; typ?: string; clientId?: string };

  const accepted: Record<string, Case> = {
    'Keycloak access token (aud account, azp, scope, sid, auth_time, typ Bearer)': {
      claims: { typ: 'Bearer', aud: 'account', azp: CLIENT, scope: 'openid profile email', sid: 'f1c2', session_state: 'f1c2', auth_time: now - 60, realm_access: { roles: ['user'] }, preferred_username: 'alice' },
      clientId: CLIENT,
    },
    'Keycloak access token with the gateway in aud (audience mapper)': {
      claims: { typ: 'Bearer', aud: [CLIENT, 'account'], azp: CLIENT, scope: 'openid', sid: 'f1c2' },
      clientId: CLIENT,
    },
    'Keycloak access token without aud': { claims: { typ: 'Bearer', azp: CLIENT, scope: 'openid email', auth_time: now - 60 }, clientId: CLIENT },
    'Okta access token (scp, cid)': {
      claims: { ver: 1, jti: 'AT.x', aud: 'api://default', cid: '0oa1client', uid: '00u1user', scp: ['openid', 'email'], auth_time: now - 60 },
      clientId: '0oa1client',
    },
    'Entra delegated access token (scp, azp)': {
      claims: { aud: '6e74172b-be56-4843-9ff4-e66a39bb12e3', azp: 'c1f2a3b4-client', azpacr: '1', scp: 'access_as_user', ver: '2.0', tid: 't', oid: 'o', name: 'Alice' },
      clientId: 'c1f2a3b4-client',
    },
    'Entra app-only access token (roles, azp, no scp)': {
      claims: { aud: 'api://orders', azp: 'd4e5-daemon', azpacr: '1', roles: ['Orders.Read.All'], ver: '2.0', tid: 't', oid: 'o' },
    },
    'Auth0 access token (scope, azp, aud array)': {
      claims: { aud: ['https://api.example', 'https://tenant.auth0.com/userinfo'], azp: 'spa-client', scope: 'openid profile read:orders' },
      clientId: 'spa-client',
    },
    'Auth0 machine-to-machine access token without permissions (no scope)': {
      claims: { aud: 'https://api.example', azp: 'm2m-client', gty: 'client-credentials', sub: 'm2m-client@clients' },
    },
    'oidc-provider RFC 9068 access token (typ at+jwt)': {
      claims: { client_id: CLIENT, aud: 'http://localhost:8000', scope: 'openid kong_api_access', jti: 'j' },
      typ: 'at+jwt',
      clientId: CLIENT,
    },
    'an at+jwt token for the gateway\'s own client_id, without scope': { claims: { client_id: CLIENT, aud: CLIENT }, typ: 'application/at+jwt', clientId: CLIENT },
  };

  const refused: Record<string, Case & { reason: RegExp }> = {
    'Keycloak ID token (typ ID, no nonce or at_hash)': { claims: { typ: 'ID', aud: CLIENT, azp: CLIENT, sid: 'f1c2', email: 'a@x' }, reason: /ID token \(typ "ID"\)/ },
    'typ claim compared case-insensitively': { claims: { typ: 'id', aud: 'x', scope: 'openid' }, reason: /ID token \(typ "id"\)/ },
    'Keycloak logout token (typ Logout)': { claims: { typ: 'Logout', aud: CLIENT, sid: 'f1c2' }, reason: /logout token/ },
    'Keycloak refresh token (typ Refresh)': { claims: { typ: 'Refresh', aud: ISSUER, azp: CLIENT, scope: 'openid', sid: 'f1c2' }, reason: /refresh token/ },
    'back-channel logout token (events)': { claims: { aud: CLIENT, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }, reason: /logout token \(events\)/ },
    'ID token with nonce': { claims: { aud: CLIENT, nonce: 'n' }, reason: /ID token \(nonce\)/ },
    'ID token with at_hash': { claims: { aud: CLIENT, at_hash: 'h' }, reason: /ID token \(at_hash\)/ },
    'ID token with c_hash': { claims: { aud: CLIENT, c_hash: 'h' }, reason: /ID token \(c_hash\)/ },
    'ID token with s_hash (FAPI)': { claims: { aud: CLIENT, s_hash: 'h' }, reason: /ID token \(s_hash\)/ },
    'Okta ID token without nonce (auth_time, no scp)': { claims: { ver: 1, aud: '0oa1client', amr: ['pwd'], idp: '00o1', auth_time: now - 60 }, reason: /auth_time without scope/ },
    'Entra ID token without nonce (sid, no scp)': { claims: { aud: 'c1f2a3b4-client', ver: '2.0', tid: 't', oid: 'o', sid: 's', preferred_username: 'alice', rh: 'r' }, reason: /sid without scope/ },
    'Entra ID token without nonce or sid, to this route\'s client_id': {
      claims: { aud: 'c1f2a3b4-client', ver: '2.0', tid: 't', oid: 'o', name: 'Alice' },
      clientId: 'c1f2a3b4-client',
      reason: /client_id/,
    },
    'Auth0 ID token without nonce (sid, no scope)': { claims: { aud: 'spa-client', nickname: 'alice', name: 'Alice', sid: 's', updated_at: '2024-01-01' }, reason: /sid without scope/ },
    'Google-style ID token (aud is azp, no scope)': { claims: { aud: 'c.apps.example', azp: 'c.apps.example', email: 'a@x', email_verified: true }, reason: /aud is its azp/ },
    'oidc-provider ID token from the password grant, to this route\'s client_id': {
      claims: { aud: CLIENT, email: 'a@x', groups: ['g'] },
      clientId: CLIENT,
      reason: /client_id/,
    },
  };

  async function setupFor(clientId?: string) {
    const rs = await keyPair('RS256');
    const silent = { info() {}, warn() {}, debug() {}, error() {} } as unknown as Logger;
    const issuer = new IssuerState(ISSUER, 1000, silent);
    issuer.metadata = { issuer: ISSUER, jwks_uri: 'https://idp.example/jwks' };
    (issuer as unknown as { adoptKeys(k: object[]): void }).adoptKeys([{ ...rs.jwk, kid: 'rs', alg: 'RS256' }]);
    const opts: VerifyOptions = { issuer, algorithms: ASYMMETRIC_ALGORITHMS, leewaySeconds: 0, verifySignature: true, clientId };
    return { rs, opts };
  }

  for (const [name, c] of Object.entries(accepted)) {
    it(`accepts: ${name}`, async () => {
      const { rs, opts } = await setupFor(c.clientId);
      const token = await sign('RS256', rs.privateKey, c.claims, { kid: 'rs', typ: c.typ ?? 'JWT' });
      const verified = await new AccessTokenVerifier().verify(token, opts);
      assert.equal(verified.claims.iss, ISSUER);
    });
  }

  for (const [name, c] of Object.entries(refused)) {
    it(`refuses: ${name}`, async () => {
      const { rs, opts } = await setupFor(c.clientId);
      const token = await sign('RS256', rs.privateKey, c.claims, { kid: 'rs', typ: 'JWT' });
      await assert.rejects(new AccessTokenVerifier().verify(token, opts), (e: Error) => e instanceof InvalidTokenError && /cannot be used as an access token/.test(e.message) && c.reason.test(e.message));
    });
  }

  it('a header typ of at+jwt decides: the same ID-token-like claims pass only when typed as an access token', async () => {
    const { rs, opts } = await setupFor(CLIENT);
    const claims = { aud: CLIENT, sid: 's', auth_time: now - 60 };
    const typed = await sign('RS256', rs.privateKey, claims, { kid: 'rs', typ: 'at+jwt' });
    assert.ok(await new AccessTokenVerifier().verify(typed, opts));
    await assert.rejects(new AccessTokenVerifier().verify(await sign('RS256', rs.privateKey, claims, { kid: 'rs', typ: 'JWT' }), opts), /ID token/);
    const untyped = await new SignJWT({ sub: 'alice', ...claims }).setProtectedHeader({ alg: 'RS256', kid: 'rs' }).setIssuer(ISSUER).setExpirationTime('5m').sign(rs.privateKey);
    await assert.rejects(new AccessTokenVerifier().verify(untyped, opts), /ID token/);
  });
});
