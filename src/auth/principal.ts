/** Who the caller is, as established by the openid-connect plugin. */
export interface Principal {
  /** How the caller authenticated. */
  via: 'bearer' | 'introspection' | 'session';
  /** Claims the requirements are evaluated against: the access token's, or the introspection response. */
  claims: Readonly<Record<string, unknown>>;
  accessToken: string;
  idToken?: string;
  /** Raw introspection response, for upstream_introspection_header. */
  introspection?: Readonly<Record<string, unknown>>;
  /** Memo slots shared with the token cache, so a repeat token skips re-evaluating requirements and the caller. */
  memo?: VerificationMemo;
}

/** What is worked out from a verified token's claims, kept on it (its claims never change), one slot each. */
export interface VerificationMemo {
  /** The authorization decision of the last policy that checked this token. */
  decidedFor?: object;
  decision?: unknown;
  /** The caller, and the `credential_claim` path it was read with. */
  callerFor?: readonly string[];
  caller?: string;
}
