// The training-step benchmark's code path on a micro config, so the bench cannot rot between runs: our step in
// process, the FLOP formula against a hand count, and (when PyTorch is installed) the twin against our first loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../src/model/create.js';
import {
  MICRO_CONFIG, bf16Table, measureOurs, runTrainStepBench, speedTable, stepCost, twinUnavailable,
} from '../bench/train-step.js';

test('bench: micro ORPO steps run, time and account their memory', async () => {
  const r = await measureOurs({ config: MICRO_CONFIG.name, threads: 1, warmup: 1, steps: 2, profile: true });
  assert.equal(r.stepMs.length, 2);
  assert.equal(r.tokens, 2 * MICRO_CONFIG.pairs * MICRO_CONFIG.seq);
  assert.ok(Math.abs(r.tokensPerSec - r.tokens / (r.medianStepMs / 1000)) < 1e-6 * r.tokensPerSec);
  assert.equal(r.stepCpuMs.length, 2);
  assert.ok(r.stepCpuMs.every((ms) => ms > 0), 'each step used CPU time');
  // weights ~N(0, 0.02): logits are ~0, so the NLL is ~ln V and log_odds ~0, i.e. loss ~ ln V + beta ln 2
  const V = MICRO_CONFIG.hf.vocab_size as number;
  assert.ok(Math.abs(r.firstLoss - (Math.log(V) + 0.1 * Math.LN2)) < 0.05, `first loss ${r.firstLoss}`);
  assert.equal(r.analytic.totalBytes, 16 * (r.analytic.paramBytes / 4) + r.analytic.activationBytes);
  assert.ok(r.analytic.activationBytes > 0);
  assert.ok(r.peakRssBytes >= r.baselineRssBytes * 0.5);
  // the profiled step saw every kernel family of a Llama step
  const seen = new Set(r.profile!.kernels.map((k) => k.kernel));
  for (const k of ['matmulForward', 'matmulBackward', 'attentionForward', 'attentionBackward', 'rmsnormForward', 'adamwStep']) {
    assert.ok(seen.has(k), `profile lacks ${k}`);
  }
});

test('bench: model FLOPs = 6 x matmul params x tokens + 6 B NH T^2 HD per layer', () => {
  const model = createModel(MICRO_CONFIG.hf, { seed: 1 });
  const c = model.config;
  const cost = stepCost(MICRO_CONFIG, model);
  const C = c.hiddenSize;
  const Q = c.numHeads * c.headDim;
  const KV = c.numKvHeads * c.headDim;
  const perLayer = C * Q + 2 * C * KV + Q * C + 3 * C * c.intermediateSize;
  assert.equal(cost.matmulParams, c.numLayers * perLayer + c.vocabSize * C);
  const B = 2 * MICRO_CONFIG.pairs;
  const T = MICRO_CONFIG.seq;
  assert.equal(cost.flops, 6 * cost.matmulParams * B * T + c.numLayers * 6 * B * c.numHeads * T * T * c.headDim);
});

const noTorch = twinUnavailable();
test('bench: the PyTorch twin starts from our loss and gradient norm', { skip: noTorch ? `skipped: ${noTorch}` : false }, async () => {
  const report = await runTrainStepBench({
    configs: [MICRO_CONFIG], threads: [1], warmup: 1, steps: 1, peakFlops: () => null, peakSource: null, log: () => {},
  });
  const row = report.rows[0];
  assert.ok(row.torch, 'the twin ran');
  assert.ok(row.lossRelDiff! < 1e-5, `first-step loss differs: ours ${row.ours.firstLoss}, torch ${row.torch!.firstLoss}`);
  assert.ok(row.gradNormRelDiff! < 1e-4, `grad norm differs: ours ${row.ours.firstGradNorm}, torch ${row.torch!.firstGradNorm}`);
  // our two layouts: the shared prompt and TRL's two rows start from the same loss and gradient norm
  assert.ok(Math.abs(row.oursTwoRows.firstLoss - row.ours.firstLoss) < 1e-6 * row.ours.firstLoss);
  assert.ok(Math.abs(row.oursTwoRows.firstGradNorm - row.ours.firstGradNorm) < 1e-5 * row.ours.firstGradNorm);
  assert.ok(row.ratioTwoRows !== null && row.mfuOurs === null);
  // bf16 on both sides: the same loss to bfloat16 rounding
  assert.ok(row.torchBf16, 'the twin ran under autocast');
  assert.ok(Math.abs(row.oursBf16.firstLoss - row.torchBf16!.firstLoss) < 1e-2 * row.torchBf16!.firstLoss);
  assert.match(bf16Table(report), /\| micro \| 1 \|/);
  assert.match(speedTable(report), /\| micro \| 1 \|/);
});
