/** What a logged-in browser session holds. Times are epoch seconds. */
export interface SessionData {
  /** Session id: random, new at every login (no fixation). */
  sid: string;
  iss: string;
  sub: string;
  created: number;
  renewed: number;
  seen: number;
  access_token: string;
  /** When the access token expires (epoch s), if the token endpoint said. */
  expires_at?: number;
  refresh_token?: string;
  id_token?: string;
}

export function epoch(): number {
  return Math.floor(Date.now() / 1000);
}

/** A decrypted payload is a session only with every field a timeout check relies on (a missing time would never expire). */
export function isSessionData(d: unknown): d is SessionData {
  if (!d || typeof d !== 'object') return false;
  const s = d as Record<string, unknown>;
  return (
    typeof s.sid === 'string' &&
    typeof s.iss === 'string' &&
    typeof s.sub === 'string' &&
    typeof s.access_token === 'string' &&
    Number.isFinite(s.created) &&
    Number.isFinite(s.renewed) &&
    Number.isFinite(s.seen)
  );
}
