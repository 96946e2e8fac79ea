import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { PLUGIN_SCHEMAS, type PluginName } from '../../config/declarative.schema.js';
import { ADMIN_READ_SCOPES } from '../admin-scopes.js';
import { AdminBody, type AdminBodyValue } from '../admin-request.js';
import { AdminService } from '../admin.service.js';
import { notFound } from '../admin-entities.js';

type JsonSchema = { type?: string | string[]; properties?: Record<string, JsonSchema>; required?: string[]; items?: JsonSchema; enum?: unknown[]; default?: unknown; anyOf?: JsonSchema[]; minimum?: number; maximum?: number };

/** A JSON Schema node in Kong's schema notation (`{"type":"string","required":true,"default":…}`). */
function kongField(s: JsonSchema, required: boolean): Record<string, unknown> {
  const alt = s.anyOf?.find((a) => a.type !== 'null') ?? s;
  const t = Array.isArray(alt.type) ? alt.type.find((x) => x !== 'null') : alt.type;
  const type = t === 'object' ? 'record' : t === 'integer' ? 'integer' : t === 'number' ? 'number' : t === 'array' ? 'array' : t === 'boolean' ? 'boolean' : 'string';
  const out: Record<string, unknown> = { type, required };
  if (s.default !== undefined) out.default = s.default;
  if (alt.enum) out.one_of = alt.enum;
  if (alt.minimum !== undefined || alt.maximum !== undefined) out.between = [alt.minimum ?? null, alt.maximum ?? null];
  if (type === 'array' && alt.items) out.elements = kongField(alt.items, false);
  if (type === 'record' && alt.properties) out.fields = kongFields(alt);
  return out;
}

function kongFields(s: JsonSchema): Record<string, unknown>[] {
  const required = new Set(s.required ?? []);
  return Object.entries(s.properties ?? {}).map(([name, f]) => ({ [name]: kongField(f, required.has(name)) }));
}

/** Kong's `/schemas/plugins/{name}` and `/schemas/plugins/validate`, from the plugin's one zod schema. */
@Controller('schemas')
@RequireScopes(...ADMIN_READ_SCOPES)
export class SchemasController {
  constructor(private readonly admin: AdminService) {}

  @Get('plugins/:name')
  pluginSchema(@Param('name') name: string) {
    const schema = PLUGIN_SCHEMAS[name as PluginName];
    if (!schema || !Object.hasOwn(PLUGIN_SCHEMAS, name)) throw notFound();
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    return {
      fields: [
        { protocols: { type: 'set', required: true, default: ['http', 'https'], elements: { type: 'string', one_of: ['http', 'https'] } } },
        { config: { type: 'record', required: true, fields: kongFields(json) } },
      ],
    };
  }

  /** Reading only: a read-scoped caller may check a plugin without being able to write one. */
  @Post('plugins/validate')
  @HttpCode(200)
  async validate(@AdminBody() { body, form }: AdminBodyValue) {
    await this.admin.validatePlugin(body, form);
    return { message: 'schema validation successful' };
  }
}
