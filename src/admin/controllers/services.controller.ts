import { Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query } from '@nestjs/common';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { ADMIN_READ_SCOPES, ADMIN_WRITE_SCOPE } from '../admin-scopes.js';
import { Actor, AdminBody, type AdminBodyValue } from '../admin-request.js';
import { AdminService, type AdminActor } from '../admin.service.js';
import type { ForeignKey } from '../admin-entities.js';

/** Kong's `/services` endpoints, and the routes and plugins nested under a service. */
@Controller('services')
@RequireScopes(...ADMIN_READ_SCOPES)
export class ServicesController {
  constructor(private readonly admin: AdminService) {}

  @Get()
  list(@Query() query: Record<string, unknown>) {
    return this.admin.list('services', query);
  }

  @Post()
  @RequireScopes(ADMIN_WRITE_SCOPE)
  create(@AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.create('services', body, {}, who, form);
  }

  @Get(':service')
  read(@Param('service') key: string) {
    return this.admin.view('services', this.admin.find('services', key));
  }

  @Patch(':service')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  update(@Param('service') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.update('services', key, body, who, form);
  }

  @Put(':service')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  async upsert(@Param('service') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return (await this.admin.upsert('services', key, body, {}, who, form)).view;
  }

  @Delete(':service')
  @HttpCode(204)
  @RequireScopes(ADMIN_WRITE_SCOPE)
  async remove(@Param('service') key: string, @Actor() who: AdminActor) {
    await this.admin.remove('services', key, who);
  }

  @Get(':service/routes')
  routes(@Param('service') key: string, @Query() query: Record<string, unknown>) {
    const service = this.admin.find('services', key);
    return this.admin.list('routes', query, (r) => (r.service as ForeignKey)?.id === service.id, `/services/${key}/routes`);
  }

  @Post(':service/routes')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  createRoute(@Param('service') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.create('routes', body, { service: this.admin.find('services', key) }, who, form);
  }

  @Get(':service/plugins')
  plugins(@Param('service') key: string, @Query() query: Record<string, unknown>) {
    const service = this.admin.find('services', key);
    return this.admin.list('plugins', query, (p) => (p.service as ForeignKey)?.id === service.id, `/services/${key}/plugins`);
  }

  @Post(':service/plugins')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  createPlugin(@Param('service') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.create('plugins', body, { service: this.admin.find('services', key) }, who, form);
  }
}
