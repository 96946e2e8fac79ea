import { setFlagsFromString } from 'node:v8';

/**
 * V8 settings for a process whose every request allocates short-lived objects.
 * Imported first by main.ts, before anything else is evaluated.
 *
 * Allocation-site pretenuring off: under load, each scavenge finds the ~50
 * requests in flight at that instant alive, so V8's heuristic sees allocation
 * sites of per-request objects with a survival ratio near 1.0 and starts
 * allocating them straight into the old generation. They die a few
 * milliseconds later there, where only a full mark-compact can free them.
 * Measured under wrk (bench, case 4, `--trace-gc`): 410–418 bytes per request
 * grew the old generation with pretenuring on and 111 without (a bare Node
 * proxy: 100), and a scavenge took 1.9–2.2 ms instead of 1.2 ms. The extra old
 * garbage meant a mark-compact, with incremental steps of up to 20 ms, every
 * 10–15 s of load: the p99 spikes of bench/README.md.
 */
setFlagsFromString('--no-allocation-site-pretenuring');

