import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { launchBrowser } from '../test/helpers/browser.js';
import { parseExposition, type Sample } from '../test/helpers/exposition.js';
import { FakeIssuer, json, signingKey } from '../test/helpers/fake-issuer.js';
import { PROJECT_ROOT, startGateway } from '../test/helpers/gateway.js';
import { startUpstream } from '../test/helpers/upstream.js';

/**
 * Renders docs/img/grafana-gatehouse.png: the panels of
 * deploy/grafana/gatehouse.json (titles, layout, units) drawn from the
 * gatehouse_* series of a real run, so the picture shows what the dashboard
 * shows for real traffic without a Prometheus and a Grafana to install.
 *
 *   node dist/bench/grafana-screenshot.js [--seconds 90]
 *
 * A gateway with two workers in front of an echo upstream and a fake issuer
 * gets a traffic mix: bearer callers allowed and refused (403, tampered and
 * missing tokens), opaque tokens introspected, a rate-limited route, an IdP key
 * rotation (unknown kid → JWKS refetch) and an introspection outage (fail
 * closed: idp_unavailable). /metrics is scraped every 2 s; each panel's query
 * is evaluated over the scrapes (rates over a 10 s window) by the small
 * evaluator below, which knows the query shapes the dashboard uses.
 */

const SCRAPE_MS = 2_000;
const RATE_WINDOW_S = 10;

interface Scrape {
  t: number;
  samples: Sample[];
}

interface Series {
  name: string;
  points: [number, number][];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function send(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Sum by `by` labels of the samples named `name` matching `where`. */
function grouped(samples: Sample[], name: string, by: string[], where: (l: Record<string, string>) => boolean = () => true): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || !where(s.labels)) continue;
    const key = by.map((b) => s.labels[b] ?? '').join(' ');
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/** `sum by (by) (rate(name{where}[window]))` at every scrape with a window behind it. */
function rate(scrapes: Scrape[], name: string, by: string[], where?: (l: Record<string, string>) => boolean): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (let i = 0; i < scrapes.length; i++) {
    const now = scrapes[i];
    const before = scrapes.findLast((s) => s.t <= now.t - RATE_WINDOW_S * 1000);
    if (!before) continue;
    const a = grouped(before.samples, name, by, where);
    const b = grouped(now.samples, name, by, where);
    const dt = (now.t - before.t) / 1000;
    for (const [k, v] of b) {
      if (!out.has(k)) out.set(k, []);
      out.get(k)!.push([now.t, (v - (a.get(k) ?? 0)) / dt]);
    }
  }
  return out;
}

/** `histogram_quantile(q, sum by (by, le) (rate(name_bucket[window])))`, linear within a bucket as Prometheus interpolates. */
function quantile(scrapes: Scrape[], q: number, name: string, by: string[]): Map<string, [number, number][]> {
  const rates = rate(scrapes, `${name}_bucket`, [...by, 'le']);
  const byTime = new Map<string, Map<number, [number, number][]>>();
  for (const [key, points] of rates) {
    const parts = key.split(' ');
    const le = parts.pop()!;
    const group = parts.join(' ');
    for (const [t, v] of points) {
      const g = byTime.get(group) ?? byTime.set(group, new Map()).get(group)!;
      (g.get(t) ?? g.set(t, []).get(t)!).push([le === '+Inf' ? Infinity : Number(le), v]);
    }
  }
  const out = new Map<string, [number, number][]>();
  for (const [group, times] of byTime) {
    const points: [number, number][] = [];
    for (const [t, buckets] of times) {
      buckets.sort((a, b) => a[0] - b[0]);
      const count = buckets.at(-1)![1];
      if (count <= 0) continue;
      const rank = q * count;
      let prevLe = 0;
      let prevCount = 0;
      for (const [le, c] of buckets) {
        if (c >= rank) {
          const upper = le === Infinity ? prevLe : le;
          points.push([t, prevLe + (upper - prevLe) * ((rank - prevCount) / Math.max(c - prevCount, 1e-9))]);
          break;
        }
        prevLe = le;
        prevCount = c;
      }
    }
    out.set(group, points);
  }
  return out;
}

function seriesOf(m: Map<string, [number, number][]>, label: (k: string) => string): Series[] {
  return [...m].map(([k, points]) => ({ name: label(k), points })).sort((a, b) => a.name.localeCompare(b.name));
}

/** The dashboard's queries, evaluated over the scrapes, by panel title. */
function evaluate(title: string, scrapes: Scrape[]): { series?: Series[]; stat?: string } {
  const last = scrapes.at(-1)!.samples;
  const first = scrapes[0].samples;
  const sum = (samples: Sample[], name: string, where: (l: Record<string, string>) => boolean = () => true) =>
    samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0);
  switch (title) {
    case 'Authentication decisions by result':
      return { series: seriesOf(rate(scrapes, 'gatehouse_auth_total', ['result']), (k) => k) };
    case 'Authentication decisions by method':
      return { series: seriesOf(rate(scrapes, 'gatehouse_auth_total', ['method']), (k) => k) };
    case 'Refused share': {
      const all = sum(last, 'gatehouse_auth_total') - sum(first, 'gatehouse_auth_total');
      const refused = sum(last, 'gatehouse_auth_total', (l) => l.result !== 'allowed') - sum(first, 'gatehouse_auth_total', (l) => l.result !== 'allowed');
      return { stat: `${((refused / Math.max(all, 1)) * 100).toFixed(1)}%` };
    }
    case 'Refusals by route':
      return { series: seriesOf(rate(scrapes, 'gatehouse_auth_total', ['route', 'result'], (l) => l.result !== 'allowed'), (k) => k) };
    case 'IdP calls by endpoint and outcome':
      return { series: seriesOf(rate(scrapes, 'gatehouse_idp_requests_total', ['endpoint', 'outcome']), (k) => k) };
    case 'IdP latency p95 by endpoint':
      return { series: seriesOf(quantile(scrapes, 0.95, 'gatehouse_idp_request_duration_ms', ['endpoint']), (k) => k) };
    case 'JWKS refetches and unknown kids': {
      const perWindow = (m: Map<string, [number, number][]>) => new Map([...m].map(([k, p]) => [k, p.map(([t, v]) => [t, v * RATE_WINDOW_S] as [number, number])]));
      return {
        series: [
          ...seriesOf(perWindow(rate(scrapes, 'gatehouse_jwks_refetches_total', ['cause'])), (k) => `refetch ${k}`),
          ...seriesOf(perWindow(rate(scrapes, 'gatehouse_jwks_kid_misses_total', [])), () => 'kid miss'),
        ],
      };
    }
    case 'Verified-token cache': {
      const hits = sum(last, 'gatehouse_token_cache_lookups_total', (l) => l.result === 'hit') - sum(first, 'gatehouse_token_cache_lookups_total', (l) => l.result === 'hit');
      const all = sum(last, 'gatehouse_token_cache_lookups_total') - sum(first, 'gatehouse_token_cache_lookups_total');
      return { stat: `${((hits / Math.max(all, 1)) * 100).toFixed(1)}%` };
    }
    case 'Cached tokens':
      return { stat: String(sum(last, 'gatehouse_token_cache_entries')) };
    case 'Rate-limit decisions':
      return { series: seriesOf(rate(scrapes, 'gatehouse_rate_limit_decisions_total', ['route', 'decision']), (k) => k) };
    case 'Configuration reloads':
      return { stat: `${sum(last, 'gatehouse_config_reloads_total', (l) => l.result === 'applied')} applied / ${sum(last, 'gatehouse_config_reloads_total', (l) => l.result === 'rejected')} rejected` };
    case 'Config applied': {
      const s = Math.round(Date.now() / 1000 - sum(last, 'gatehouse_config_last_applied_timestamp_seconds'));
      return { stat: `${Math.floor(s / 60)} min ${s % 60} s ago` };
    }
    default:
      return {};
  }
}

const COLORS = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a', '#96d98d', '#ff9830'];

function svgChart(series: Series[], unit: string, width: number, height: number): string {
  const all = series.flatMap((s) => s.points);
  if (!all.length) return '<div class="empty">No data</div>';
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const max = Math.max(...all.map((p) => p[1]), 1e-9) * 1.1;
  const x = (t: number) => 44 + ((t - t0) / Math.max(t1 - t0, 1)) * (width - 54);
  const y = (v: number) => 8 + (1 - v / max) * (height - 30);
  const fmt = (v: number) => (unit === 'ms' ? `${v.toFixed(v < 10 ? 1 : 0)} ms` : unit === 'reqps' ? `${v.toFixed(v < 10 ? 1 : 0)}/s` : v.toFixed(v < 10 ? 1 : 0));
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => `<line x1="44" x2="${width - 10}" y1="${y(max * f)}" y2="${y(max * f)}" class="grid"/><text x="40" y="${y(max * f) + 4}" class="axis" text-anchor="end">${fmt(max * f)}</text>`)
    .join('');
  const ticks = [0, 0.5, 1]
    .map((f) => {
      const t = t0 + (t1 - t0) * f;
      const d = new Date(t);
      return `<text x="${x(t)}" y="${height - 6}" class="axis" text-anchor="${f === 0 ? 'start' : f === 1 ? 'end' : 'middle'}">${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}:${String(d.getUTCSeconds()).padStart(2, '0')}</text>`;
    })
    .join('');
  const lines = series
    .map((s, i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`)
    .join('');
  return `<svg width="${width}" height="${height}">${grid}${ticks}${lines}</svg>`;
}

function legend(series: Series[], unit: string): string {
  return `<table class="legend">${series
    .map((s, i) => {
      const v = s.points.at(-1)?.[1] ?? 0;
      const shown = unit === 'ms' ? `${v.toFixed(1)} ms` : unit === 'reqps' ? `${v.toFixed(2)} req/s` : v.toFixed(0);
      return `<tr><td><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span>${s.name}</td><td class="num">${shown}</td></tr>`;
    })
    .join('')}</table>`;
}

interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  fieldConfig?: { defaults?: { unit?: string } };
}

function renderPage(dashboard: { title: string; panels: Panel[] }, scrapes: Scrape[]): string {
  const COL = 64;
  const ROW = 30;
  const cells = dashboard.panels
    .map((p) => {
      const { x, y, w, h } = p.gridPos;
      const style = `left:${x * COL + 8}px;top:${y * ROW + 60}px;width:${w * COL - 8}px;height:${h * ROW - 8}px`;
      if (p.type === 'row') return `<div class="row" style="${style}">${p.title}</div>`;
      const unit = p.fieldConfig?.defaults?.unit ?? 'short';
      const r = evaluate(p.title, scrapes);
      const body =
        r.stat !== undefined
          ? `<div class="stat">${r.stat}</div>`
          : `<div class="chart">${svgChart(r.series ?? [], unit, Math.round(w * COL * 0.62), h * ROW - 44)}${legend(r.series ?? [], unit)}</div>`;
      return `<div class="panel" style="${style}"><div class="title">${p.title}</div>${body}</div>`;
    })
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><style>
    body { margin:0; background:#111217; color:#ccccdc; font:12px Inter, "DejaVu Sans", sans-serif; }
    .top { position:absolute; left:8px; top:14px; font-size:18px; color:#fff; }
    .top small { font-size:12px; color:#8e8e9e; margin-left:12px; }
    .row { position:absolute; font-size:14px; color:#fff; font-weight:600; padding-top:6px; }
    .panel { position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:2px; box-sizing:border-box; overflow:hidden; }
    .title { padding:6px 8px; font-weight:600; color:#d8d9da; }
    .chart { display:flex; }
    .legend { font-size:11px; margin:4px 6px; border-collapse:collapse; align-self:flex-start; }
    .legend td { padding:1px 6px; white-space:nowrap; }
    .num { text-align:right; color:#fff; }
    .swatch { display:inline-block; width:12px; height:3px; margin-right:6px; vertical-align:middle; }
    .stat { font-size:34px; color:#73bf69; text-align:center; margin-top:44px; font-weight:500; }
    .grid { stroke:#2c3235; }
    .axis { fill:#8e8e9e; font-size:10px; }
    .empty { padding:40px; color:#8e8e9e; }
  </style></head><body><div class="top">${dashboard.title}<small>rendered from /metrics scrapes of a real run (GATEHOUSE_WORKERS=2)</small></div>${cells}</body></html>`;
}

async function main() {
  const seconds = arg('--seconds', 90);
  let outage = false;
  const issuer = await FakeIssuer.start(undefined, 0, {
    handlers: {
      // Introspection answers after a few ms, and fails (503) during the outage.
      '/introspect': (_req, res) => {
        if (outage) return json(res, { error: 'temporarily_unavailable' }, 503);
        setTimeout(() => json(res, { active: true, iss: issuer.issuer, sub: 'batch-job', scope: 'reports', exp: Math.floor(Date.now() / 1000) + 300 }), 3 + Math.random() * 12);
      },
    },
  });
  // An upstream that takes a few ms, like a real API.
  const upstream = await startUpstream((_req, res) => setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'), 2 + Math.random() * 20));
  const bearer = (extra: Record<string, unknown>) => ({ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['bearer'], ...extra } });
  const gw = await startGateway({
    env: { GATEHOUSE_WORKERS: '2', GATEHOUSE_LOG_LEVEL: 'info' },
    config: {
      _format_version: '3.0',
      services: [
        {
          name: 'shop',
          url: upstream.url,
          routes: [
            { name: 'orders', paths: ['/orders'], plugins: [bearer({ scopes_required: ['orders'] })] },
            { name: 'search', paths: ['/search'], plugins: [bearer({}), { name: 'rate-limiting', config: { second: 4, limit_by: 'consumer' } }] },
            {
              name: 'reports',
              paths: ['/reports'],
              plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['introspection'], client_id: ['gatehouse'], client_secret: ['s3cret'], cache_ttl: 1 } }],
            },
          ],
        },
      ],
      plugins: [{ name: 'prometheus', config: { status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true } }],
    },
  });

  const users = await Promise.all(['ana', 'ben', 'chloe', 'dev'].map((sub) => issuer.token({ sub, scope: 'openid orders' })));
  const noScope = await issuer.token({ sub: 'eve', scope: 'openid' });
  const scrapes: Scrape[] = [];
  const started = Date.now();
  const scraper = (async () => {
    while (Date.now() - started < seconds * 1000) {
      const res = await request(`${gw.statusUrl}/metrics`);
      scrapes.push({ t: Date.now(), samples: parseExposition(await res.body.text()) });
      await sleep(SCRAPE_MS);
    }
  })();

  let rotated: string[] | undefined;
  let tick = 0;
  while (Date.now() - started < seconds * 1000) {
    const elapsed = (Date.now() - started) / 1000;
    // A key rotation at a third of the run: new tokens name a kid the cached JWKS does not have.
    if (!rotated && elapsed > seconds / 3) {
      const key = await signingKey('RS256');
      issuer.keys.push(key);
      rotated = await Promise.all(['ana', 'ben'].map((sub) => issuer.token({ sub, scope: 'openid orders' }, { key })));
    }
    outage = elapsed > seconds * 0.6 && elapsed < seconds * 0.72;
    const wave = 1 + 0.5 * Math.sin(elapsed / 9);
    const calls: Promise<number>[] = [];
    const pool = rotated ? [...users, ...rotated] : users;
    for (let i = 0; i < Math.round(6 * wave); i++) calls.push(send(`${gw.proxyUrl}/orders`, { authorization: `Bearer ${pool[(tick + i) % pool.length]}` }));
    if (tick % 2 === 0) calls.push(send(`${gw.proxyUrl}/orders`, { authorization: `Bearer ${noScope}` }));
    if (tick % 3 === 0) calls.push(send(`${gw.proxyUrl}/orders`, {}));
    if (tick % 5 === 0) calls.push(send(`${gw.proxyUrl}/orders`, { authorization: `Bearer ${users[0].slice(0, -6)}AAAAAA` }));
    for (let i = 0; i < 2; i++) calls.push(send(`${gw.proxyUrl}/search`, { authorization: `Bearer ${users[tick % 2]}` }));
    calls.push(send(`${gw.proxyUrl}/reports`, { authorization: `Bearer opaque-${tick}-${Math.random().toString(36).slice(2)}` }));
    await Promise.all(calls);
    tick++;
    await sleep(100);
  }
  await scraper;

  const dashboard = JSON.parse(readFileSync(join(PROJECT_ROOT, 'deploy/grafana/gatehouse.json'), 'utf8'));
  const html = renderPage(dashboard, scrapes);
  const out = join(PROJECT_ROOT, 'docs/img/grafana-gatehouse.png');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(join(PROJECT_ROOT, 'dist/grafana-gatehouse.html'), html);
  const browser = await launchBrowser();
  try {
    const page = await browser.browser.newPage({ viewport: { width: 24 * 64 + 16, height: 44 * 30 + 70 } });
    await page.setContent(html);
    await page.screenshot({ path: out, fullPage: true });
  } finally {
    await browser.close();
    await gw.stop('SIGTERM');
    await upstream.close();
    await issuer.stop();
  }
  process.stderr.write(`wrote ${out} from ${scrapes.length} scrapes\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
