import type { Proc } from './processes.js';

/** Case 7: a Gatehouse route with session auth, and a session cookie from a real login. */

export interface SessionLogin {
  /** Set when the case cannot run yet (e.g. the demo IdP is not built). */
  unavailable?: string;
  target: { key: string; url: string; proc: Proc };
  headers: Record<string, string>;
  close(): Promise<void>;
}

export async function startSessionLogin(_ctx: { tmp: string; upstreamUrl: string; pin: boolean; cpus: string; procs: Proc[] }): Promise<SessionLogin> {
  return { unavailable: 'the demo IdP (src/demo/demo-idp.ts) is not available yet', target: undefined as never, headers: {}, close: async () => {} };
}
