import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Principal } from '../auth/principal.js';
import { AdminApiError } from './admin.errors.js';
import type { AdminActor } from './admin.service.js';

/** A request body and whether it came as a form (whose string values the schema types). */
export interface AdminBodyValue {
  body: Record<string, unknown>;
  form: boolean;
}

interface AnyRequest {
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
  user?: unknown;
  raw?: { gatehouse?: { principal?: Principal } };
}

export const AdminBody = createParamDecorator((_: unknown, ctx: ExecutionContext): AdminBodyValue => {
  const req = ctx.switchToHttp().getRequest<AnyRequest>();
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const body = req.body ?? {};
  if (typeof body !== 'object' || Array.isArray(body) || body === null) {
    throw new AdminApiError(400, { message: 'Cannot parse JSON body' });
  }
  return { body: body as Record<string, unknown>, form: type === 'application/x-www-form-urlencoded' || type === 'multipart/form-data' };
});

/** Who made a change, for the audit log: the admin token's `sub`, else `local` (an unauthenticated loopback listener). */
export const Actor = createParamDecorator((_: unknown, ctx: ExecutionContext): AdminActor => {
  const req = ctx.switchToHttp().getRequest<AnyRequest>();
  const principal = (req.user as Principal | undefined) ?? req.raw?.gatehouse?.principal;
  const sub = principal?.claims?.sub;
  return { actor: typeof sub === 'string' ? sub : 'local' };
});
