import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { renderChart } from './chart.js';
import type { RouteScaleResult } from './route-scale.js';

/** The results: one JSON document, rendered as a Markdown table and an SVG chart. */

export interface Sample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** The proxy process tree's CPU time (user + system) per request. */
  cpuUsPerReq: number;
  /** VmHWM during the case (reset before it where the kernel allows), summed over the process tree. */
  peakRssMiB: number;
  requests: number;
  errors: number;
  /** Body throughput for the large-body cases. */
  mibPerS?: number;
  /** The round (1-based) the sample was taken in: ratios pair samples of the same round. */
  round?: number;
}

export interface CaseResult {
  id: string;
  short: string;
  group: number;
  title: string;
  gatehouse: boolean;
  /** ok; errors: some requests failed; failed: the case could not run; unavailable: not installed/not built yet. */
  status: 'ok' | 'errors' | 'failed' | 'unavailable';
  reason?: string;
  samples: Sample[];
  median?: Omit<Sample, 'requests' | 'errors'>;
}

export interface StreamResult {
  target: string;
  direction: 'download' | 'upload';
  bytes: number;
  mibPerS: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
  error?: string;
}

export interface BenchReport {
  date: string;
  mode: 'quick' | 'full';
  rounds: number;
  durationS: number;
  warmupS: number;
  loadGenerator: string;
  versions: { node: string; nginx: string; wrk: string; gatehouse?: string };
  machine: { cores: number; cpu: string; kernel: string };
  pinning: string;
  connections: { small: number; large: number };
  cycleTokens: number;
  notes: string[];
  cases: CaseResult[];
  streams: StreamResult[];
  /** Group 12: the 10,000-route table outside the request path (bench/route-scale.ts). */
  routeScale?: RouteScaleResult;
  /** What the `@base` cases ran: another build's dist (`--compare`) or another Node.js (`--compare-node`). */
  compare?: string;
}

/** The case each one is compared with in the ratio column. */
export function baselineOf(id: string, ids?: ReadonlySet<string>): string | undefined {
  // A case of the other build or runtime (`…@base`) is compared with its own baseline when that ran too (`--compare-node` runs the bare proxy on both).
  const twin = (base: string) => (id.endsWith('@base') && ids?.has(`${base}@base`) ? `${base}@base` : base);
  if (id.startsWith('8-64k-')) return id === '8-64k-bare' ? undefined : '8-64k-bare';
  if (id.startsWith('8-up-')) return id === '8-up-bare' ? undefined : '8-up-bare';
  if (id === '9-gw-2w') return '9-gw-1w';
  if (id === '9-nginx-2w') return '9-nginx-1w';
  if (id.startsWith('9-')) return undefined;
  // Cases 5 and 6 against the bare proxy fed the same requests (the same Bearer tokens).
  // Cases 10 (rate-limiting) and 12 (prometheus) against the same route without the plugin.
  const sameRequests: Record<string, string> = {
    '5-rs256': '2-rs256',
    '5-es256': '2-es256',
    '6': '2-cycle',
    '10-rl-local': '5-rs256',
    '10-rl-redis': '5-rs256',
    '12-prom': '4',
    '12-prom-jwt': '5-rs256',
  };
  const plain = id.replace(/@base$/, '');
  if (sameRequests[plain]) return twin(sameRequests[plain]);
  // Case 12 against the one-route table of case 4 (of the same build).
  if (plain === '13-routes-10k') return id === plain ? '4' : '4@base';
  if (plain === '2' || plain.startsWith('2-')) return undefined;
  return twin('2');
}

/**
 * The order cases run in within a round: each Gatehouse case right after its
 * baseline (its `baselineOf`), so the pair is measured seconds apart and a
 * paired ratio sees the same machine. The others (the baselines, nginx, the
 * ceiling) keep the declared order.
 */
export function runOrder<T extends { id: string; gatehouse: boolean }>(cases: readonly T[]): T[] {
  const ids = new Set(cases.map((c) => c.id));
  const followers = new Map<string, T[]>();
  const roots: T[] = [];
  for (const c of cases) {
    const base = baselineOf(c.id, ids);
    if ((c.gatehouse || c.id.endsWith('@base')) && base && ids.has(base)) followers.set(base, [...(followers.get(base) ?? []), c]);
    else roots.push(c);
  }
  // Followers of followers (5-rs256 after 2-rs256, 10-* after 5-rs256) run right after theirs.
  const withFollowers = (c: T): T[] => [c, ...(followers.get(c.id) ?? []).flatMap(withFollowers)];
  return roots.flatMap(withFollowers);
}

/** The median (the mean of the middle two for an even count); undefined for no values. */
export function median(values: readonly number[]): number | undefined {
  if (!values.length) return undefined;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * The median over rounds of the per-round ratio a/b (for CPU time b/a: higher is
 * better, as for req/s). Samples pair by round, so slow drift of a shared
 * machine between rounds cancels out; undefined without a common round.
 */
export function pairedRatio(a: CaseResult | undefined, b: CaseResult | undefined, field: 'rps' | 'p99Ms' | 'cpuUsPerReq' | 'mibPerS'): number | undefined {
  if (!a || !b) return undefined;
  const byRound = new Map(b.samples.map((s, i) => [s.round ?? i + 1, s]));
  const ratios: number[] = [];
  a.samples.forEach((s, i) => {
    const t = byRound.get(s.round ?? i + 1);
    const x = s[field];
    const y = t?.[field];
    if (x && y) ratios.push(field === 'cpuUsPerReq' ? y / x : x / y);
  });
  return median(ratios);
}

/** The median over rounds of the per-round difference a − b of a field (e.g. the CPU µs/request one feature adds). */
export function pairedDifference(a: CaseResult | undefined, b: CaseResult | undefined, field: 'cpuUsPerReq'): number | undefined {
  if (!a || !b) return undefined;
  const byRound = new Map(b.samples.map((s, i) => [s.round ?? i + 1, s]));
  const diffs: number[] = [];
  a.samples.forEach((s, i) => {
    const t = byRound.get(s.round ?? i + 1);
    if (s[field] && t?.[field]) diffs.push(s[field] - t[field]);
  });
  return median(diffs);
}

const num = (n: number | undefined, digits = 0) =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function targets(r: BenchReport): string[][] {
  const by = new Map(r.cases.map((c) => [c.id, c]));
  // Medians of per-round ratios (pairedRatio), not ratios of medians.
  const ratio = (a: string, b: string, field: 'rps' | 'p99Ms' | 'mibPerS' = 'rps') => pairedRatio(by.get(a), by.get(b), field);
  const cpuRatio = (a: string, b: string) => pairedRatio(by.get(a), by.get(b), 'cpuUsPerReq');
  const rows: string[][] = [];
  const check = (label: string, value: number | undefined, goal: string, ok: (v: number) => boolean, unit = '×', byCpu?: number) =>
    rows.push([
      label,
      value === undefined ? 'no result' : `${num(value, unit === '×' ? 2 : 1)}${unit === '×' ? '×' : ` ${unit}`}`,
      byCpu === undefined ? '' : `${num(byCpu, 2)}×`,
      goal,
      value === undefined ? '–' : ok(value) ? 'yes' : '**no**',
      byCpu === undefined ? '' : ok(byCpu) ? 'yes' : '**no**',
    ]);
  check('4: no plugin vs bare proxy (default settings: access log on), req/s', ratio('4', '2'), '≥ 0.90×', (v) => v >= 0.9, '×', cpuRatio('4', '2'));
  check('4: the access log, CPU µs/request (#4 − #4-warn, paired)', pairedDifference(by.get('4'), by.get('4-warn'), 'cpuUsPerReq'), '≤ 3 µs', (v) => v <= 3, 'µs');
  for (const alg of ['rs256', 'es256']) {
    const gw = `5-${alg}`;
    const same = `2-${alg}`;
    const name = alg.toUpperCase();
    check(`5: bearer ${name} + scopes vs bare fed the same requests (#${same}), req/s`, ratio(gw, same), '≥ 0.85×', (v) => v >= 0.85, '×', cpuRatio(gw, same));
    check(`5: bearer ${name} + scopes vs bare fed the same requests (#${same}), p99`, ratio(gw, same, 'p99Ms'), '≤ 1.5×', (v) => v <= 1.5);
    check(`5: bearer ${name} + scopes vs bare without a token (#2), req/s`, ratio(gw, '2'), '≥ 0.85×', (v) => v >= 0.85, '×', cpuRatio(gw, '2'));
    check(`5: bearer ${name} + scopes vs bare without a token (#2), p99`, ratio(gw, '2', 'p99Ms'), '≤ 1.5×', (v) => v <= 1.5);
  }
  check('6: new RS256 token per request vs bare fed the same requests (#2-cycle), req/s', ratio('6', '2-cycle'), '≥ 0.45×', (v) => v >= 0.45, '×', cpuRatio('6', '2-cycle'));
  check('6: new RS256 token per request vs bare without a token (#2), req/s', ratio('6', '2'), '≥ 0.45×', (v) => v >= 0.45, '×', cpuRatio('6', '2'));
  check('8: 64 KiB responses vs bare, MiB/s', ratio('8-64k-gw', '8-64k-bare'), '≥ 0.85×', (v) => v >= 0.85, '×', cpuRatio('8-64k-gw', '8-64k-bare'));
  for (const s of r.streams.filter((s) => s.target === 'gw')) {
    check(`8: RSS growth, ${num(s.bytes / 2 ** 20)} MiB ${s.direction}`, s.error ? undefined : s.rssGrowthMiB, '< 50 MiB', (v) => v < 50, 'MiB');
  }
  check('11: proxy-cache hit vs bare proxy (#2), req/s', ratio('11-cache-hit', '2'), '≥ 1.3×', (v) => v >= 1.3, '×', cpuRatio('11-cache-hit', '2'));
  check('11: proxy-cache miss (fetch + store) vs bare proxy (#2), req/s', ratio('11-cache-miss', '2'), 'reported', () => true, '×', cpuRatio('11-cache-miss', '2'));
  check('13: 10,000 routes vs one route (#4), req/s', ratio('13-routes-10k', '4'), '≥ 0.85×', (v) => v >= 0.85, '×', cpuRatio('13-routes-10k', '4'));
  if (r.routeScale) {
    check(`12: compile ${num(r.routeScale.routes)} routes + attach plugins (a one-route change)`, r.routeScale.compileMs, '< 250 ms', (v) => v < 250, 'ms');
  }
  check('9: 2 workers vs 1 (unpinned, see note)', ratio('9-gw-2w', '9-gw-1w'), '≥ 1.7× (needs free cores)', (v) => v >= 1.7);
  return rows;
}

export function renderMarkdown(r: BenchReport): string {
  const by = new Map(r.cases.map((c) => [c.id, c]));
  const out: string[] = [];
  out.push(
    `# Gatehouse benchmark — ${r.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- mode: ${r.mode}, ${r.rounds} interleaved round(s) of ${r.durationS} s per case${r.warmupS ? ` (after ${r.warmupS} s of warm-up each)` : ''}, medians`,
    `- load generator: ${r.loadGenerator}; ${r.connections.small} keep-alive connections (${r.connections.large} for the large-body cases)`,
    `- pinning: ${r.pinning}`,
    `- machine: ${r.machine.cores} cores (${r.machine.cpu}), Linux ${r.machine.kernel}`,
    `- versions: Gatehouse ${r.versions.gatehouse ?? 'unknown'} (dist/ as built), Node ${r.versions.node}, ${r.versions.nginx}, ${r.versions.wrk}`,
    '',
    '"ratio": req/s against the case named, as the median over rounds of the ratio within each round (each Gatehouse case runs right after its baseline). "CPU ratio": the same for the baseline\'s CPU µs/req divided by this case\'s — the throughput ratio to expect on a dedicated core, and the figure that noise on a shared machine disturbs least. The other columns are per-case medians.',
    '',
    '| case | req/s | ratio | CPU ratio | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | MiB/s | status |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  const ids = new Set(r.cases.map((c) => c.id));
  for (const c of r.cases) {
    const m = c.median;
    const base = baselineOf(c.id, ids);
    const rpsRatio = base ? pairedRatio(c, by.get(base), 'rps') : undefined;
    const cpuPaired = base ? pairedRatio(c, by.get(base), 'cpuUsPerReq') : undefined;
    const ratio = rpsRatio === undefined ? '' : `${rpsRatio.toFixed(2)}× #${base}`;
    const cpuRatio = cpuPaired === undefined ? '' : `${cpuPaired.toFixed(2)}×`;
    const status = c.status === 'ok' ? 'ok' : `**${c.status}**${c.reason ? `: ${c.reason.replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 160)}` : ''}`;
    out.push(
      `| #${c.id} ${c.title} | ${num(m?.rps)} | ${ratio} | ${cpuRatio} | ${num(m?.p50Ms, 2)} | ${num(m?.p99Ms, 2)} | ${num(m?.cpuUsPerReq, 1)} | ${num(m?.peakRssMiB)} | ${m?.mibPerS === undefined ? '' : num(m.mibPerS)} | ${status} |`,
    );
  }
  if (r.streams.length) {
    out.push('', `## ${num(r.streams[0].bytes / 2 ** 20)} MiB streamed through once`, '', '| proxy | direction | MiB/s | RSS before MiB | RSS peak MiB | growth MiB |', '|---|---|---:|---:|---:|---:|');
    for (const s of r.streams) {
      out.push(
        s.error
          ? `| ${s.target} | ${s.direction} | **failed**: ${s.error} | | | |`
          : `| ${s.target} | ${s.direction} | ${num(s.mibPerS)} | ${num(s.rssBeforeMiB)} | ${num(s.rssPeakMiB)} | ${num(s.rssGrowthMiB, 1)} |`,
      );
    }
  }
  if (r.routeScale) {
    const s = r.routeScale;
    out.push(
      '',
      `## ${num(s.routes)} routes: the table outside the request path, and the matcher alone`,
      '',
      `Parse (schema) ${num(s.parseMs)} ms, \`RouteTable.compile\` + plugin chains ${num(s.compileMs)} ms (median of ${s.runs}); per \`match()\` call, fastest of ${s.runs} runs (bench/route-scale.ts):`,
      '',
      '| request | routes | index ns | ordered scan ns | scan / index |',
      '|---|---:|---:|---:|---:|',
      ...s.match.map((m) => `| ${m.request} | ${num(m.routes)} | ${num(m.indexNs)} | ${num(m.linearNs)} | ${num(m.linearNs / m.indexNs, 1)}× |`),
    );
  }
  const pairs = r.cases.filter((c) => ids.has(`${c.id}@base`));
  if (pairs.length) {
    out.push(
      '',
      `## A/B: this build on Node ${r.versions.node.split(' ')[0]} against ${r.compare ?? 'the --compare build'} (\`@base\`)`,
      '',
      'Each case and its `@base` twin run back to back in every round; paired per round, medians over rounds. Positive µs: this one costs more.',
      '',
      '| case | req/s ratio | CPU ratio | CPU µs/req, this − @base |',
      '|---|---:|---:|---:|',
    );
    for (const c of pairs) {
      const b = by.get(`${c.id}@base`);
      const rps = pairedRatio(c, b, 'rps');
      const cpu = pairedRatio(c, b, 'cpuUsPerReq');
      out.push(`| #${c.id} ${c.short} | ${rps === undefined ? '' : `${rps.toFixed(2)}×`} | ${cpu === undefined ? '' : `${cpu.toFixed(2)}×`} | ${num(pairedDifference(c, b, 'cpuUsPerReq'), 1)} |`);
    }
  }
  out.push(
    '',
    '## Targets, as ratios within this run',
    '',
    '| target | measured (req/s) | by CPU µs/req | goal | met (req/s) | met (CPU) |',
    '|---|---:|---:|---|---|---|',
  );
  for (const row of targets(r)) out.push(`| ${row.join(' | ')} |`);
  const byId = new Map(r.cases.map((c) => [c.id, c]));
  const notes = [...r.notes];
  const accessLog = pairedDifference(byId.get('4'), byId.get('4-warn'), 'cpuUsPerReq');
  if (accessLog !== undefined) {
    notes.push(
      `The access log (on by default: one JSON line per request, to a file) costs ${num(accessLog, 1)} µs of CPU per request (#4 vs #4-warn, median of per-round differences) and ${num(100 * (1 - (pairedRatio(byId.get('4'), byId.get('4-warn'), 'rps') ?? 1)))}% of req/s.`,
    );
  }
  const tracing = pairedDifference(byId.get('4-otel'), byId.get('4'), 'cpuUsPerReq');
  if (tracing !== undefined) {
    notes.push(`OpenTelemetry tracing (every request recorded and exported over OTLP/HTTP) costs ${num(tracing, 1)} µs of CPU per request (#4-otel vs #4); without OTEL_EXPORTER_OTLP_ENDPOINT no SDK module is loaded.`);
  }
  notes.push(
    r.cycleTokens > 50_000
      ? `Case 6 cycles through ${num(r.cycleTokens)} distinct tokens (continuing across runs), more than the gateway's verified-token cache holds (50,000, oldest evicted first); a token comes back only after 60,000 others, and the cache admits a token on its second sight within 16,384 misses, so none is ever cached and every request pays a signature check.`
      : `Case 6 cycles through only ${num(r.cycleTokens)} distinct tokens in this mode, so from their third sight on they come from the gateway's cache: the figures are not the worst case.`,
    'Case 9 runs unpinned: with 2 cores the load generator, the upstream and both workers share the same two CPUs, so it cannot show worker scaling; it only shows that the multi-worker mode works under load.',
  );
  out.push('', '## Notes', '', ...notes.filter(Boolean).map((n) => `- ${n}`), '');
  return `${out.join('\n')}\n`;
}

export function writeReport(r: BenchReport, where: { dir?: string; json?: string }): { markdown: string; failed: string[] } {
  const markdown = renderMarkdown(r);
  const failed = [
    ...r.cases.filter((c) => c.status === 'failed' || c.status === 'errors').map((c) => c.id),
    ...r.streams.filter((s) => s.error).map((s) => `stream-${s.target}-${s.direction}`),
  ];
  const json = `${JSON.stringify(r, null, 2)}\n`;
  if (where.json) {
    mkdirSync(dirname(where.json), { recursive: true });
    writeFileSync(where.json, json);
  }
  if (where.dir) {
    mkdirSync(where.dir, { recursive: true });
    const svg = renderChart(
      r.cases.map((c) => ({ label: `#${c.id} ${c.short}`, rps: c.median?.rps, p99Ms: c.median?.p99Ms, cpuUs: c.median?.cpuUsPerReq, gatehouse: c.gatehouse })),
      `Gatehouse benchmark ${r.date.slice(0, 10)}: medians of ${r.rounds} rounds × ${r.durationS} s`,
    );
    const stamp = r.date.slice(0, 16).replace(/[:T]/g, '-');
    for (const name of ['latest', stamp]) {
      writeFileSync(join(where.dir, `${name}.md`), markdown.replace('latest.svg', `${name}.svg`));
      writeFileSync(join(where.dir, `${name}.json`), json);
      writeFileSync(join(where.dir, `${name}.svg`), svg);
    }
  }
  return { markdown, failed };
}
