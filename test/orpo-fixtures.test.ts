// The golden fixtures: ORPO loss, TRL metrics, every parameter gradient, logits and a 5-step AdamW trajectory
// from an independent float64 PyTorch reference (../shared/fixtures/README.md), on every available backend and
// on both the F32 folder and the BF16 sharded folder of each case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { golden, goldenMissing } from './helpers/shared.js';
import { assertRel, fixtureBackends } from './helpers/fixtures.js';
import { loadModel } from '../src/io/hf-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../src/io/safetensors.js';
import { orpoForwardBackward, orpoStep } from '../src/loss/orpo.js';
import { collatePairs, type PreferenceBatch } from '../src/data/collate.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import { oddsRatio } from '../src/loss/odds-ratio.js';


interface Expected {
  metrics: Record<string, number>;
  logps_chosen: number[];
  logps_rejected: number[];
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number;
    losses_before_each_step: number[]; grad_norms_before_clipping: number[]; loss_after_last_step: number };
}


async function expectedTensors(dir: string): Promise<Map<string, Float32Array>> {
  const header = await readSafetensorsHeader(join(dir, 'expected.safetensors'));
  const out = new Map<string, Float32Array>();
  for (const [name, info] of header.tensors) out.set(name, await readTensorF32(info));
  return out;
}

for (const kernels of fixtureBackends()) {
  for (const cs of ['llama', 'gpt2']) {
    for (const folder of ['model', 'model-bf16-sharded']) {
      test(`fixture ${cs}/${folder} on the ${kernels.name} backend: loss, metrics, gradients, logits, AdamW`, { skip: golden(cs, folder) ? false : goldenMissing(`${cs}/${folder}`) }, async () => {
        const dir = golden(cs)!;
        const batch = JSON.parse(readFileSync(join(dir, 'batch.json'), 'utf8')) as PreferenceBatch & { beta: number; sft_scope: 'full' | 'response' };
        const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
        const ref = await expectedTensors(dir);
        const model = await loadModel(join(dir, folder), { kernels });

        // the shared-prompt rows (the default) and TRL's two rows per pair
        for (const sharePrompt of [true, false]) {
          const { loss, metrics, grads } = await orpoForwardBackward(model, batch, { beta: batch.beta, sftScope: batch.sft_scope, sharePrompt });
          assertRel(loss, expected.metrics.loss, 1e-5, `loss (sharePrompt ${sharePrompt})`);
          for (const [name, value] of Object.entries(expected.metrics)) {
            assert.ok(name in metrics, `metric ${name} missing`);
            assertRel((metrics as Record<string, number>)[name]!, value, 1e-5, `metric ${name} (sharePrompt ${sharePrompt})`);
          }
          assert.equal(grads.size, model.layout.length);
          for (const [name, g] of grads) {
            const gref = ref.get('grad.' + name);
            assert.ok(gref, `no reference gradient for ${name}`);
            assert.equal(g.length, gref.length, `${name} size`);
            let maxRef = 0;
            let maxErr = 0;
            for (let i = 0; i < g.length; i++) {
              maxRef = Math.max(maxRef, Math.abs(gref[i]));
              maxErr = Math.max(maxErr, Math.abs(g[i] - gref[i]));
            }
            assert.ok(maxErr <= 1e-4 * maxRef + 1e-6, `gradient ${name} (sharePrompt ${sharePrompt}): max error ${maxErr} > 1e-4 * ${maxRef} + 1e-6`);
          }
        }

        // logits of the first chosen row, through the lm_head
        const packed = collatePairs(batch.pairs, batch.pad_token_id);
        const { hidden } = model.forward(packed.ids, packed.rows, packed.T);
        const len = packed.lengths[0];
        const V = model.config.vocabSize;
        const logits = new Float32Array(len * V);
        model.headLogits(logits, hidden.subarray(0, len * model.config.hiddenSize), len);
        const lref = ref.get('logits_row0')!;
        let lmax = 0;
        let lerr = 0;
        for (let i = 0; i < logits.length; i++) {
          lmax = Math.max(lmax, Math.abs(lref[i]));
          lerr = Math.max(lerr, Math.abs(logits[i] - lref[i]));
        }
        assert.ok(lerr <= 1e-4 * lmax + 1e-6, `logits_row0: max error ${lerr}`);

        // AdamW with clipping, 5 steps on the same batch
        const a = expected.adamw;
        const opt = new AdamW(model.params.length, { lr: a.lr, beta1: a.betas[0], beta2: a.betas[1], eps: a.eps, weightDecay: a.weight_decay }, kernels);
        const opts = { beta: batch.beta, sftScope: batch.sft_scope };
        for (let s = 0; s < a.losses_before_each_step.length; s++) {
          model.zeroGrad();
          const r = await orpoStep(model, packed, opts);
          assertRel(r.loss, a.losses_before_each_step[s], 1e-4, `AdamW loss before step ${s + 1}`);
          const norm = await clipGradNorm(model.grads, a.max_grad_norm, kernels);
          assertRel(norm, a.grad_norms_before_clipping[s], 1e-4, `grad norm before step ${s + 1}`);
          opt.update(model.params, model.grads);
        }
        model.zeroGrad();
        assertRel((await orpoStep(model, packed, opts)).loss, a.loss_after_last_step, 1e-4, 'loss after the last AdamW step');
      });
    }
  }
}

test('fixture loss-only: odds-ratio term and its gradient on both sides of -ln 2', () => {
  const e = JSON.parse(readFileSync(golden('loss-only', 'expected.json')!, 'utf8')) as {
    beta: number; logps_chosen: number[]; logps_rejected: number[]; log_odds: number[]; log_sigmoid: number[];
    odds_ratio_loss: number; d_logps_chosen: number[]; d_logps_rejected: number[] };
  const n = e.logps_chosen.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const o = oddsRatio(e.logps_chosen[i], e.logps_rejected[i]);
    assertRel(o.logOdds + 1e-300, e.log_odds[i] + 1e-300, 1e-9, `log_odds[${i}]`);
    assertRel(o.logSigmoid, e.log_sigmoid[i], 1e-9, `log_sigmoid[${i}]`);
    // d(-beta * mean(logsigmoid)) / d lc = -beta / n * dLc
    assertRel((-e.beta / n) * o.dLc, e.d_logps_chosen[i], 1e-7, `d_logps_chosen[${i}]`);
    assertRel((-e.beta / n) * o.dLr, e.d_logps_rejected[i], 1e-7, `d_logps_rejected[${i}]`);
    sum += o.logSigmoid;
  }
  assertRel((-e.beta * sum) / n, e.odds_ratio_loss, 1e-12, 'odds_ratio_loss');
});
