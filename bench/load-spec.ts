/** What one measurement asks of the load generator (wrk or the built-in one). */
export interface LoadSpec {
  /** Full URL, path included. */
  url: string;
  connections: number;
  durationS: number;
  method?: 'GET' | 'POST';
  /** Static request headers. */
  headers?: Record<string, string>;
  /** Request body of this many bytes (uploads). */
  bodyBytes?: number;
  /** One token per line: each request sends the next as `Authorization: Bearer …`, cycling. */
  tokensFile?: string;
  /** Where in the token file to start, so consecutive runs continue the cycle instead of replaying it. */
  tokenOffset?: number;
  /** wrk threads (default 1). */
  threads?: number;
  /** Count every non-2xx response as an error (costs the load generator a little). */
  strict?: boolean;
}

export interface LoadResult {
  tool: 'wrk' | 'node';
  requests: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Response bytes read (headers included for wrk). */
  bytes: number;
  /** Connect/read/write/timeout failures. */
  socketErrors: number;
  /** Responses outside 2xx (wrk outside strict mode: only ≥ 400). */
  badStatus: number;
  firstError?: string;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
