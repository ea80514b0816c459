// The cost experiment (experiments/cost/run.ts) end to end in --quick mode on the real stories260K and HH-RLHF batches:
// the forward-pass accounting that is the paper's §7.3 claim (ORPO: one policy forward, no reference; DPO on the fly:
// one + one; DPO precomputed: one + none after its pass; DPO under LoRA: the reference is the policy itself, no second
// copy of the weights) and a well-formed results file. Timings and RSS are only checked to be there: the counts and
// which object holds the reference's weights are deterministic, the clocks are not. Skipped without ../shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_NAMES, type ConfigName, type Results, type Row } from '../experiments/cost/run.js';
import { repoRoot, SHARED_MISSING, sharedDir } from './helpers/shared.js';

const shared = sharedDir();

test('cost experiment --quick: forwards per step, reference weights and a well-formed results file', { skip: shared === null ? SHARED_MISSING : false, timeout: 300_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'orpo-cost-test-'));
  try {
    const t0 = performance.now();
    execFileSync(process.execPath, [join(repoRoot, 'dist', 'experiments', 'cost', 'run.js'), '--quick', '--out', out],
      { env: { ...process.env, ORPO_SHARED_DIR: shared! }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const seconds = (performance.now() - t0) / 1000;
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;

    // the file: machine, settings, a baseline per thread count, one table of every configuration
    assert.equal(res.experiment, 'cost');
    assert.equal(res.quick, true);
    assert.ok(res.machine.cores >= 1 && res.machine.node === process.version && /^\d{4}-\d\d-\d\d$/.test(res.machine.date), JSON.stringify(res.machine));
    assert.ok(res.machine.line.includes(res.machine.cpu));
    const { warmup, steps } = res.settings;
    assert.ok(warmup >= 1 && steps >= 2, 'at least two timed steps, so "per step" is checked on more than one');
    assert.ok(res.settings.maxLength >= 128 && res.settings.maxPromptLength < res.settings.maxLength);
    assert.equal(res.settings.pairsPerBatch, 4);
    assert.ok(res.settings.batches.promptFraction > 0.5 && res.settings.batches.promptFraction < 0.9, 'HH-RLHF-shaped: prompts most of a pair');
    assert.deepEqual(res.baselines.map((b) => b.threads), res.settings.threads);
    for (const b of res.baselines) assert.ok(b.peakRssBytes > 10 * 2 ** 20, 'an idle Node process holds some tens of MiB');
    assert.ok(res.models.length >= 1);
    const m = res.models.find((x) => x.name === 'stories260K')!;
    assert.ok(m, 'the stories260K table');
    assert.deepEqual(m.rows.map((r) => r.config), [...CONFIG_NAMES]);
    const row = (c: ConfigName): Row => m.rows.find((r) => r.config === c)!;
    const baseline = res.baselines.find((b) => b.threads === m.threads)!.peakRssBytes;
    for (const r of m.rows) {
      assert.equal(r.backend, 'native', `${r.config}: the native backend`);
      for (const xs of [r.policyForwards, r.policyBackwards, r.referenceForwards, r.policyTokens, r.referenceTokens, r.stepMs, r.stepCpuMs]) {
        assert.equal(xs.length, steps, `${r.config}: one entry per timed step`);
      }
      assert.ok(r.stepMs.every((x) => x > 0 && Number.isFinite(x)) && r.medianStepMs > 0 && r.medianStepCpuMs > 0, `${r.config}: step times`);
      assert.ok(r.policyTokens.every((x) => x > 0), `${r.config}: tokens`);
      assert.ok(Number.isFinite(r.firstLoss), `${r.config}: a finite loss`);
      assert.ok(r.peakRssBytes > 0 && r.aboveBaselineBytes === r.peakRssBytes - baseline, `${r.config}: peak RSS and its excess over the idle child`);
      assert.ok(Number.isFinite(r.stepRelative) && Number.isFinite(r.aboveBaselineRelative), `${r.config}: ratios`);
      // every step: one policy forward and one backward (per micro-batch: one micro-batch per step here)
      assert.ok(r.policyForwards.every((x) => x === 1), `${r.config}: one policy forward per step, got ${r.policyForwards}`);
      assert.ok(r.policyBackwards.every((x) => x === 1), `${r.config}: one policy backward per step, got ${r.policyBackwards}`);
      assert.equal(r.policyForwardsPerStep, 1);
    }

    // ORPO (and SFT, SimPO): no reference at all
    for (const c of ['orpo', 'sft', 'simpo', 'orpo-lora'] as const) {
      const r = row(c);
      assert.ok(r.referenceForwards.every((x) => x === 0) && r.referenceTokens.every((x) => x === 0), `${c}: no reference forwards`);
      assert.equal(r.referenceForwardsPerStep, 0);
      assert.equal(r.copyForwards, 0);
      assert.equal(r.referenceWeightBytes, 0);
      assert.equal(r.precompute, null);
    }
    // the same batches: every method that trains on both rows runs exactly ORPO's tokens, SFT the chosen rows only
    const orpo = row('orpo');
    for (const c of ['simpo', 'dpo', 'dpo-precomputed', 'orpo-lora', 'dpo-lora'] as const) assert.deepEqual(row(c).policyTokens, orpo.policyTokens, c);
    assert.ok(row('sft').policyTokens.every((x, i) => x < orpo.policyTokens[i]!), 'SFT runs the chosen rows only');

    // DPO, reference on the fly: one policy + one reference forward per step, over the same tokens, on a separate copy
    const dpo = row('dpo');
    assert.ok(dpo.referenceForwards.every((x) => x === 1), `dpo: one reference forward per step, got ${dpo.referenceForwards}`);
    assert.equal(dpo.referenceForwardsPerStep, 1);
    assert.deepEqual(dpo.referenceTokens, dpo.policyTokens);
    assert.equal(dpo.copyForwards, warmup + steps, 'every reference forward ran on the frozen copy');
    assert.equal(dpo.referenceOnPolicyObject, false);
    assert.equal(dpo.referenceWeightBytes, 4 * dpo.params, 'the frozen copy holds a second float32 copy of every weight');
    // loaded as `orpo train` loads it (gradient checkpointing: it never runs backward): its arena keeps the layer inputs
    // and one shared layer slot, far less than the policy's every-layer activations
    assert.ok(dpo.copyArenaBytes > 0 && dpo.copyArenaBytes < dpo.policyArenaBytes, `dpo: the copy's arena ${dpo.copyArenaBytes} B, the policy's ${dpo.policyArenaBytes} B`);
    assert.ok(dpo.copyActivationBytes >= dpo.copyArenaBytes);
    for (const r of m.rows) if (r.config !== 'dpo') assert.equal(r.copyArenaBytes, 0, `${r.config}: no copy`);

    // DPO, precomputed: one pass before training (one forward per batch of the epoch), then no reference forward
    const pre = row('dpo-precomputed');
    assert.ok(pre.referenceForwards.every((x) => x === 0), `dpo-precomputed: no reference forward in a step, got ${pre.referenceForwards}`);
    assert.equal(pre.referenceForwardsPerStep, 0);
    assert.ok(pre.precompute !== null);
    assert.equal(pre.precompute.batches, warmup + steps);
    assert.equal(pre.precompute.forwards, warmup + steps, 'one reference forward per batch in the pass');
    assert.equal(pre.precompute.batchMs.length, warmup + steps);
    assert.ok(pre.precompute.ms > 0 && pre.precompute.amortisedMsPerStep > 0);
    const epochTokens = orpo.policyTokens.reduce((a, b) => a + b, 0);
    assert.ok(pre.precompute.tokens > epochTokens, 'the pass ran every batch of the epoch, warm-up ones included');
    assert.equal(pre.referenceWeightBytes, 0, 'no second copy: the initial policy computes the pass');
    assert.equal(pre.copyForwards, 0);

    // DPO under LoRA: the reference is the policy object itself with its adapters off - no second copy of the weights
    const lora = row('dpo-lora');
    assert.ok(lora.referenceForwards.every((x) => x === 1), `dpo-lora: one reference forward per step, got ${lora.referenceForwards}`);
    assert.deepEqual(lora.referenceTokens, lora.policyTokens);
    assert.equal(lora.referenceOnPolicyObject, true, 'every reference forward ran on the policy\'s own model object');
    assert.equal(lora.copyForwards, 0);
    assert.equal(lora.referenceWeightBytes, 0);
    assert.ok(lora.trainableParams > 0 && lora.trainableParams < lora.params, 'LoRA trains the adapters only');
    assert.equal(row('orpo-lora').trainableParams, lora.trainableParams);
    assert.equal(orpo.trainableParams, orpo.params);

    // RESULTS.md: the machine line, the table and the paragraph
    const md = readFileSync(join(out, 'RESULTS.md'), 'utf8');
    assert.ok(md.includes(`Machine: ${res.machine.line}`), 'machine line');
    assert.ok(md.includes('## stories260K'), 'a table per model');
    assert.match(md, /\| ORPO \| 1 \+ 0 \|/);
    assert.match(md, /\| DPO, reference on the fly \(frozen copy\) \| 1 \+ 1 \|/);
    assert.match(md, /\| DPO, reference log-probs precomputed \| 1 \+ 0 \|/);
    assert.ok(md.includes('## What the numbers show'));
    // the speed requirement on --quick, generous for a busy machine
    assert.ok(seconds < 120, `--quick took ${seconds.toFixed(1)} s`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
