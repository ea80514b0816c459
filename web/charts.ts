/// <reference lib="dom" />
// Live training curves as inline SVG: one small chart per metric, a polyline per series, redrawn from scratch (a
// few hundred points; cheaper than keeping a chart library in the bundle).

export interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

const WIDTH = 320;
const HEIGHT = 160;
const PAD = { left: 44, right: 8, top: 22, bottom: 20 };

const fmt = (v: number): string => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2));
const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The SVG markup of one chart. */
export function chartSvg(title: string, series: readonly Series[]): string {
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (all.length === 0) return `<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img"><text x="8" y="16">${escape(title)}: no data yet</text></svg>`;
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (x: number): number => PAD.left + ((x - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
  const py = (y: number): number => HEIGHT - PAD.bottom - ((y - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
  const lines = series.filter((s) => s.points.length > 0).map((s) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    const dots = s.points.length <= 12 ? s.points.map(([x, y]) => `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`).join('') : '';
    return `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts}"/>${dots}`;
  }).join('');
  const legend = series.map((s, i) => `<text x="${PAD.left + 4 + i * 110}" y="14" fill="${s.color}">${escape(s.label)}</text>`).join('');
  const axes = `<line x1="${PAD.left}" y1="${HEIGHT - PAD.bottom}" x2="${WIDTH - PAD.right}" y2="${HEIGHT - PAD.bottom}" stroke="#999"/>` +
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${HEIGHT - PAD.bottom}" stroke="#999"/>` +
    `<text x="${PAD.left - 4}" y="${PAD.top + 8}" text-anchor="end">${fmt(y1)}</text>` +
    `<text x="${PAD.left - 4}" y="${HEIGHT - PAD.bottom}" text-anchor="end">${fmt(y0)}</text>` +
    `<text x="${WIDTH - PAD.right}" y="${HEIGHT - 4}" text-anchor="end">step ${fmt(x1)}</text>`;
  return `<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escape(title)}"><title>${escape(title)}</title>${axes}${lines}${legend}</svg>`;
}
