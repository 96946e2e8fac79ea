import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { percentile, type LoadResult, type LoadSpec } from './load-spec.js';

/**
 * A small built-in load generator (undici, keep-alive, one request in flight
 * per connection) for machines without wrk — CI runs the quick mode with it.
 * It costs far more CPU per request than wrk, so its figures are only a
 * smoke test, not comparable to wrk's.
 *
 * Usage: node load.js '<LoadSpec as JSON>' — prints the LoadResult as JSON.
 */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, { connections: spec.connections, keepAliveTimeout: 10_000 });
  const tokens = spec.tokensFile
    ? readFileSync(spec.tokensFile, 'utf8').split('\n').filter(Boolean).map((t) => `Bearer ${t}`)
    : [];
  const body = spec.bodyBytes ? Buffer.alloc(spec.bodyBytes, 'u') : null;
  const path = url.pathname + url.search;
  const latenciesUs: number[] = [];
  let bytes = 0;
  let socketErrors = 0;
  let badStatus = 0;
  let firstError: string | undefined;
  let next = spec.tokenOffset ?? 0;
  const start = performance.now();
  const end = start + spec.durationS * 1000;

  const worker = async () => {
    while (performance.now() < end) {
      const headers: Record<string, string> = { ...spec.headers };
      if (tokens.length) headers.authorization = tokens[next++ % tokens.length];
      const t0 = performance.now();
      try {
        const res = await pool.request({ path, method: spec.method ?? 'GET', headers, body });
        for await (const chunk of res.body) bytes += (chunk as Buffer).length;
        latenciesUs.push((performance.now() - t0) * 1000);
        if (res.statusCode < 200 || res.statusCode > 299) {
          badStatus++;
          firstError ??= `HTTP ${res.statusCode}`;
        }
      } catch (err) {
        socketErrors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, worker));
  const durationS = (performance.now() - start) / 1000;
  await pool.close();
  latenciesUs.sort((a, b) => a - b);
  return {
    tool: 'node',
    requests: latenciesUs.length + socketErrors,
    durationS,
    rps: latenciesUs.length / durationS,
    p50Ms: percentile(latenciesUs, 50) / 1000,
    p99Ms: percentile(latenciesUs, 99) / 1000,
    bytes,
    socketErrors,
    badStatus,
    firstError,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runLoad(JSON.parse(process.argv[2] ?? '{}') as LoadSpec).then(
    (r) => process.stdout.write(`BENCH_JSON ${JSON.stringify(r)}\n`),
    (err) => {
      process.stderr.write(`load: ${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
