// The report's charts: every chart draws training in one colour and held-out data in another, the same on every
// chart (a reader learns them once); two quantities on one chart differ by dash; the schedule and the gradient
// norm have charts of their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARTS, renderCharts, type MetricRecord } from '../src/report/charts.js';

const records: MetricRecord[] = [];
for (let step = 0; step <= 20; step += 5) {
  if (step > 0) {
    records.push({ step, loss: 2 / step, 'logps/chosen': -1 / step, 'logps/rejected': -2 - step / 10, learning_rate: 1e-4 * (1 - step / 20), grad_norm: 3 / step });
  }
  records.push({ step, eval_loss: 2.5 / (step + 1), 'eval_logps/chosen': -1.5, 'eval_logps/rejected': -2.5 });
}

/** stroke colours of the drawn lines (paths with a stroke and no fill) */
const lineColours = (svg: string): Set<string> =>
  new Set([...svg.matchAll(/<path[^>]*stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]!));

test('training is blue and held-out orange on every chart; chosen and rejected differ by dash', async () => {
  const charts = new Map((await renderCharts(records)).map((c) => [c.def.id, c.svg]));
  assert.deepEqual([...charts.keys()], ['loss', 'logps', 'learning_rate', 'grad_norm']);
  for (const id of ['loss', 'logps']) assert.deepEqual([...lineColours(charts.get(id)!)].sort(), ['#1f77b4', '#ff7f0e'], id);
  // only training data: still blue, not the palette's first colour by accident of order
  for (const id of ['learning_rate', 'grad_norm']) assert.deepEqual([...lineColours(charts.get(id)!)], ['#1f77b4'], id);
  // eval alone (a chart whose first series is held-out) is orange
  const evalOnly = await renderCharts(records.filter((r) => 'eval_loss' in r));
  assert.deepEqual([...lineColours(evalOnly.find((c) => c.def.id === 'loss')!.svg)], ['#ff7f0e']);
  assert.match(charts.get('logps')!, /stroke-dasharray/);
  assert.doesNotMatch(charts.get('loss')!, /<path[^>]*stroke-dasharray="[0-9]/);
  assert.ok(CHARTS.some((c) => c.id === 'learning_rate') && CHARTS.some((c) => c.id === 'grad_norm'));
});
