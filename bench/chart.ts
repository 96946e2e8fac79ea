/**
 * A dependency-free SVG chart for the README: two horizontal bar panels,
 * requests/s and p99 latency, one bar per case (medians over the rounds).
 */

export interface ChartRow {
  label: string;
  rps?: number;
  p99Ms?: number;
  /** Highlight Gatehouse's own cases. */
  gatehouse: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function renderChart(rows: ChartRow[], title: string): string {
  const labelW = 300;
  const panelW = 330;
  const gap = 40;
  const rowH = 22;
  const top = 56;
  const width = labelW + 2 * panelW + gap + 20;
  const height = top + rows.length * rowH + 30;
  const maxRps = Math.max(1, ...rows.map((r) => r.rps ?? 0));
  const maxP99 = Math.max(0.001, ...rows.map((r) => r.p99Ms ?? 0));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${labelW}" y="44" font-weight="bold">requests/s (higher is better)</text>`,
    `<text x="${labelW + panelW + gap}" y="44" font-weight="bold">p99 latency, ms (lower is better)</text>`,
  );
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const color = r.gatehouse ? '#2f6fb0' : '#8c8c8c';
    out.push(`<text x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(r.label)}</text>`);
    if (r.rps === undefined) {
      out.push(`<text x="${labelW + 4}" y="${y + 14}" fill="#b00020">no result</text>`);
      return;
    }
    const w1 = Math.max(1, ((panelW - 70) * r.rps) / maxRps);
    out.push(
      `<rect x="${labelW}" y="${y + 3}" width="${w1.toFixed(1)}" height="${rowH - 6}" fill="${color}"/>`,
      `<text x="${(labelW + w1 + 4).toFixed(1)}" y="${y + 14}">${fmt(r.rps)}</text>`,
    );
    const x2 = labelW + panelW + gap;
    const w2 = Math.max(1, ((panelW - 60) * (r.p99Ms ?? 0)) / maxP99);
    out.push(
      `<rect x="${x2}" y="${y + 3}" width="${w2.toFixed(1)}" height="${rowH - 6}" fill="${color}" opacity="0.75"/>`,
      `<text x="${(x2 + w2 + 4).toFixed(1)}" y="${y + 14}">${fmt(r.p99Ms ?? 0, 2)}</text>`,
    );
  });
  out.push(
    `<text x="10" y="${height - 10}" fill="#555">blue: Gatehouse · grey: references (direct upstream, bare undici proxy, nginx)</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
