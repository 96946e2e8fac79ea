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
  /** Memo slot shared with the token cache, so a repeat token skips re-evaluating requirements. */
  memo?: { decidedFor?: object; decision?: unknown; callerFor?: readonly string[]; caller?: string };
}
