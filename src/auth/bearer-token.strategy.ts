import { Strategy } from 'passport';

type Verify = (token: string, done: (err: unknown, user?: unknown) => void) => void;

/**
 * A Passport strategy for RFC 6750 §2.1 bearer tokens that reads the request
 * adapter-agnostically (Express's and Fastify's requests both carry
 * `headers`). The token's verification is the subclass's `validate` (Nest's
 * PassportStrategy mixin passes it in as `verify`).
 */
export class BearerTokenStrategy extends Strategy {
  override name = 'bearer';

  constructor(private readonly verify: Verify) {
    super();
  }

  override authenticate(req: { headers?: Record<string, string | string[] | undefined> }): void {
    const header = req.headers?.authorization;
    const value = Array.isArray(header) ? undefined : header;
    const m = value ? /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(value) : null;
    if (!m) {
      this.fail('Bearer', 401);
      return;
    }
    this.verify(m[1], (err, user) => {
      if (err) this.error(err as Error);
      else if (!user) this.fail('Bearer error="invalid_token"', 401);
      else this.success(user);
    });
  }
}
