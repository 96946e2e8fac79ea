import { Injectable } from '@nestjs/common';
import type { CompiledPlugin, GatewayPlugin } from '../plugin.js';
import type { AccessLogConfig } from './access-log.schema.js';

/**
 * `access-log` takes part in no phase: the access log (src/common/access-log.ts)
 * reads the route's effective config once, the first time the route is logged.
 * Declaring it as a plugin gives it Kong's scoping and precedence (global,
 * service, route), validation with paths, and `enabled: false`.
 * Priority 9 is Kong's `file-log`'s: logging runs last.
 */
@Injectable()
export class AccessLogPlugin implements GatewayPlugin<AccessLogConfig> {
  readonly name = 'access-log';
  readonly priority = 9;

  compile(): CompiledPlugin {
    return { name: this.name, priority: this.priority };
  }
}
