import 'reflect-metadata';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Controller, Get, type INestApplication, Module, Req, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { pino } from 'pino';
import { request } from 'undici';
import { AuthModule } from '../../src/auth/auth.module.js';
import { OpenIdConnectAuthGuard } from '../../src/auth/openid-connect-auth.guard.js';
import { compileOpenIdConnectAuthOptions, type OpenIdConnectAuthModuleOptions } from '../../src/auth/openid-connect-auth.options.js';
import type { Principal } from '../../src/auth/principal.js';
import { RequireRoles, RequireScopes } from '../../src/auth/require-scopes.decorator.js';
import { createSessionStore } from '../../src/auth/session.store.js';
import { ConfigError } from '../../src/config/config.loader.js';
import { FakeIssuer } from '../helpers/fake-issuer.js';

const AUDIENCE = 'https://reports.example';
const SESSION_SECRET = 'reports-app-session-secret-0123456789abcdef';

/** A team's own controller: the guard from AuthModule.forRoot, requirements by decorator (class + handler add up). */
@Controller('reports')
@UseGuards(OpenIdConnectAuthGuard)
@RequireScopes('reports:read')
class ReportsController {
  @Get()
  list(@Req() req: { user?: Principal }) {
    return { sub: req.user?.claims.sub, reports: ['q1', 'q2'] };
  }

  @Get('admin')
  @RequireRoles(['realm_access', 'roles'], 'reports-admin')
  admin() {
    return { ok: true };
  }
}

/**
 * AuthModule.forRoot in a Nest application of a team's own, without a Kong
 * file, on each HTTP adapter: OpenIdConnectAuthGuard authenticates bearer tokens from a
 * real issuer (discovery, JWKS, signatures) and the gateway's session cookie,
 * answers 401 with an RFC 6750 challenge and never a redirect, and the
 * decorators' requirements decide 403 or 200.
 */
for (const adapter of ['express', 'fastify'] as const) {
  describe(`AuthModule.forRoot + OpenIdConnectAuthGuard + @RequireScopes on ${adapter}`, () => {
    let issuer: FakeIssuer;
    let app: INestApplication;
    let base: string;
    let options: OpenIdConnectAuthModuleOptions;

    before(async () => {
      issuer = await FakeIssuer.start();
      options = { issuer: issuer.issuer, audience_required: [AUDIENCE], session_secret: SESSION_SECRET, logger: pino({ level: 'silent' }) };
      @Module({ imports: [AuthModule.forRoot(options)], controllers: [ReportsController] })
      class ReportsApp {}
      app = await NestFactory.create(ReportsApp, adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: false });
      await app.listen(0, '127.0.0.1');
      const address = app.getHttpServer().address();
      base = `http://127.0.0.1:${address.port}`;
    });

    after(async () => {
      await app?.close();
      await issuer?.stop();
    });

    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await request(`${base}${path}`, { headers });
      const text = await res.body.text();
      return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
    };
    const token = (claims: Record<string, unknown>) => issuer.token({ aud: AUDIENCE, ...claims });

    it('401 without a token, with an RFC 6750 challenge and no login redirect (also for a browser navigation)', async () => {
      const asked: Record<string, string>[] = [{}, { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }];
      for (const headers of asked) {
        const res = await get('/reports', headers);
        assert.equal(res.status, 401);
        assert.deepEqual(res.body, { message: 'Unauthorized' });
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="gatehouse"');
        assert.equal(res.headers.location, undefined);
      }
    });

    it('401 invalid_token for a token that does not verify', async () => {
      const forged = (await token({ scope: 'reports:read' })).replace(/\.[^.]+$/, '.AAAA');
      const res = await get('/reports', { authorization: `Bearer ${forged}` });
      assert.equal(res.status, 401);
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
    });

    it('403 insufficient_scope with a token lacking the scope; 403 for another audience', async () => {
      const res = await get('/reports', { authorization: `Bearer ${await token({ scope: 'openid profile' })}` });
      assert.equal(res.status, 403);
      assert.deepEqual(res.body, { message: 'Forbidden' });
      assert.match(String(res.headers['www-authenticate']), /error="insufficient_scope", scope="reports:read"/);
      const other = await get('/reports', { authorization: `Bearer ${await issuer.token({ aud: 'https://other.example', scope: 'reports:read' })}` });
      assert.equal(other.status, 403);
    });

    it('200 with the scope; the principal is on req.user', async () => {
      const res = await get('/reports', { authorization: `Bearer ${await token({ sub: 'alice', scope: 'openid reports:read' })}` });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { sub: 'alice', reports: ['q1', 'q2'] });
    });

    it('stacked requirements add up: the class scope and the handler role are both needed', async () => {
      const scopeOnly = await get('/reports/admin', { authorization: `Bearer ${await token({ scope: 'reports:read' })}` });
      assert.equal(scopeOnly.status, 403);
      const roleOnly = await get('/reports/admin', { authorization: `Bearer ${await token({ scope: 'openid', realm_access: { roles: ['reports-admin'] } })}` });
      assert.equal(roleOnly.status, 403);
      const both = await get('/reports/admin', { authorization: `Bearer ${await token({ scope: 'reports:read', realm_access: { roles: ['reports-admin'] } })}` });
      assert.equal(both.status, 200);
    });

    it('the gateway\'s session cookie authenticates too (same session_secret)', async () => {
      const { config } = compileOpenIdConnectAuthOptions(options);
      const store = createSessionStore(config, false);
      const now = Math.floor(Date.now() / 1000);
      const setCookies = await store.write(
        { sid: 'session-1', iss: issuer.issuer, sub: 'bob', created: now, renewed: now, seen: now, access_token: await token({ sub: 'bob', scope: 'reports:read' }) },
        { headers: {} } as IncomingMessage,
      );
      const cookie = setCookies.map((c) => c.split(';')[0]).join('; ');
      const res = await get('/reports', { cookie });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.sub, 'bob');
    });
  });
}

describe('AuthModule.forRoot options', () => {
  it('are checked by the plugin\'s schema: every problem at once, by parameter name; a login method is refused', () => {
    assert.throws(
      () => AuthModule.forRoot({ issuer: 'not a url', auth_methods: ['bearer', 'authorization_code' as 'bearer', 'session'], leeway: -1 }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const paths = err.problems.map((p) => p.path);
        assert.ok(paths.includes('issuer'), paths.join(', '));
        assert.ok(paths.includes('auth_methods[1]'), paths.join(', '));
        assert.ok(paths.includes('session_secret'), paths.join(', '));
        assert.ok(paths.includes('leeway'), paths.join(', '));
        assert.match(err.message, /^AuthModule\.forRoot: \d+ problems/);
        return true;
      },
    );
  });
});
