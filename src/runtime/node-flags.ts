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
 *
 * `--initial-old-space-size=128` (MiB): V8 starts incremental marking whenever
 * the room left below its old-generation limit is smaller than the young
 * generation's capacity (up to 32 MiB here), and it sets that limit after each
 * mark-compact from the live size times a growing factor that is close to 1
 * when the old generation hardly grows — which is what a proxy's heap does: its
 * objects die young. The gateway's live heap is ≈ 27 MiB (Nest, the
 * openid-connect stack, the route table), so after a mark-compact taken while
 * the young generation was small (after a quiet spell) the limit lands within
 * reach and V8 marks the whole 27 MiB again and again, every 60–100 ms, while the
 * old generation does not grow at all (`--trace-incremental-marking`: "Start
 * (task)", size 27 MB, limit 39–56 MB; "overshoot 0 MB"). On one shared core
 * that is the p99 spikes and the lost throughput of bench cases 4, 5 and 8.
 * A 128 MiB starting size keeps the limit out of reach (measured with
 * bench/tools/gc-after-idle.mjs, 64 KiB responses after 45–60 s idle: 6–9k
 * req/s and p99 16–26 ms without it, 10–11k req/s and p99 2.6–3 ms with it;
 * 64 MiB was not enough, 96 was). The bare proxy, whose live heap is a few MiB,
 * never marks under the same load. The cost: up to ≈ 100 MiB of old-generation
 * garbage may gather before the first full GC.
 *
 * Re-measured on Node.js 24.21 (same tools; the gateway at warn level on one
 * core, the memory reducer on a bearer route after 45 s idle, 5 rounds; the
 * old-space size and malloc with 64 KiB responses after 40 s idle, 3 rounds):
 * with the memory reducer on, p99 was about the same (median 7.2 against
 * 7.6 ms, one round 30 ms against at most 16) but every request after idle
 * cost ≈ 5 µs more CPU (69.0 against 64.1 µs); without the 128 MiB starting
 * size, p99 24 ms against 7 ms (every round 21–53 ms) and 121 against 108 µs
 * per request. Both flags are kept.
 */
export const NODE_FLAGS: readonly string[] = ['--no-memory-reducer', '--initial-old-space-size=128'];

/**
 * glibc's malloc returns the top of its heap to the kernel whenever more than
 * the trim threshold (128 KiB, or less than 64 MiB when raised dynamically) is
 * free there. Socket reads and the chunks of large bodies are 64 KiB buffers
 * from malloc; in some rounds of the bench the gateway's heap settled where
 * every few of them trimmed and re-grew it, so each response paid page faults
 * and page zeroing (`perf record`: exc_page_fault, clear_page_erms,
 * unmap_page_range ≈ 9 % of busy time in a bad round, none in a good one):
 * 64 KiB responses at 114–136 against 83 µs/request for the bare proxy in
 * rounds 1–2 of 4. With a 64 MiB trim threshold, 4 of 4 rounds were good
 * (86.9–88.4 against 80–98 µs/request). It is environment, read by glibc at
 * exec (musl ignores it), so the launchers set it: `npm start` unless the
 * operator set GLIBC_TUNABLES, the Dockerfile's ENV, the bench for every
 * proxy, and cluster workers inherit it. Cost: up to 64 MiB of freed malloc
 * memory may stay mapped. On Node.js 24 (3 rounds after 40 s idle) one round
 * of three without it was a bad one again (126.9 against 103–109 µs per
 * request): kept.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.trim_threshold=67108864';

/** The GLIBC_TUNABLES `npm start` runs the gateway with: the operator's if set and not empty (the shell's `${VAR:-default}`), else ours. */
export function mallocTunables(env: NodeJS.ProcessEnv = process.env): string {
  return env.GLIBC_TUNABLES || MALLOC_TUNABLES;
}

/** The arguments for a child node process (a cluster worker): its parent's, plus any of NODE_FLAGS missing. */
export function withNodeFlags(execArgv: readonly string[]): string[] {
  return [...execArgv, ...NODE_FLAGS.filter((f) => !execArgv.includes(f))];
}
