// Training curves as Vega-Lite specs rendered to SVG in Node (vega's headless 'none' renderer: no canvas, no
// browser), from metrics.jsonl records. Training and `eval_` series share a chart so they can be compared, in the
// same two colours on every chart (training blue, held-out orange); a chart of two quantities (chosen, rejected)
// tells them apart by the line's dash, never by a colour of its own.

import * as vega from 'vega';
import { METRIC as M, TRAINER_LOG } from '../loss/metric-names.js';
import { compile, type TopLevelSpec } from 'vega-lite';

export type MetricRecord = Readonly<Record<string, number>>;

export interface ChartDef {
  /** file name stem (charts/<id>.svg) */
  id: string;
  title: string;
  /** metric names (train names; the eval_ twin is added automatically) with their legend labels */
  series: readonly { metric: string; label: string }[];
  yTitle: string;
}

export const CHARTS: readonly ChartDef[] = [
  { id: 'loss', title: "loss: the method's objective (ORPO: L = L_NLL + λ·L_OR)", yTitle: 'loss', series: [{ metric: M.loss, label: 'loss' }] },
  { id: 'nll_loss', title: 'SFT term: NLL of the chosen responses', yTitle: 'nll_loss', series: [{ metric: M.nllLoss, label: 'nll' }] },
  { id: 'log_odds_ratio', title: 'mean log σ(log odds ratio) (→ 0 as chosen beats rejected)', yTitle: 'log_odds_ratio', series: [{ metric: 'log_odds_ratio', label: 'log σ(log odds)' }] },
  {
    id: 'logps', title: 'average log-prob of the responses', yTitle: 'log p per token', series: [
      { metric: M.logpsChosen, label: 'chosen' }, { metric: M.logpsRejected, label: 'rejected' }],
  },
  {
    id: 'mean_logps', title: 'mean log-prob per response token (any method)', yTitle: 'log p per token', series: [
      { metric: M.meanLogpChosen, label: 'chosen' }, { metric: M.meanLogpRejected, label: 'rejected' }],
  },
  { id: 'margins', title: 'reward margin  λ·(log p chosen − log p rejected)', yTitle: 'rewards/margins', series: [{ metric: M.rewardsMargins, label: 'margin' }] },
  { id: 'accuracies', title: 'preference accuracy (chosen more likely than rejected)', yTitle: 'rewards/accuracies', series: [{ metric: M.rewardsAccuracies, label: 'accuracy' }] },
  { id: 'learning_rate', title: 'learning rate (the schedule, warmup included)', yTitle: 'learning_rate', series: [{ metric: TRAINER_LOG.learningRate, label: 'learning rate' }] },
  { id: 'grad_norm', title: 'gradient norm before clipping (mean over the logged steps)', yTitle: 'grad_norm', series: [{ metric: TRAINER_LOG.gradNorm, label: 'grad norm' }] },
];

/** the split's colour, the same on every chart */
const SPLIT_COLOURS = { train: '#1f77b4', eval: '#ff7f0e' } as const;
type Split = keyof typeof SPLIT_COLOURS;

interface Point { step: number; value: number; split: Split; quantity: string }

function pointsOf(def: ChartDef, records: readonly MetricRecord[]): Point[] {
  const points: Point[] = [];
  for (const r of records) {
    for (const s of def.series) {
      for (const [key, split] of [[s.metric, 'train'], [`eval_${s.metric}`, 'eval']] as const) {
        const value = r[key];
        if (value !== undefined && Number.isFinite(value) && r['step'] !== undefined) {
          points.push({ step: r['step'], value, split, quantity: s.label });
        }
      }
    }
  }
  return points;
}

export function chartSpec(def: ChartDef, records: readonly MetricRecord[]): TopLevelSpec {
  const points = pointsOf(def, records);
  // the splits this chart has, each in its own colour (the legend lists no split without a line)
  const splits = (Object.keys(SPLIT_COLOURS) as Split[]).filter((k) => points.some((p) => p.split === k));
  const dash = def.series.length > 1
    ? { strokeDash: { field: 'quantity', type: 'nominal' as const, title: null, sort: def.series.map((s) => s.label) } }
    : {};
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: def.title,
    width: 420,
    height: 220,
    data: { values: points },
    mark: { type: 'line', point: { size: 18 } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: { field: 'value', type: 'quantitative', title: def.yTitle, scale: { zero: false } },
      // colours by name, not by order: held-out is orange even on a chart without training points
      color: { field: 'split', type: 'nominal', title: null, scale: { domain: splits, range: splits.map((k) => SPLIT_COLOURS[k]) } },
      // one line per split and quantity
      detail: { field: 'quantity', type: 'nominal' },
      ...dash,
    },
  };
}

/** One chart as a standalone SVG document. */
export async function renderChartSvg(def: ChartDef, records: readonly MetricRecord[]): Promise<string> {
  return renderSpecSvg(chartSpec(def, records));
}

/** Every chart that has data, in CHARTS order. */
export async function renderCharts(records: readonly MetricRecord[]): Promise<{ def: ChartDef; svg: string }[]> {
  const out: { def: ChartDef; svg: string }[] = [];
  for (const def of CHARTS) {
    if (pointsOf(def, records).length === 0) continue;
    out.push({ def, svg: await renderChartSvg(def, records) });
  }
  return out;
}

/** One line per series (e.g. per method) on one chart: `orpo compare`'s overlaid curves. */
export interface OverlaySeries {
  label: string;
  points: readonly { step: number; value: number }[];
}

export function overlaySpec(title: string, yTitle: string, series: readonly OverlaySeries[], xTitle = 'optimizer step'): TopLevelSpec {
  const values = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.value)).map((p) => ({ step: p.step, value: p.value, series: s.label })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 420,
    height: 240,
    data: { values },
    mark: { type: 'line', point: { size: 18 } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: xTitle },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, sort: series.map((s) => s.label) },
    },
  };
}

export async function renderSpecSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
