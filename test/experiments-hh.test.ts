// The HH-RLHF experiment (experiments/hh/run.ts) end to end in --quick mode on the real stories260K and HH data:
// the split, the domain SFT, both compares, the seen-pairs evaluation, the charts and RESULTS.md are well formed.
// Quick mode trains a few steps on a few pairs, so the paper's findings are not asserted (at that size they are
// noise); the test fails when the pipeline breaks. Skipped without ../shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { neutralMetrics, QUICK, sharedRoot, type Point, type Results, type RunCurves } from '../experiments/hh/run.js';
import { repoRoot, SHARED_MISSING, sharedDir } from './helpers/shared.js';

const shared = sharedDir() !== null && sharedRoot() !== null;

const NEUTRAL = ['chosen', 'rejected', 'margin', 'accuracy'] as const;

function checkPoints(what: string, points: readonly Point[], lastStep: number): void {
  assert.ok(points.length >= 2, `${what}: a curve (start and end at least), got ${points.length} points`);
  assert.equal(points[0]!.step, 0, `${what}: starts at step 0`);
  assert.equal(points[points.length - 1]!.step, lastStep, `${what}: ends at the last step`);
  for (let i = 1; i < points.length; i++) assert.ok(points[i]!.step > points[i - 1]!.step, `${what}: steps increase`);
  for (const p of points) {
    for (const k of NEUTRAL) assert.ok(Number.isFinite(p[k]), `${what} step ${p.step}: ${k} is finite (${p[k]})`);
    assert.ok(p.chosen < 0 && p.rejected < 0, `${what} step ${p.step}: log-probs are negative`);
    assert.ok(p.accuracy >= 0 && p.accuracy <= 1, `${what} step ${p.step}: accuracy in [0, 1]`);
    assert.ok(Math.abs(p.margin - (p.chosen - p.rejected)) < 1e-5, `${what} step ${p.step}: margin = chosen − rejected`);
  }
}

/** the series labels drawn as lines in a Vega SVG: one line-mark group per series, labelled in its paths */
function lineSeries(svg: string): string[] {
  const groups = svg.split('aria-roledescription="line mark container"').slice(1);
  return groups.map((g) => /series: ([^"]*)"/.exec(g)?.[1] ?? '(no label)');
}

test('hh experiment --quick: data split, domain SFT, (a) and (b) curves, charts and RESULTS.md', { skip: shared ? false : SHARED_MISSING, timeout: 180_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'orpo-hh-test-'));
  try {
    const started = performance.now();
    const printed = execFileSync(process.execPath, [join(repoRoot, 'dist', 'experiments', 'hh', 'run.js'), '--quick', '--out', out],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 170_000 });
    const seconds = (performance.now() - started) / 1000;
    assert.match(printed, /On the held-out pairs, under SFT/);
    assert.ok(seconds < 60, `--quick takes well under a minute (took ${seconds.toFixed(1)} s)`);

    const r = JSON.parse(readFileSync(join(out, 'results', 'results.json'), 'utf8')) as Results;
    assert.equal(r.quick, true);
    // the split: disjoint parts of the requested sizes (at least: a repeated opening stays whole)
    assert.ok(r.split.eval >= QUICK.evalPairs && r.split.train >= QUICK.trainPairs && r.split.domain >= QUICK.domainPairs!);
    assert.equal(r.split.domainRows, 2 * r.split.domain, 'each domain pair twice, chosen and rejected swapped');
    const lines = (f: string): { chosen: string; rejected: string }[] =>
      readFileSync(join(out, 'runs', 'data', f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    const evalRows = lines('eval.jsonl');
    const trainRows = lines('train.jsonl');
    const domainRows = lines('domain.jsonl');
    assert.equal(evalRows.length, r.split.eval);
    assert.equal(trainRows.length, r.split.train);
    const opening = (t: string): string => t.split('\n\nAssistant:')[0]!;
    const evalOpenings = new Set(evalRows.map((x) => opening(x.chosen)));
    assert.ok(trainRows.every((x) => !evalOpenings.has(opening(x.chosen))), 'no held-out opening in the preference part');
    assert.ok(domainRows.every((x) => !evalOpenings.has(opening(x.chosen))), 'no held-out opening in the domain part');
    assert.deepEqual(lines('seen.jsonl'), trainRows.slice(0, r.split.seen), 'seen pairs: the first preference pairs');

    // the data layer's view of the split files: every pair used, lengths within max_length
    assert.deepEqual(r.files.map((x) => x.file), ['domain.jsonl', 'train.jsonl', 'eval.jsonl']);
    for (const x of r.files) {
      assert.ok(x.used > 0 && x.used <= x.rows, `${x.file}: ${x.used} of ${x.rows} rows used`);
      assert.ok(x.promptTokens + Math.max(x.chosenTokens, x.rejectedTokens) <= QUICK.maxLength, `${x.file}: within max_length`);
    }
    assert.equal(r.files[2]!.used, r.split.eval, 'every held-out pair is evaluated');

    // the domain model: evaluated before and after
    for (const p of [r.domain.base, r.domain.adapted, r.domain.seenBase, r.domain.seenAdapted]) {
      for (const k of NEUTRAL) assert.ok(Number.isFinite(p[k]));
    }
    assert.notEqual(r.domain.adapted.chosen, r.domain.base.chosen, 'domain SFT changed the model');
    assert.equal(typeof r.domain.sampleAdapted, 'string');

    // (a) and (b): every run has both curves, from the same start
    assert.ok(r.a !== null && r.b !== null);
    const runs: RunCurves[] = [r.a.sft, r.a.orpo, ...r.b];
    const steps = r.settings.pref.maxSteps;
    for (const run of runs) {
      checkPoints(`${run.name} held-out`, run.heldOut, steps);
      checkPoints(`${run.name} seen`, run.seen, steps);
    }
    assert.deepEqual(r.b.map((x) => x.lambda), [0, ...QUICK.lambdas], '(b): SFT as λ 0, then every λ');
    assert.equal(r.b[0]!.method, 'sft');
    for (const run of runs) {
      assert.deepEqual(run.heldOut[0], r.a.sft.heldOut[0], `${run.name}: same held-out start as SFT`);
      assert.deepEqual(run.seen[0], r.a.sft.seen[0], `${run.name}: same seen start as SFT`);
    }
    // the start of preference training is the end of the domain SFT
    for (const k of NEUTRAL) {
      assert.ok(Math.abs(r.a.sft.heldOut[0]![k] - r.domain.adapted[k]) < 1e-6, `held-out ${k}: compare's start is the domain SFT's end`);
      assert.ok(Math.abs(r.a.sft.seen[0]![k] - r.domain.seenAdapted[k]) < 1e-12, `seen ${k}: the domain model's`);
    }
    const lambdaMax = r.b[r.b.length - 1]!;
    assert.notDeepEqual(lambdaMax.seen[lambdaMax.seen.length - 1], r.a.sft.seen[r.a.sft.seen.length - 1], 'λ changes the training');

    // the seen-pairs measure is compare's held-out measure: the domain model on the held-out pairs
    const again = await neutralMetrics(join(out, 'runs', 'domain'), join(out, 'runs', 'data', 'eval.jsonl'), r.settings, 1);
    for (const k of NEUTRAL) assert.ok(Math.abs(again[k] - r.domain.adapted[k]) < 1e-5, `${k}: ${again[k]} vs compare's ${r.domain.adapted[k]}`);

    // charts: one line per series
    const ids = ['a-heldout-logps', 'a-seen-logps', 'a-margin', 'b-heldout-rejected', 'b-heldout-margin', 'b-heldout-chosen', 'b-seen-rejected', 'b-seen-margin', 'b-seen-chosen'];
    assert.deepEqual(r.charts.map((c) => c.file).sort(), ids.map((id) => `results/${id}.svg`).sort());
    for (const c of r.charts) {
      const file = join(out, c.file);
      assert.ok(existsSync(file), c.file);
      const svg = readFileSync(file, 'utf8');
      assert.match(svg, /^<svg /);
      assert.deepEqual(lineSeries(svg), c.series, `${c.file}: a line per series`);
    }
    assert.equal(r.charts.find((c) => c.file.endsWith('a-heldout-logps.svg'))!.series.length, 4, '(a): chosen and rejected for SFT and ORPO');

    // RESULTS.md: the commands, the charts, the tables
    const md = readFileSync(join(out, 'RESULTS.md'), 'utf8');
    assert.match(md, /Quick run/);
    assert.match(md, /node dist\/src\/cli\/main\.js train --method sft --completion-only-loss false/);
    assert.match(md, /node dist\/src\/cli\/main\.js compare --methods sft,orpo --orpo-beta 1 /);
    for (const id of ids) assert.ok(md.includes(`(results/${id}.svg)`), `RESULTS.md shows ${id}`);
    assert.match(md, /\| SFT \| -\d\.\d{4} \|/);
    assert.ok(!/NaN|undefined/.test(md), 'no NaN or undefined in RESULTS.md');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
