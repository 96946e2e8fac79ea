import { Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query } from '@nestjs/common';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { ADMIN_READ_SCOPES, ADMIN_WRITE_SCOPE } from '../admin-scopes.js';
import { Actor, AdminBody, type AdminBodyValue } from '../admin-request.js';
import { AdminService, type AdminActor } from '../admin.service.js';
import type { ForeignKey } from '../admin-entities.js';

/** Kong's `/routes` endpoints, and the plugins nested under a route. */
@Controller('routes')
@RequireScopes(...ADMIN_READ_SCOPES)
export class RoutesController {
  constructor(private readonly admin: AdminService) {}

  @Get()
  list(@Query() query: Record<string, unknown>) {
    return this.admin.list('routes', query);
  }

  @Post()
  @RequireScopes(ADMIN_WRITE_SCOPE)
  create(@AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.create('routes', body, {}, who, form);
  }

  @Get(':route')
  read(@Param('route') key: string) {
    return this.admin.view('routes', this.admin.find('routes', key));
  }

  @Patch(':route')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  update(@Param('route') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.update('routes', key, body, who, form);
  }

  @Put(':route')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  async upsert(@Param('route') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return (await this.admin.upsert('routes', key, body, {}, who, form)).view;
  }

  @Delete(':route')
  @HttpCode(204)
  @RequireScopes(ADMIN_WRITE_SCOPE)
  async remove(@Param('route') key: string, @Actor() who: AdminActor) {
    await this.admin.remove('routes', key, who);
  }

  @Get(':route/plugins')
  plugins(@Param('route') key: string, @Query() query: Record<string, unknown>) {
    const route = this.admin.find('routes', key);
    return this.admin.list('plugins', query, (p) => (p.route as ForeignKey)?.id === route.id, `/routes/${key}/plugins`);
  }

  @Post(':route/plugins')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  createPlugin(@Param('route') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.create('plugins', body, { route: this.admin.find('routes', key) }, who, form);
  }
}
