// The baselines beside ORPO against the independent float64 PyTorch reference (../shared/fixtures/methods, spec in
// ../shared/fixtures/README.md): SFT, DPO (sigmoid) and SimPO loss, TRL metrics, every parameter gradient and the
// 5-step AdamW trajectory, on every available backend, both fixture models (F32 and BF16-sharded folders), and
// both forward layouts (shared prompt, TRL's two rows).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { golden, goldenMissing } from './helpers/shared.js';
import { assertRel, fixtureBackends } from './helpers/fixtures.js';
import { loadModel } from '../src/io/hf-model.js';
import { readSafetensorsHeader, readTensorF32 } from '../src/io/safetensors.js';
import { collatePairs, type PreferenceBatch } from '../src/data/collate.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import { objectiveStep, preferenceForwardBackward } from '../src/loss/preference.js';
import { createObjective } from '../src/loss/objectives/index.js';
import { modelReference } from '../src/loss/reference.js';
import type { Method } from '../src/loss/objective.js';


interface Expected {
  options: Record<string, unknown>;
  metrics: Record<string, number>;
  logps_chosen?: number[];
  logps_rejected?: number[];
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number;
    losses_before_each_step: number[]; grad_norms_before_clipping: number[]; loss_after_last_step: number };
}


/** the metrics within 1e-5 relative, counts and accuracies (exact fractions) within 1e-5 absolute */
function assertMetrics(got: Record<string, number>, want: Record<string, number>, what: string): void {
  for (const [name, value] of Object.entries(want)) {
    if (name === 'num_completion_tokens') continue;
    assert.ok(name in got, `${what}: metric ${name} missing`);
    if (Math.abs(value) < 1e-3) assert.ok(Math.abs(got[name]! - value) <= 1e-6, `${what}: ${name} ${got[name]} vs ${value}`);
    else assertRel(got[name]!, value, 1e-5, `${what}: ${name}`);
  }
}

async function expectedGrads(file: string): Promise<Map<string, Float32Array>> {
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, Float32Array>();
  for (const [name, info] of header.tensors) out.set(name, await readTensorF32(info));
  return out;
}

const METHOD_OPTIONS: Record<Exclude<Method, 'orpo'>, { beta?: number; simpoGamma?: number }> = {
  sft: {}, dpo: { beta: 0.1 }, simpo: { beta: 2.0, simpoGamma: 0.5 },
};

for (const kernels of fixtureBackends()) {
  for (const cs of ['llama', 'gpt2']) {
    for (const method of ['sft', 'dpo', 'simpo'] as const) {
      const needs = [golden(cs, 'model'), golden('methods', cs, `${method}.json`), method === 'dpo' ? golden('methods', cs, 'ref-model') : ''];
      test(`methods fixture ${cs}/${method} on the ${kernels.name} backend: loss, metrics, gradients, AdamW`, { skip: needs.includes(null) ? goldenMissing(`methods/${cs}/${method}`) : false }, async () => {
        const dir = golden(cs)!;
        const mdir = golden('methods', cs)!;
        const batch = JSON.parse(readFileSync(join(dir, 'batch.json'), 'utf8')) as PreferenceBatch;
        const expected = JSON.parse(readFileSync(join(mdir, `${method}.json`), 'utf8')) as Expected;
        const ref = await expectedGrads(join(mdir, `${method}.safetensors`));
        const refModel = method === 'dpo' ? await loadModel(join(mdir, 'ref-model'), { kernels }) : undefined;
        // the bf16 sharded folder only where the full set is (../shared)
        for (const folder of ['model', 'model-bf16-sharded'].filter((f) => golden(cs, f) !== null)) {
          const model = await loadModel(join(dir, folder), { kernels });
          for (const sharePrompt of [true, false]) {
            const what = `${folder}, sharePrompt ${sharePrompt}`;
            const r = await preferenceForwardBackward(model, batch, { method, ...METHOD_OPTIONS[method], refModel, sharePrompt });
            assertRel(r.loss, expected.metrics['loss']!, 1e-5, `loss (${what})`);
            assertMetrics(r.metrics as Record<string, number>, expected.metrics, what);
            assert.equal(r.grads.size, model.layout.length);
            for (const [name, g] of r.grads) {
              const gref = ref.get('grad.' + name);
              assert.ok(gref, `no reference gradient for ${name}`);
              let maxRef = 0;
              let maxErr = 0;
              for (let i = 0; i < g.length; i++) {
                maxRef = Math.max(maxRef, Math.abs(gref[i]));
                maxErr = Math.max(maxErr, Math.abs(g[i] - gref[i]));
              }
              assert.ok(maxErr <= 1e-4 * maxRef + 1e-6, `gradient ${name} (${what}): max error ${maxErr} > 1e-4 * ${maxRef} + 1e-6`);
            }
          }
        }

        // AdamW with clipping, 5 steps on the same batch; DPO's reference is the initial policy, frozen (a copy)
        const model = await loadModel(join(dir, 'model'), { kernels });
        const frozen = method === 'dpo' ? await loadModel(join(dir, 'model'), { kernels }) : null;
        const reference = frozen === null ? null : modelReference(frozen, { description: 'initial policy' });
        const objective = createObjective({ method, ...METHOD_OPTIONS[method] });
        const packed = collatePairs(batch.pairs, batch.pad_token_id);
        const a = expected.adamw;
        const opt = new AdamW(model.params.length, { lr: a.lr, beta1: a.betas[0], beta2: a.betas[1], eps: a.eps, weightDecay: a.weight_decay }, kernels);
        for (let s = 0; s < a.losses_before_each_step.length; s++) {
          model.zeroGrad();
          const r = await objectiveStep(model, packed, objective, { reference });
          assertRel(r.loss, a.losses_before_each_step[s]!, 1e-4, `AdamW loss before step ${s + 1}`);
          const norm = await clipGradNorm(model.grads, a.max_grad_norm, kernels);
          assertRel(norm, a.grad_norms_before_clipping[s]!, 1e-4, `grad norm before step ${s + 1}`);
          opt.update(model.params, model.grads);
        }
        model.zeroGrad();
        assertRel((await objectiveStep(model, packed, objective, { reference })).loss, a.loss_after_last_step, 1e-4, 'loss after the last AdamW step');
      });
    }
  }
}
