// `orpo compare`'s summary.md (the tables, for a README or an issue) and report.html (the same tables and the
// held-out curves of every method overlaid), plus charts/*.svg.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompareResults, MethodRun } from '../compare/results.js';
import type { Estimate } from '../compare/win-rates.js';
import { writeFileAtomically } from '../io/atomic-file.js';
import { evalName, METRIC as M } from '../loss/metric-names.js';

const num = (x: number | undefined, digits = 4): string => (x === undefined || !Number.isFinite(x) ? '–' : Number.isInteger(x) ? String(x) : x.toFixed(digits));
const est = (e: Estimate): string => `${num(e.mean, 3)} [${num(e.ci95[0], 3)}, ${num(e.ci95[1], 3)}]`;

/** the held-out curves compare overlays: metrics.jsonl names */
export const COMPARE_CHARTS = [
  { id: 'chosen', metric: evalName(M.meanLogpChosen), title: 'held-out chosen responses: mean log-prob per token', y: 'log p per token' },
  { id: 'rejected', metric: evalName(M.meanLogpRejected), title: 'held-out rejected responses: mean log-prob per token', y: 'log p per token' },
  { id: 'margin', metric: evalName(M.meanLogpMargin), title: 'held-out margin: mean log p(chosen) − mean log p(rejected)', y: 'margin' },
  { id: 'accuracy', metric: evalName(M.meanLogpAccuracy), title: 'held-out preference accuracy (chosen more likely)', y: 'accuracy' },
];

function resultRows(r: CompareResults): string[][] {
  const head = ['method', 'options', 'steps', 'wall s', 'policy tokens', 'reference tokens', 'peak RSS MiB',
    'chosen logp', 'rejected logp', 'accuracy', 'margin'];
  const start = r.runs[0]?.curve[0];
  const rows = [head];
  if (start !== undefined) {
    rows.push(['(start)', '', '0', '', '', '', '', num(start[evalName(M.meanLogpChosen)]), num(start[evalName(M.meanLogpRejected)]),
      num(start[evalName(M.meanLogpAccuracy)], 3), num(start[evalName(M.meanLogpMargin)])]);
  }
  for (const m of r.runs) {
    const f = m.final;
    rows.push([m.name, Object.entries(m.options).map(([k, v]) => `${k} ${v}`).join(', '), String(m.steps), num(m.wall_seconds, 1),
      String(m.forward_tokens), String(m.reference_forward_tokens), String(m.peak_rss_mb),
      num(f[evalName(M.meanLogpChosen)]), num(f[evalName(M.meanLogpRejected)]), num(f[evalName(M.meanLogpAccuracy)], 3), num(f[evalName(M.meanLogpMargin)])]);
  }
  return rows;
}

function ownMetricRows(m: MethodRun): string[][] {
  // start: the first evaluation that has the metric (sft+dpo: the DPO stage's own first evaluation)
  const rows = [['metric', 'start', 'end']];
  for (const [k, v] of Object.entries(m.final)) {
    if (!k.startsWith('eval_') || k.startsWith('eval_mean_logps/')) continue;
    rows.push([k, num(m.curve.find((p) => p[k] !== undefined)?.[k]), num(v)]);
  }
  return rows;
}

function judgeRows(r: CompareResults): { scores: string[][]; wins: string[][] } | null {
  const j = r.judge;
  if (j === null) return null;
  const scores = [['model', 'mean score [95% CI]']];
  for (const name of j.contestants) if (j.scores?.[name] !== undefined) scores.push([name, est(j.scores[name]!)]);
  const wins = [['A', 'B', 'A wins', 'ties', 'B wins', 'win rate of A [95% CI]']];
  for (const w of j.winRates) wins.push([w.a, w.b, String(w.wins), String(w.ties), String(w.losses), est(w.winRate)]);
  return { scores, wins };
}

const mdTable = (rows: readonly string[][]): string => [
  `| ${rows[0]!.join(' | ')} |`, `|${rows[0]!.map(() => '---').join('|')}|`, ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`),
].join('\n');

export function renderCompareSummary(r: CompareResults): string {
  const parts = [
    `# orpo compare: ${r.methods.join(', ')}`, '',
    `${r.model} on ${r.dataset}: ${r.train_pairs} training pairs, ${r.eval_pairs} held-out pairs.`, '',
    '## Held-out results (the same measure for every method)', '', mdTable(resultRows(r)), '',
  ];
  const j = judgeRows(r);
  if (j !== null) {
    const s = r.judge!.sampling;
    parts.push(`## Judged completions (${r.judge!.file}, ${r.judge!.kind}, ${r.judge!.prompts} prompts; temperature ${s.temperature}, ` +
      `${s.max_new_tokens} new tokens, seed ${s.seed} + prompt index)`, '');
    if (j.scores.length > 1) parts.push(mdTable(j.scores), '');
    parts.push(mdTable(j.wins), '');
  }
  for (const m of r.runs) parts.push(`### ${m.name}: its own metrics`, '', mdTable(ownMetricRows(m)), '');
  return `${parts.join('\n')}\n`;
}

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const htmlTable = (rows: readonly string[][]): string =>
  `<table><tr>${rows[0]!.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>${rows.slice(1).map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</table>`;

/** report.html and charts/*.svg; returns the page's path */
export async function writeCompareReport(outDir: string, r: CompareResults, options: Readonly<Record<string, unknown>>): Promise<string> {
  const { overlaySpec, renderSpecSvg } = await import('../report/charts.js');
  await mkdir(join(outDir, 'charts'), { recursive: true });
  const figures: string[] = [];
  for (const ch of COMPARE_CHARTS) {
    const series = r.runs.map((m) => ({
      label: m.name, points: m.curve.filter((p) => p[ch.metric] !== undefined).map((p) => ({ step: p['step']!, value: p[ch.metric]! })),
    }));
    if (series.every((s) => s.points.length === 0)) continue;
    const svg = await renderSpecSvg(overlaySpec(ch.title, ch.y, series));
    await writeFile(join(outDir, 'charts', `${ch.id}.svg`), svg);
    figures.push(`<figure id="${ch.id}">${svg.replace(/^<\?xml[^>]*>\s*/, '')}</figure>`);
  }
  const j = judgeRows(r);
  const judgeHtml = j === null ? '<p>No judge (give --judge judge.mjs for win rates).</p>'
    : `<p>${escapeHtml(`${r.judge!.file} (${r.judge!.kind}) on ${r.judge!.prompts} held-out prompts; every model completes each prompt with the same sampling seed.`)}</p>` +
      `${j.scores.length > 1 ? htmlTable(j.scores) : ''}${htmlTable(j.wins)}`;
  const own = r.runs.map((m) => `<h3>${escapeHtml(m.name)}</h3>${htmlTable(ownMetricRows(m))}`).join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orpo compare: ${escapeHtml(r.methods.join(', '))}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
figure{display:inline-block;margin:.5em}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
</style></head><body>
<h1>orpo compare: ${escapeHtml(r.methods.join(', '))}</h1>
<p>${escapeHtml(`${r.model} trained on ${r.dataset} (${r.train_pairs} pairs) by each method with the same data, order, steps and seed; evaluated on the same ${r.eval_pairs} held-out pairs.`)}</p>
<h2 id="results">Results</h2>${htmlTable(resultRows(r))}
<ul>${r.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>
<h2 id="curves">Held-out curves</h2>
${figures.join('\n')}
<h2 id="judge">Judged completions</h2>${judgeHtml}
<h2>Each method's own metrics</h2>${own}
<h2>Options</h2><pre>${escapeHtml(JSON.stringify(options, null, 2))}</pre>
</body></html>
`;
  const file = join(outDir, 'report.html');
  await writeFileAtomically(file, html);
  return file;
}
