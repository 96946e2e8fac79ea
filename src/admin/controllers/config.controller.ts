import { Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { parseDocument } from 'yaml';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { ADMIN_READ_SCOPES, ADMIN_WRITE_SCOPE } from '../admin-scopes.js';
import { Actor, type AdminBodyValue } from '../admin-request.js';
import { AdminApiError, KONG_ERROR } from '../admin.errors.js';
import { AdminService, type AdminActor } from '../admin.service.js';

/**
 * Kong's `/config`: `GET` exports the running document as a declarative file
 * (`{"config": "<YAML>"}`), `POST` replaces the whole configuration. The body
 * is the document itself (JSON or YAML), or Kong's `config` field holding it as
 * text (JSON body or form).
 */
@Controller('config')
@RequireScopes(...ADMIN_READ_SCOPES)
export class ConfigController {
  constructor(private readonly admin: AdminService) {}

  @Get()
  export() {
    return { config: this.admin.exportYaml() };
  }

  @Post()
  @HttpCode(201)
  @RequireScopes(ADMIN_WRITE_SCOPE)
  replace(@Req() req: { body?: unknown }, @Actor() who: AdminActor) {
    return this.admin.replaceConfig(documentOf(req.body), who);
  }
}

/** The declarative document in a `POST /config` body. */
function documentOf(body: unknown): unknown {
  let value: unknown = body;
  if (value && typeof value === 'object' && !Array.isArray(value) && typeof (value as AdminBodyValue['body']).config === 'string' && !('_format_version' in value)) {
    value = (value as { config: string }).config;
  }
  if (typeof value !== 'string') return value;
  const doc = parseDocument(value, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const problems = doc.errors.map((e) => `not valid YAML: ${e.message.split('\n')[0].replace(/:$/, '')}`);
    throw new AdminApiError(400, { ...KONG_ERROR.DECLARATIVE_CONFIG, message: `declarative config is invalid: ${problems.join('; ')}`, fields: { '@entity': problems } });
  }
  return doc.toJS();
}
