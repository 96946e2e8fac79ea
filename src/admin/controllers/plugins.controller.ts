import { Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query } from '@nestjs/common';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { ADMIN_READ_SCOPES, ADMIN_WRITE_SCOPE } from '../admin-scopes.js';
import { Actor, AdminBody, type AdminBodyValue } from '../admin-request.js';
import { AdminService, type AdminActor } from '../admin.service.js';

/** Kong's `/plugins` endpoints and `GET /plugins/enabled`. */
@Controller('plugins')
@RequireScopes(...ADMIN_READ_SCOPES)
export class PluginsController {
  constructor(private readonly admin: AdminService) {}

  @Get()
  list(@Query() query: Record<string, unknown>) {
    return this.admin.list('plugins', query);
  }

  /** Kong: the plugins this node can run (every plugin Gatehouse has), not only those configured. */
  @Get('enabled')
  enabled() {
    return { enabled_plugins: this.admin.availablePlugins };
  }

  @Post()
  @RequireScopes(ADMIN_WRITE_SCOPE)
  create(@AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.create('plugins', body, {}, who, form);
  }

  @Get(':plugin')
  read(@Param('plugin') key: string) {
    return this.admin.view('plugins', this.admin.find('plugins', key));
  }

  @Patch(':plugin')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  update(@Param('plugin') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return this.admin.update('plugins', key, body, who, form);
  }

  @Put(':plugin')
  @RequireScopes(ADMIN_WRITE_SCOPE)
  async upsert(@Param('plugin') key: string, @AdminBody() { body, form }: AdminBodyValue, @Actor() who: AdminActor) {
    return (await this.admin.upsert('plugins', key, body, {}, who, form)).view;
  }

  @Delete(':plugin')
  @HttpCode(204)
  @RequireScopes(ADMIN_WRITE_SCOPE)
  async remove(@Param('plugin') key: string, @Actor() who: AdminActor) {
    await this.admin.remove('plugins', key, who);
  }
}
