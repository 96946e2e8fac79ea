import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller, Get, Injectable, Module, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { pino } from 'pino';
import { AuthModule } from '../../src/auth/auth.module.js';
import { RequireRoles, RequireScopes } from '../../src/auth/require-scopes.decorator.js';
import { ScopesGuard } from '../../src/auth/scopes.guard.js';
import { GatewayExceptionFilter } from '../../src/common/gateway-exception.filter.js';
import { RequestContext } from '../../src/common/request-context.js';
import { GatewayConfigModule } from '../../src/config/gateway-config.module.js';
import { GatewayConfig } from '../../src/config/gateway-config.js';
import { parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { readGatewaySettings } from '../../src/config/gateway-settings.js';

/**
 * The ScopesGuard on one of the gateway's own Nest handlers, driven by
 * decorators (the other entry besides route config). Authentication is not
 * what is under test here: a first guard takes the caller's claims from a test
 * header, standing in for the openid-connect authentication that proxied
 * routes use.
 */
@Injectable()
class ClaimsFromHeaderGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<FastifyRequest>().raw;
    const ctx = new RequestContext('test-request', false);
    const claims = req.headers['x-test-claims'];
    if (typeof claims === 'string') ctx.principal = { via: 'bearer', claims: JSON.parse(claims), accessToken: 'test' };
    req.gatehouse = ctx;
    return true;
  }
}

@Controller('admin')
@UseGuards(ClaimsFromHeaderGuard, ScopesGuard)
class AdminController {
  @Get('open')
  open() {
    return { ok: 'open' };
  }

  @Get('scoped')
  @RequireScopes('admin read', 'root')
  scoped() {
    return { ok: 'scoped' };
  }

  @Get('roles')
  @RequireRoles(['realm_access', 'roles'], 'operator')
  roles() {
    return { ok: 'roles' };
  }
}

describe('ScopesGuard driven by decorators on a Nest handler', () => {
  let app: NestFastifyApplication;
  let base: string;

  before(async () => {
    const logger = pino({ level: 'silent' });
    const settings = readGatewaySettings({});
    const config = new GatewayConfig(settings, parseDeclarativeConfig('_format_version: "3.0"\n', 'inline.yaml', {}), 'inline.yaml');
    @Module({ imports: [GatewayConfigModule.forRoot(config, logger), AuthModule], controllers: [AdminController], providers: [ClaimsFromHeaderGuard] })
    class TestModule {}
    app = await NestFactory.create<NestFastifyApplication>(TestModule, new FastifyAdapter(), { logger: false });
    app.useGlobalFilters(new GatewayExceptionFilter(logger));
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
    base = base.replace('[::1]', '127.0.0.1');
  });

  after(async () => {
    await app?.close();
  });

  const get = async (path: string, claims?: object) => {
    const res = await fetch(base + path, { headers: claims ? { 'x-test-claims': JSON.stringify(claims) } : {} });
    return { status: res.status, body: await res.json(), challenge: res.headers.get('www-authenticate') };
  };

  it('leaves undecorated handlers alone', async () => {
    assert.equal((await get('/admin/open')).status, 200);
  });

  it('applies Kong\'s AND/OR rule from @RequireScopes', async () => {
    assert.equal((await get('/admin/scoped', { scope: 'admin read' })).status, 200);
    assert.equal((await get('/admin/scoped', { scope: ['root'] })).status, 200);
    const denied = await get('/admin/scoped', { scope: 'admin' });
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, { message: 'Forbidden' });
    assert.match(String(denied.challenge), /error="insufficient_scope", scope="admin read"/);
  });

  it('reads nested role claims from @RequireRoles', async () => {
    assert.equal((await get('/admin/roles', { realm_access: { roles: ['operator'] } })).status, 200);
    assert.equal((await get('/admin/roles', { realm_access: { roles: ['Operator'] } })).status, 403);
  });

  it('answers 401 when no caller was authenticated', async () => {
    const r = await get('/admin/scoped');
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { message: 'Unauthorized' });
  });
});
