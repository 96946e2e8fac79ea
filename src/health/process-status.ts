import { memoryUsage } from 'node:process';
import type { ServerCounters, ServerCountersSnapshot } from './server.counters.js';

/** What one gateway process reports for `GET /status`: its counters and memory. */
export interface ProcessStatus {
  pid: number;
  server: ServerCountersSnapshot;
  memory: { rss: number; heap_used: number; heap_total: number; external: number };
}

export function processStatus(counters: ServerCounters): ProcessStatus {
  const m = memoryUsage();
  return {
    pid: process.pid,
    server: counters.snapshot(),
    memory: { rss: m.rss, heap_used: m.heapUsed, heap_total: m.heapTotal, external: m.external },
  };
}

/** Kong's server counters are one sum over every worker. */
export function sumServerCounters(all: readonly ProcessStatus[]): ServerCountersSnapshot {
  const total: ServerCountersSnapshot = {
    total_requests: 0,
    connections_active: 0,
    connections_reading: 0,
    connections_writing: 0,
    connections_waiting: 0,
    connections_accepted: 0,
    connections_handled: 0,
  };
  for (const p of all) for (const k of Object.keys(total) as (keyof ServerCountersSnapshot)[]) total[k] += p.server[k];
  return total;
}

/** Kong's default memory unit and scale (`GET /status`: "0.02 MiB"). */
export function mebibytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}
