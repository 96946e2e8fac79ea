/**
 * Authorization requirements: one pure function for every kind (scopes,
 * audience, roles, groups) and every caller (a decorator on a Nest handler or a
 * proxied route's plugin config).
 *
 * Kong's rule: `["a b", "c"]` means (a AND b) OR c. Claims are read at a claim
 * path (`[realm_access, roles]` reaches Keycloak's nested roles), and a claim may
 * be a space-separated string (OAuth `scope`) or an array. Matching is exact and
 * case-sensitive: `rewrite` never satisfies `write`.
 */

export type RequirementKind = 'scopes' | 'audience' | 'roles' | 'groups';

export interface Requirement {
  kind: RequirementKind;
  /** Where the values live in the claims, e.g. `['scope']` or `['realm_access', 'roles']`. */
  claim: readonly string[];
  /** OR-ed alternatives, each an AND-group, pre-split at load time. */
  anyOf: readonly (readonly string[])[];
}

export interface RequirementFailure {
  requirement: Requirement;
  /** What the token actually had at the claim path (for the log line, never for the client). */
  found: string[];
}

/** `["a b", "c"]` → `[["a","b"],["c"]]`, done once when the config is compiled. */
export function compileRequirement(kind: RequirementKind, claim: readonly string[], required: readonly string[] | undefined): Requirement | undefined {
  if (!required?.length) return undefined;
  const anyOf = required.map((group) => group.split(/\s+/).filter(Boolean));
  // An empty AND-group is met by any token that has any value: refuse it rather than fail open.
  if (anyOf.some((group) => group.length === 0)) throw new Error(`${kind} requirement has an empty entry: ${JSON.stringify(required)}`);
  return { kind, claim, anyOf };
}

/** Reads a claim path; returns the values as strings (a space-separated string is split). */
export function claimValues(claims: Readonly<Record<string, unknown>>, path: readonly string[]): string[] {
  let value: unknown = claims;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value === 'string') return value.split(' ').filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/** True when at least one AND-group is fully present. */
export function satisfies(found: readonly string[], requirement: Requirement): boolean {
  if (found.length === 0) return false;
  const have = found.length > 8 ? new Set(found) : undefined;
  return requirement.anyOf.some((group) => group.every((v) => (have ? have.has(v) : found.includes(v))));
}

/** Evaluates every requirement in order; returns the first failure, or undefined when all are met. */
export function evaluateRequirements(
  claims: Readonly<Record<string, unknown>>,
  requirements: readonly Requirement[],
): RequirementFailure | undefined {
  for (const requirement of requirements) {
    const found = claimValues(claims, requirement.claim);
    if (!satisfies(found, requirement)) return { requirement, found };
  }
  return undefined;
}

/** The log line Kong users grep for: `required scopes were not found [ openid, profile, email ]`. */
export function describeFailure(f: RequirementFailure): string {
  const noun = f.requirement.kind === 'audience' ? 'audience was' : `${f.requirement.kind} were`;
  return `required ${noun} not found [ ${f.found.join(', ')} ]`;
}

/** The `scope` of an RFC 6750 insufficient_scope challenge: the first alternative that would have worked. */
export function challengeScope(f: RequirementFailure): string | undefined {
  return f.requirement.kind === 'scopes' ? f.requirement.anyOf[0].join(' ') : undefined;
}
