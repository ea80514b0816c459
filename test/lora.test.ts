// LoRA adapters: gradients of A and B against float64 central finite differences of the whole ORPO loss (with
// and without dropout), against the un-checkpointed unfused reference, on every backend; the frozen base gets
// no gradient; zero-initialised B leaves the model unchanged; dropout is seeded, reproducible and eval-free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../src/backend/js/kernels.js';
import { availableBackends, getKernels } from '../src/backend/index.js';
import { createModel } from '../src/model/create.js';
import type { DecoderBase } from '../src/model/base.js';
import { collatePairs, type PackedBatch, type TokenPair } from '../src/data/collate.js';
import { orpoEvaluate, orpoStep } from '../src/loss/orpo.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { attachLora, type LoraAdapters } from '../src/lora/adapters.js';
import { selectLoraTargets } from '../src/lora/config.js';
import { Rng } from '../src/tensor/rng.js';

const llama = {
  model_type: 'qwen2', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true, initializer_range: 0.2,
};
const gpt2 = { model_type: 'gpt2', vocab_size: 37, n_embd: 12, n_layer: 2, n_head: 3, n_positions: 32, initializer_range: 0.2 };

const CASES = [
  { name: 'qwen2 (GQA, q/k/v biases), all seven projections', raw: llama, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  { name: 'qwen3 (q/k norm), q_proj + v_proj', raw: { ...llama, model_type: 'qwen3', head_dim: 8 }, targets: ['q_proj', 'v_proj'] },
  { name: 'gpt2 (Conv1D) c_attn, c_proj, c_fc', raw: gpt2, targets: ['c_attn', 'c_proj', 'c_fc'] },
];

function randomPairs(rng: Rng, V: number, n: number): TokenPair[] {
  const seq = (len: number) => Array.from({ length: len }, () => 1 + rng.int(V - 1));
  return Array.from({ length: n }, () => ({ prompt: seq(2 + rng.int(4)), chosen: seq(1 + rng.int(5)), rejected: seq(1 + rng.int(5)) }));
}

/** B starts at zero (PEFT): give it values so that both factors' gradients are exercised */
function randomizeB(adapters: LoraAdapters, rng: Rng): void {
  for (const l of adapters.layers) {
    const b = adapters.B(l.module);
    for (let i = 0; i < b.length; i++) b[i] = 0.3 * rng.normal();
  }
}

function setup(raw: Record<string, unknown>, targets: string[], dropout: number, kernels = jsKernels, precision: 'float32' | 'float64' = 'float64') {
  const model = createModel(raw, { seed: 3, kernels, precision });
  const adapters = attachLora(model, { r: 3, alpha: 5, dropout, targetModules: targets }, { seed: 11 });
  randomizeB(adapters, new Rng(5));
  const batch = collatePairs(randomPairs(new Rng(7), model.config.vocabSize, 3), 0);
  return { model, adapters, batch };
}

async function loraGrads(model: DecoderBase, adapters: LoraAdapters, batch: PackedBatch, opts: Parameters<typeof orpoStep>[2]): Promise<Float64Array> {
  const steps = adapters.getDropoutSteps();
  adapters.zeroGrad();
  await orpoStep(model, batch, opts);
  adapters.setDropoutSteps(steps); // the same masks again for whoever evaluates next
  return Float64Array.from(adapters.grads);
}

for (const c of CASES) {
  for (const dropout of [0, 0.3]) {
    test(`${c.name}, dropout ${dropout}: float64 LoRA gradients equal finite differences; the base gets none`, async () => {
      const { model, adapters, batch } = setup(c.raw, c.targets, dropout);
      adapters.training = true;
      const opts = { beta: 0.5, sftScope: 'full' as const };
      model.zeroGrad();
      const analytic = await loraGrads(model, adapters, batch, opts);
      assert.ok(model.grads.every((g) => g === 0), 'a frozen base must receive no gradient');
      const rng = new Rng(9);
      const h = 1e-5;
      let checked = 0;
      for (const l of adapters.layers) {
        for (const [factor, view] of [['A', adapters.A(l.module)], ['B', adapters.B(l.module)]] as const) {
          const base = factor === 'A' ? l.aOffset : l.bOffset;
          for (let j = 0; j < 3; j++) {
            const i = rng.int(view.length);
            const orig = view[i]!;
            view[i] = orig + h;
            const lp = (await orpoEvaluate(model, batch, opts)).loss;
            view[i] = orig - h;
            const lm = (await orpoEvaluate(model, batch, opts)).loss;
            view[i] = orig;
            const fd = (lp - lm) / (2 * h);
            const g = analytic[base + i]!;
            assert.ok(Math.abs(fd - g) <= 1e-7 + 1e-5 * Math.abs(fd), `${l.module} ${factor}[${i}]: analytic ${g} vs finite difference ${fd}`);
            if (g !== 0) checked++;
          }
        }
      }
      assert.ok(checked > 0);
    });
  }

  test(`${c.name}: checkpointing + fused head give the reference LoRA gradients; every backend matches float64`, async () => {
    const ref = setup(c.raw, c.targets, 0.2);
    ref.adapters.training = true;
    const opts = { beta: 0.3, sftScope: 'response' as const };
    const expected = await loraGrads(ref.model, ref.adapters, ref.batch, opts);
    ref.model.gradientCheckpointing = true;
    const lean = await loraGrads(ref.model, ref.adapters, ref.batch, { ...opts, head: new FusedLogprobHead(jsKernels, { chunkRows: 4, precision: 'float64', frozenWeight: true }) });
    for (let i = 0; i < expected.length; i++) {
      assert.ok(Math.abs(lean[i]! - expected[i]!) <= 1e-12 * (1 + Math.abs(expected[i]!)), `[${i}] ${lean[i]} vs ${expected[i]}`);
    }
    const kernels = [jsKernels, ...(availableBackends().includes('native') ? [getKernels()] : [])];
    for (const k of kernels) {
      const f32 = setup(c.raw, c.targets, 0.2, k, 'float32');
      f32.adapters.training = true;
      f32.model.gradientCheckpointing = true;
      const got = await loraGrads(f32.model, f32.adapters, f32.batch, { ...opts, head: new FusedLogprobHead(k, { chunkRows: 5 }) });
      let scale = 0;
      for (const e of expected) scale = Math.max(scale, Math.abs(e));
      for (let i = 0; i < expected.length; i++) {
        assert.ok(Math.abs(got[i]! - expected[i]!) <= 2e-4 * scale, `${k.name} [${i}]: ${got[i]} vs float64 ${expected[i]}`);
      }
    }
  });
}

test('PEFT initialisation: B = 0 leaves the model unchanged; A is uniform within 1/sqrt(in)', () => {
  const model = createModel(llama, { seed: 3, kernels: jsKernels });
  const ids = Int32Array.from([1, 5, 9, 2, 7, 3]);
  const before = Float64Array.from(model.forward(ids, 2, 3).hidden);
  const adapters = attachLora(model, { r: 4, alpha: 8, dropout: 0, targetModules: ['all-linear'] });
  assert.equal(adapters.scaling, 2);
  assert.equal(adapters.layers.length, 14);
  assert.deepEqual(Float64Array.from(model.forward(ids, 2, 3).hidden), before);
  for (const l of adapters.layers) {
    const a = adapters.A(l.module);
    const bound = 1 / Math.sqrt(l.inFeatures);
    assert.ok(a.every((x) => Math.abs(x) <= bound) && a.some((x) => Math.abs(x) > bound / 2), l.module);
    assert.ok(adapters.B(l.module).every((x) => x === 0));
  }
  assert.equal(model.trainBase, false);
});

test('dropout: identity in eval and at p = 0; in training a seeded mask that changes every micro-step', () => {
  const { model, adapters } = setup(llama, ['q_proj', 'up_proj'], 0.5, jsKernels, 'float32');
  const ids = Int32Array.from([1, 5, 9, 2, 7, 3, 4, 8]);
  const hidden = () => Float64Array.from(model.forward(ids, 1, 8).hidden);
  const evalOut = hidden();
  adapters.training = true;
  const t1 = hidden();
  assert.notDeepEqual(t1, evalOut);
  assert.deepEqual(hidden(), t1, 'the same micro-step draws the same mask (checkpoint recompute relies on it)');
  model.backward(new Float32Array(8 * 16));
  assert.notDeepEqual(hidden(), t1, 'a new micro-step draws a new mask');
  adapters.training = false;
  assert.deepEqual(hidden(), evalOut);
  // a different seed gives different masks; the same seed the same ones
  const other = setup(llama, ['q_proj', 'up_proj'], 0.5, jsKernels, 'float32');
  other.adapters.training = true;
  assert.deepEqual(Float64Array.from(other.model.forward(ids, 1, 8).hidden), t1);
});

test('target modules: PEFT suffix matching, defaults, typos are errors', () => {
  const model = createModel(gpt2, { kernels: jsKernels });
  const attn = selectLoraTargets(model.config, model.layout, ['attn.c_proj']);
  assert.deepEqual(attn.map((t) => t.module), ['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']);
  // c_proj matches both the attention and the MLP output projection, as in PEFT; Conv1D shapes are (out, in)
  const both = selectLoraTargets(model.config, model.layout, ['c_proj', 'c_fc']);
  assert.equal(both.length, 6);
  const fc = both.find((t) => t.module.endsWith('mlp.c_fc'))!;
  assert.deepEqual([fc.inFeatures, fc.outFeatures], [12, 48]);
  assert.throws(() => selectLoraTargets(model.config, model.layout, ['q_proj']), /match no projection.*c_attn/);
});
