// The win-rate experiment (experiments/winrates/): the arithmetic judge, the seed pooling arithmetic, the
// learning-rate rule, and `run.js --quick` end to end (both comparisons through `orpo compare`; the stories one
// needs ../shared and is skipped without it). Quick mode trains a few steps, so who wins is not checked: only
// that every method, every pair's win rate and the neutral metrics come out well formed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import score, { expectedAnswer } from '../experiments/winrates/arith-judge.js';
import { clusteredMean, METHODS, overSeeds, pickLearningRate, MAX_CHOSEN_DROP, type SweepRow } from '../experiments/winrates/run.js';
import type { CompareResults } from '../src/compare/results.js';
import type { WinRate } from '../src/compare/win-rates.js';
import { repoRoot, SHARED_MISSING, sharedDir } from './helpers/shared.js';

test('arith judge: 1 exactly when the completion starts with the three-digit sum', () => {
  assert.equal(expectedAnswer('12+07='), '019');
  assert.equal(expectedAnswer('99+99='), '198');
  assert.equal(score('12+07=', '019'), 1);
  assert.equal(score('12+07=', '0190'), 1, 'starts with the sum');
  assert.equal(score('12+07=', '018'), 0, 'a near miss');
  assert.equal(score('12+07=', '19'), 0, 'not zero padded');
  assert.equal(score('12+07=', ' 019'), 0);
  assert.equal(score('12+07=', ''), 0);
  assert.equal(score('00+00=', '000'), 1);
  assert.throws(() => score('hello', '019'), /not of the form/);
});

test('pooling seeds: cluster-robust interval of a mean', () => {
  // one cluster per value: the ordinary standard error up to the g/(g-1) factor
  const v = [1, 0, 1, 1, 0, 0.5];
  const p = clusteredMean(v, v.map((_, i) => String(i)));
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const se = Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (v.length - 1) / v.length);
  assert.ok(Math.abs(p.mean - mean) < 1e-12);
  assert.ok(Math.abs((p.ci95[1] - p.mean) - 1.96 * se) < 1e-12, 'g/(g-1) with one value per cluster = the n-1 variance');
  assert.equal(p.clusters, 6);
  // the same outcomes duplicated within clusters: same mean, and the interval does not shrink as if independent
  const twice = clusteredMean([...v, ...v], [...v.map((_, i) => String(i)), ...v.map((_, i) => String(i))]);
  assert.ok(Math.abs(twice.mean - mean) < 1e-12);
  assert.ok(Math.abs((twice.ci95[1] - twice.mean) - (p.ci95[1] - p.mean)) < 1e-12);
  const clipped = clusteredMean([1, 1, 1, 0.5], ['a', 'b', 'c', 'd'], [0, 1]);
  assert.ok(clipped.ci95[1] <= 1);
  // over seeds: Student t with k - 1 degrees of freedom (3 seeds: 4.303)
  assert.equal(overSeeds([0.5]), null);
  const o = overSeeds([0.4, 0.5, 0.6])!;
  assert.ok(Math.abs(o.mean - 0.5) < 1e-12 && Math.abs((o.ci95[1] - 0.5) - 4.303 * 0.1 / Math.sqrt(3)) < 1e-9);
});

test('learning-rate rule: highest mean held-out accuracy among rates that keep the chosen log-prob', () => {
  const row = (learningRate: number, meanAccuracy: number, worstChosenDrop: number): SweepRow => ({
    learningRate, meanAccuracy, worstChosenDrop, eligible: worstChosenDrop <= MAX_CHOSEN_DROP, methods: {},
    start: { chosen: -2, rejected: -2.1, accuracy: 0.5, margin: 0.1 },
  });
  assert.equal(pickLearningRate([row(1e-4, 0.6, 0), row(1e-3, 0.7, 0.1), row(3e-3, 0.9, MAX_CHOSEN_DROP + 1)])?.learningRate, 1e-3);
  assert.equal(pickLearningRate([row(3e-3, 0.9, MAX_CHOSEN_DROP + 0.5)]), null);
});

const shared = sharedDir();

function checkComparison(dir: string, judgePrompts: number): void {
  const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as CompareResults;
  assert.deepEqual(r.methods, [...METHODS]);
  assert.deepEqual(r.runs.map((m) => m.name), [...METHODS]);
  for (const m of r.runs) {
    for (const k of ['eval_mean_logps/chosen', 'eval_mean_logps/rejected', 'eval_mean_logps/accuracy', 'eval_mean_logps/margin']) {
      assert.ok(Number.isFinite(m.final[k]), `${dir} ${m.name}: ${k} = ${m.final[k]}`);
    }
    assert.ok(m.final['eval_mean_logps/chosen']! < 0 && m.final['eval_mean_logps/accuracy']! >= 0 && m.final['eval_mean_logps/accuracy']! <= 1);
    assert.ok(m.steps > 0 && m.forward_tokens > 0 && m.peak_rss_mb > 0 && m.wall_seconds > 0, `${m.name}: cost recorded`);
  }
  assert.ok(r.runs.find((m) => m.name === 'dpo')!.reference_forward_tokens > 0, 'dpo runs a reference');
  assert.equal(r.runs.find((m) => m.name === 'orpo')!.reference_forward_tokens, 0, 'orpo runs none');
  const j = r.judge;
  assert.ok(j !== null, 'judged');
  assert.equal(j.kind, 'pointwise');
  assert.equal(j.prompts, judgePrompts);
  const contestants = ['base', ...METHODS];
  assert.deepEqual(j.contestants, contestants);
  for (const c of contestants) {
    const s = j.scores?.[c];
    assert.ok(s !== undefined && Number.isFinite(s.mean) && s.n === judgePrompts && s.ci95[0] <= s.mean && s.mean <= s.ci95[1], `${c}: score`);
  }
  // a win rate for every pair, each a well-formed estimate over the prompts
  assert.equal(j.winRates.length, (contestants.length * (contestants.length - 1)) / 2);
  for (const [i, a] of contestants.entries()) {
    for (const b of contestants.slice(i + 1)) {
      const w: WinRate | undefined = j.winRates.find((x) => (x.a === a && x.b === b) || (x.a === b && x.b === a));
      assert.ok(w !== undefined, `win rate ${a} vs ${b}`);
      assert.equal(w.wins + w.ties + w.losses, judgePrompts);
      assert.ok(w.winRate.mean >= 0 && w.winRate.mean <= 1 && w.winRate.ci95[0] <= w.winRate.mean && w.winRate.mean <= w.winRate.ci95[1]);
      assert.ok(Math.abs(w.winRate.mean - (w.wins + w.ties / 2) / judgePrompts) < 1e-9);
    }
  }
  for (const file of ['summary.md', 'report.html', 'charts/accuracy.svg', 'charts/chosen.svg']) assert.ok(existsSync(join(dir, file)), file);
  const summary = readFileSync(join(dir, 'summary.md'), 'utf8');
  assert.match(summary, /win rate of A \[95% CI\]/);
}

test('run.js --quick: both comparisons through orpo compare, every method and every pair well formed', { timeout: 180_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'winrates-test-'));
  try {
    const only = shared === null ? ['--only', 'arith'] : [];
    if (shared === null) console.log(`stories comparison ${SHARED_MISSING}`);
    const started = Date.now();
    const stdout = execFileSync(process.execPath, [join(repoRoot, 'dist', 'experiments', 'winrates', 'run.js'), '--quick', '--out', out, ...only],
      { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: shared === null ? process.env : { ...process.env, ORPO_SHARED_DIR: shared } });
    const seconds = (Date.now() - started) / 1000;
    const written = (JSON.parse(stdout.trim().split('\n').pop()!) as { written: Record<string, string[]> }).written;
    assert.deepEqual(Object.keys(written).sort(), shared === null ? ['arith'] : ['arith', 'stories']);
    checkComparison(written['arith']![0]!, 20);
    if (shared !== null) {
      const dir = written['stories']![0]!;
      checkComparison(dir, 20);
      // the fluency check of the stories completions: every contestant, finite, a log-prob
      const fl = JSON.parse(readFileSync(join(dir, 'fluency.json'), 'utf8')) as { meanLogprob: Record<string, { mean: number; n: number }> };
      assert.deepEqual(Object.keys(fl.meanLogprob), ['base', ...METHODS]);
      for (const [who, e] of Object.entries(fl.meanLogprob)) assert.ok(Number.isFinite(e.mean) && e.mean < 0 && e.n > 0, `${who}: fluency ${e.mean}`);
    }
    // quick mode writes nothing into the repository's results
    assert.ok(written['arith']![0]!.startsWith(out));
    console.log(`run.js --quick: ${seconds.toFixed(1)} s`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
