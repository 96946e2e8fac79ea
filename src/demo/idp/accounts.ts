import { createHash, timingSafeEqual } from 'node:crypto';

/** The scope the demo's protected route requires; only Blog_with_scope is granted it. */
export const DEMO_API_SCOPE = 'kong_api_access';
export const DEMO_PASSWORD = 'veryComplexPa55word';
/** Scopes every user is granted when asked; the rest come from `DemoUser.scopes`. */
export const STANDARD_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

export interface DemoUser {
  username: string;
  password: string;
  /** Stable subject identifier (Keycloak-style UUID). */
  sub: string;
  email: string;
  name: string;
  groups: string[];
  /** Published Keycloak-style as `realm_access.roles`. */
  roles: string[];
  /** Scopes beyond STANDARD_SCOPES this user may be granted (e.g. `kong_api_access`). */
  scopes: string[];
}

export const DEMO_USERS: readonly DemoUser[] = Object.freeze([
  {
    username: 'Blog_with_scope',
    password: DEMO_PASSWORD,
    sub: '5f0c8a1e-3b6d-4a47-9d1e-7c2b9e4f1a01',
    email: 'blog_with_scope@example.com',
    name: 'Blog With Scope',
    groups: ['bloggers'],
    roles: ['blog-reader', 'blog-writer'],
    scopes: [DEMO_API_SCOPE],
  },
  {
    username: 'Blog_without_scope',
    password: DEMO_PASSWORD,
    sub: '8b2e4d6f-1a3c-4e5b-8f7a-9c0d1e2f3a02',
    email: 'blog_without_scope@example.com',
    name: 'Blog Without Scope',
    groups: ['readers'],
    roles: ['blog-reader'],
    scopes: [],
  },
]);

/** An oidc-provider Account: the subject and the claims its ID tokens may carry. */
export interface DemoAccount {
  accountId: string;
  claims(): Promise<Record<string, unknown>>;
}

/**
 * The demo's user directory (users in code, as oidc-provider's example
 * `support/account.js`): lookup by subject or username, password check, the
 * scopes each user may be granted and the claims published about them.
 */
export class DemoAccounts {
  /** Every scope some user may be granted at the resource server (the gateway). */
  readonly resourceScopes: ReadonlySet<string>;

  constructor(readonly users: readonly DemoUser[]) {
    this.resourceScopes = new Set<string>(['openid', 'profile', 'email', ...users.flatMap((u) => u.scopes)]);
  }

  findBySub(sub: string | undefined): DemoUser | undefined {
    return sub === undefined ? undefined : this.users.find((u) => u.sub === sub);
  }

  /** The user whose username and password match, or undefined. */
  authenticate(username: unknown, password: unknown): DemoUser | undefined {
    const user = this.users.find((u) => u.username === username);
    return user && sameSecret(user.password, password) ? user : undefined;
  }

  grantedScopes(user: DemoUser): Set<string> {
    return new Set<string>([...STANDARD_SCOPES, ...user.scopes]);
  }

  account(user: DemoUser): DemoAccount {
    return {
      accountId: user.sub,
      async claims() {
        return {
          sub: user.sub,
          name: user.name,
          preferred_username: user.username,
          email: user.email,
          email_verified: true,
          groups: [...user.groups],
          realm_access: { roles: [...user.roles] },
        };
      },
    };
  }

  /**
   * Keycloak puts identity claims into its access tokens too; so does the demo,
   * so `upstream_headers_claims: [email]` and roles/groups checks work with bearer tokens.
   */
  accessTokenClaims(user: DemoUser): Record<string, unknown> {
    return {
      email: user.email,
      name: user.name,
      preferred_username: user.username,
      groups: [...user.groups],
      realm_access: { roles: [...user.roles] },
    };
  }
}

/** Constant-time comparison of two secrets of any length. */
export function sameSecret(expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}
