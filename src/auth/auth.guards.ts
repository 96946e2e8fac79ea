import type { Type, CanActivate } from '@nestjs/common';

/** Guards that run on the proxy path after the route is matched, in order. */
export const AUTH_GUARDS: Type<CanActivate>[] = [];
