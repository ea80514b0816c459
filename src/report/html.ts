// report.html: one self-contained page (inline SVG charts, inline CSS, no scripts or links to fetch), so it
// opens offline and can be attached to an issue or mailed as is.

import type { ChartDef, MetricRecord } from './charts.js';

export interface ReportInput {
  title: string;
  /** one-paragraph description of the run */
  subtitle: string;
  /** rows of the summary table: label -> value */
  summary: readonly (readonly [string, string])[];
  /** before/after evaluation metrics, if any */
  firstEval: MetricRecord | null;
  lastEval: MetricRecord | null;
  charts: readonly { def: ChartDef; svg: string }[];
  /** the resolved options, shown at the bottom */
  config: Readonly<Record<string, unknown>>;
  /** optional extra sections, e.g. sample generations: heading -> preformatted text */
  extra?: readonly (readonly [string, string])[];
}

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const fmt = (x: number | undefined): string => (x === undefined ? '–' : Number.isInteger(x) ? String(x) : x.toPrecision(5));

// the XML prolog is not allowed inside HTML; the rest of vega's SVG is valid inline
const inlineSvg = (svg: string): string => svg.replace(/^<\?xml[^>]*>\s*/, '');

function evalTable(first: MetricRecord | null, last: MetricRecord | null): string {
  if (last === null) return '<p>No evaluation set (give eval_dataset or eval_split_ratio).</p>';
  const names = Object.keys(last).filter((k) => k.startsWith('eval_'));
  const rows = names.map((k) => `<tr><td>${escapeHtml(k)}</td><td>${fmt(first?.[k])}</td><td>${fmt(last[k])}</td></tr>`);
  return `<table><tr><th>metric</th><th>step ${fmt(first?.['step'])}</th><th>step ${fmt(last['step'])}</th></tr>${rows.join('')}</table>`;
}

export function renderReportHtml(r: ReportInput): string {
  const summary = r.summary.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('');
  const charts = r.charts.map((c) => `<figure id="${c.def.id}">${inlineSvg(c.svg)}</figure>`).join('\n');
  const extra = (r.extra ?? []).map(([h, text]) => `<h2>${escapeHtml(h)}</h2><pre>${escapeHtml(text)}</pre>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(r.title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
figure{display:inline-block;margin:.5em}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
</style></head><body>
<h1>${escapeHtml(r.title)}</h1>
<p>${escapeHtml(r.subtitle)}</p>
<h2>Summary</h2><table>${summary}</table>
<h2>Evaluation before and after</h2>${evalTable(r.firstEval, r.lastEval)}
<h2>Curves</h2>
${charts}
${extra}
<h2>Options</h2><pre>${escapeHtml(JSON.stringify(r.config, null, 2))}</pre>
</body></html>
`;
}
