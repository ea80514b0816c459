// `orpo compare` end to end on a tiny model, as a user runs it: every method trained on the same split and steps,
// a judge module, results.json / summary.md / report.html, a rerun that reuses the finished runs, and clear errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDemoData, writeDemoModelFolder } from '../src/cli/demo.js';
import { arithmeticTask } from '../src/train/demo-task.js';
import type { CompareResults } from '../src/compare/results.js';
import { estimate, pairwiseOutcome, pointwiseOutcomes, winRate } from '../src/compare/win-rates.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'orpo-compare-'));
const modelDir = join(root, 'model');
let data: { train: string; eval: string };

after(() => rmSync(root, { recursive: true, force: true }));

before(async () => {
  await writeDemoModelFolder(modelDir, { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }, 4);
  data = await writeDemoData(join(root, 'data'), arithmeticTask(9, 40, 12));
  // the exact-sum judge: 1 when the completion starts with the right three digits
  writeFileSync(join(root, 'judge.mjs'), `export default function judge(prompt, completion) {
  const m = /(\\d\\d)\\+(\\d\\d)=$/.exec(prompt);
  if (!m) throw new Error('no sum in ' + JSON.stringify(prompt));
  return completion.startsWith(String(Number(m[1]) + Number(m[2])).padStart(3, '0')) ? 1 : 0;
}
`);
  writeFileSync(join(root, 'pairwise.mjs'), 'export default (prompt, a, b) => Math.sign(a.length - b.length);\n');
  writeFileSync(join(root, 'nothing.mjs'), 'export const x = 1;\n');
});

function orpo(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const compareArgs = (out: string, extra: string[] = [], methods = 'sft,orpo,dpo,simpo,sft+dpo', steps = '4'): string[] => [
  'compare', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out,
  '--methods', methods, '--max-steps', steps, '--learning-rate', '5e-3', '--per-device-train-batch-size', '4',
  '--threads', '1', '--max-new-tokens', '4', ...extra,
];

test('win rates: outcomes, ties, position-bias cancelling, intervals', () => {
  assert.deepEqual(pointwiseOutcomes([1, 0, 2], [0, 0, 3]), [1, 0.5, 0]);
  assert.equal(pairwiseOutcome(1, -1), 1);
  assert.equal(pairwiseOutcome(1, 1), 0.5); // a judge that always prefers the first position says nothing
  const w = winRate('a', 'b', [1, 1, 0.5, 0]);
  assert.deepEqual([w.wins, w.ties, w.losses], [2, 1, 1]);
  assert.equal(w.winRate.mean, 0.625);
  const e = estimate([0, 1, 0, 1], [0, 1]);
  assert.ok(e.ci95[0] < 0.5 && e.ci95[1] > 0.5 && e.ci95[0] >= 0 && e.ci95[1] <= 1);
  assert.deepEqual(estimate([2, 2, 2]).ci95, [2, 2]);
});

test('orpo compare trains every method on the same split and steps, judges them and writes the report', () => {
  const out = join(root, 'cmp');
  const r = orpo(compareArgs(out, ['--judge', join(root, 'judge.mjs')]));
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CompareResults;
  assert.deepEqual(res.methods, ['sft', 'orpo', 'dpo', 'simpo', 'sft+dpo']);
  assert.equal(res.eval_pairs, 12);
  for (const run of res.runs) {
    assert.equal(run.steps, run.name === 'sft+dpo' ? 8 : 4, run.name);
    for (const k of ['eval_mean_logps/chosen', 'eval_mean_logps/rejected', 'eval_mean_logps/accuracy', 'eval_mean_logps/margin']) {
      assert.ok(Number.isFinite(run.final[k]), `${run.name}: ${k}`);
    }
    // every method starts from the same model on the same held-out pairs
    assert.equal(run.curve[0]!['eval_mean_logps/chosen'], res.runs[0]!.curve[0]!['eval_mean_logps/chosen']);
    assert.ok(run.curve.length >= 3, `${run.name}: held-out curve over the steps`);
    assert.ok(run.wall_seconds > 0 && run.peak_rss_mb > 0 && run.forward_tokens > 0);
    assert.equal(run.reference_forward_tokens > 0, run.name === 'dpo' || run.name === 'sft+dpo', `${run.name}: reference tokens`);
  }
  assert.deepEqual(res.runs.find((x) => x.name === 'sft+dpo')!.stages, [join(out, 'sft'), join(out, 'sft+dpo')]);
  assert.equal(res.runs.find((x) => x.name === 'orpo')!.options['beta'], 0.1);
  assert.equal(res.runs.find((x) => x.name === 'simpo')!.options['beta'], 2);
  // the judge: every contestant, every pair
  const j = res.judge!;
  assert.equal(j.kind, 'pointwise');
  assert.equal(j.prompts, 12);
  assert.deepEqual(j.contestants, ['base', 'sft', 'orpo', 'dpo', 'simpo', 'sft+dpo']);
  assert.equal(j.winRates.length, 15);
  for (const w of j.winRates) assert.equal(w.wins + w.ties + w.losses, 12);
  const gens = readFileSync(join(out, 'generations', 'orpo.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; completion: string; score: number });
  assert.equal(gens.length, 12);
  assert.match(gens[0]!.prompt, /^\d\d\+\d\d=$/);
  // the page: self-contained, one table row per method, each chart a line per method
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.doesNotMatch(html, /<script|<link|src="http|@import/);
  for (const id of ['chosen', 'rejected', 'margin', 'accuracy']) {
    const fig = new RegExp(`<figure id="${id}"><svg[\\s\\S]*?</svg></figure>`).exec(html);
    assert.ok(fig, `report.html lacks the ${id} chart`);
    for (const m of res.methods) assert.ok(fig[0].includes(`>${m.replace('+', '+')}<`), `${id} chart has no ${m} line in its legend`);
  }
  for (const m of res.methods) assert.match(html, new RegExp(`<tr><td>${m.replace('+', '\\+')}</td>`));
  assert.match(readFileSync(join(out, 'summary.md'), 'utf8'), /\| orpo \| beta 0\.1, sft_scope full \| 4 \|/);

  // a rerun with the same options reuses every finished run
  const again = orpo(compareArgs(out, ['--judge', join(root, 'judge.mjs')]));
  assert.equal(again.code, 0, again.stderr);
  assert.equal((again.stderr.match(/reusing the finished run/g) ?? []).length, 5);
});

test('orpo compare: a pairwise judge is asked both ways; bad methods and judges are named', () => {
  const out = join(root, 'pair');
  const r = orpo(compareArgs(out, ['--judge', join(root, 'pairwise.mjs'), '--stop-token-ids', '1,3'], 'orpo,simpo', '2'));
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CompareResults;
  assert.equal(res.judge!.kind, 'pairwise');
  assert.equal(res.judge!.winRates.length, 3);
  assert.equal(res.judge!.scores, undefined);
  assert.deepEqual(res.judge!.sampling.stop_token_ids, [1, 3]);
  const bad = orpo(compareArgs(join(root, 'bad'), [], 'orpo,ppo'));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown method 'ppo' \(choose from orpo, sft, dpo, simpo, sft\+dpo\)/);
  const noJudge = orpo(compareArgs(join(root, 'nojudge'), ['--judge', join(root, 'nothing.mjs')], 'orpo', '1'));
  assert.equal(noJudge.code, 1);
  assert.match(noJudge.stderr, /nothing\.mjs: exports no function/);
  assert.ok(!existsSync(join(root, 'bad', 'orpo')), 'nothing trains when an option is bad');
  assert.ok(!existsSync(join(root, 'nojudge', 'orpo')), 'nothing trains when the judge is unusable');
});
