/**
 * A dependency-free SVG chart for the README: three horizontal bar panels —
 * requests/s, p99 latency and the proxy's CPU time per request — one bar per
 * case (medians over the rounds).
 */

export interface ChartRow {
  label: string;
  rps?: number;
  p99Ms?: number;
  cpuUs?: number;
  /** Highlight Gatehouse's own cases. */
  gatehouse: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

interface Panel {
  title: string;
  value: (r: ChartRow) => number | undefined;
  digits: number;
}

export function renderChart(rows: ChartRow[], title: string): string {
  const labelW = 270;
  const panelW = 260;
  const gap = 30;
  const rowH = 22;
  const top = 56;
  const panels: Panel[] = [
    { title: 'requests/s (higher is better)', value: (r) => r.rps, digits: 0 },
    { title: 'p99 latency, ms (lower is better)', value: (r) => r.p99Ms, digits: 2 },
    { title: 'proxy CPU µs/request (lower is better)', value: (r) => r.cpuUs, digits: 1 },
  ];
  const width = labelW + panels.length * (panelW + gap);
  const height = top + rows.length * rowH + 30;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  rows.forEach((r, i) => out.push(`<text x="${labelW - 8}" y="${top + i * rowH + 14}" text-anchor="end">${esc(r.label)}</text>`));
  panels.forEach((panel, p) => {
    const x0 = labelW + p * (panelW + gap);
    const max = Math.max(1e-9, ...rows.map((r) => panel.value(r) ?? 0));
    out.push(`<text x="${x0}" y="44" font-weight="bold">${esc(panel.title)}</text>`);
    rows.forEach((r, i) => {
      const y = top + i * rowH;
      const v = panel.value(r);
      if (v === undefined) {
        out.push(`<text x="${x0 + 4}" y="${y + 14}" fill="#b00020">no result</text>`);
        return;
      }
      const w = Math.max(1, ((panelW - 64) * v) / max);
      const color = r.gatehouse ? '#2f6fb0' : '#8c8c8c';
      out.push(
        `<rect x="${x0}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${color}" opacity="${p === 0 ? 1 : 0.8}"/>`,
        `<text x="${(x0 + w + 4).toFixed(1)}" y="${y + 14}">${fmt(v, panel.digits)}</text>`,
      );
    });
  });
  out.push(
    `<text x="10" y="${height - 10}" fill="#555">blue: Gatehouse · grey: references (direct upstream, bare undici proxy, nginx)</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
