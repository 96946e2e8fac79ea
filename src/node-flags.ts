/**
 * V8 flags that only work on node's command line, because V8 reads them when
 * it sets up the heap (setFlagsFromString afterwards has no effect, checked)
 * and Node refuses them in NODE_OPTIONS. Every launcher passes them: the npm
 * start script, the Dockerfile's CMD, the cluster primary to its workers
 * (cluster.ts) and the bench; test/unit/node-flags.test.ts keeps the first two
 * in step with this list. Kept apart from runtime-tuning.ts so that importing
 * the list (the bench does) sets no flag in the importing process.
 *
 * `--no-memory-reducer`: V8's memory reducer notices the allocation rate drop
 * when traffic pauses and, a few seconds later, runs compacting GCs that shrink
 * the heap. When load resumes, the shrunk heap means many more scavenges and
 * early mark-compacts until it has grown back; for a gateway that is the p99 of
 * the first seconds after every quiet spell. Measured (bench/tools/p99-after-idle.mjs,
 * 60 s idle, then 2 s warm-up and 4 s measured, 4 rounds): p99 median 19.0 ms
 * without the flag, 8.2 ms with it (the bare proxy: 7.5 ms). The cost is that an
 * idle gateway keeps the heap its last burst needed instead of returning it to
 * the OS, which a container sized for its busiest minute has anyway.
 */
export const NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

/** The arguments for a child node process (a cluster worker): its parent's, plus any of NODE_FLAGS missing. */
export function withNodeFlags(execArgv: readonly string[]): string[] {
  return [...execArgv, ...NODE_FLAGS.filter((f) => !execArgv.includes(f))];
}
