// Configurations the golden fixtures do not cover (Qwen2 biases, Qwen3 q/k norms, Mistral, head_dim != C/NH,
// grouped-query ratios, tied and untied heads, Llama 3 rope scaling, sft_scope): every one checked against float64
// central finite differences of the whole ORPO loss, then float32 on every backend against that float64 model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../src/backend/js/kernels.js';
import { availableBackends, getKernels } from '../src/backend/index.js';
import type { Kernels } from '../src/backend/kernels.js';
import { createModel, emptyModel } from '../src/model/create.js';
import { parseConfig } from '../src/model/config.js';
import type { DecoderBase } from '../src/model/base.js';
import { collatePairs, type TokenPair } from '../src/data/collate.js';
import { orpoEvaluate, orpoStep, type SftScope } from '../src/loss/orpo.js';
import { Rng } from '../src/tensor/rng.js';

const llamaBase = {
  model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6,
  rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.2,
};

const CASES: { name: string; raw: Record<string, unknown>; sftScope?: SftScope }[] = [
  { name: 'llama GQA 4/2 untied', raw: llamaBase },
  { name: 'llama MHA tied, response-only NLL', raw: { ...llamaBase, num_key_value_heads: 4, tie_word_embeddings: true }, sftScope: 'response' },
  { name: 'llama MQA, head_dim 6 != C/NH, rope_theta 5e5', raw: { ...llamaBase, num_key_value_heads: 1, head_dim: 6, rope_theta: 500000 } },
  { name: 'llama attention_bias + mlp_bias', raw: { ...llamaBase, attention_bias: true, mlp_bias: true } },
  { name: 'llama 3 rope_scaling', raw: { ...llamaBase, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } } },
  { name: 'mistral', raw: { ...llamaBase, model_type: 'mistral', sliding_window: 4096 } },
  { name: 'qwen2 (q/k/v biases) tied', raw: { ...llamaBase, model_type: 'qwen2', tie_word_embeddings: true } },
  { name: 'qwen3 (q/k norm, head_dim 8)', raw: { ...llamaBase, model_type: 'qwen3', head_dim: 8, num_key_value_heads: 1 } },
  { name: 'gpt2 tied', raw: { model_type: 'gpt2', vocab_size: 37, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 32, initializer_range: 0.2 } },
  { name: 'gpt2 untied, response-only NLL', raw: { model_type: 'gpt2', vocab_size: 37, n_embd: 12, n_layer: 1, n_head: 3, n_positions: 32, tie_word_embeddings: false, initializer_range: 0.2 }, sftScope: 'response' },
];

function randomPairs(rng: Rng, V: number, n: number): TokenPair[] {
  const seq = (len: number) => Array.from({ length: len }, () => 1 + rng.int(V - 1));
  return Array.from({ length: n }, () => ({ prompt: seq(2 + rng.int(4)), chosen: seq(1 + rng.int(5)), rejected: seq(1 + rng.int(5)) }));
}

function randomizeNorms(model: DecoderBase, rng: Rng): void {
  // norms start at 1 and biases at 0; perturb them so their gradients are exercised too
  for (const p of model.layout) {
    if (p.name.endsWith('.bias') || /norm|ln_/.test(p.name)) {
      const v = model.param(p.name);
      for (let i = 0; i < v.length; i++) v[i] += 0.2 * rng.normal();
    }
  }
}

function backends(): Kernels[] {
  const list: Kernels[] = [jsKernels];
  if (availableBackends().includes('native') && getKernels().name !== 'js') list.push(getKernels());
  return list;
}

for (const c of CASES) {
  test(`${c.name}: float64 gradients equal finite differences; float32 backends match`, async () => {
    const rng = new Rng(7);
    const model = createModel(c.raw, { seed: 3, kernels: jsKernels, precision: 'float64' });
    randomizeNorms(model, rng);
    const batch = collatePairs(randomPairs(rng, model.config.vocabSize, 3), 0);
    const opts = { beta: 0.5, sftScope: c.sftScope ?? 'full' };
    model.zeroGrad();
    await orpoStep(model, batch, opts);
    const analytic = Float64Array.from(model.grads);

    // every parameter tensor, a few entries each, by central differences in float64
    const h = 1e-5;
    for (const p of model.layout) {
      for (let j = 0; j < 3; j++) {
        const i = p.offset + rng.int(p.size);
        const orig = model.params[i];
        model.params[i] = orig + h;
        const lp = (await orpoEvaluate(model, batch, opts)).loss;
        model.params[i] = orig - h;
        const lm = (await orpoEvaluate(model, batch, opts)).loss;
        model.params[i] = orig;
        const fd = (lp - lm) / (2 * h);
        const err = Math.abs(fd - analytic[i]);
        assert.ok(err <= 1e-6 + 1e-5 * Math.abs(fd), `${p.name}[${i - p.offset}]: analytic ${analytic[i]} vs finite difference ${fd}`);
      }
    }

    // the same weights in float32 on every backend: gradients within the fixtures' tolerance of float64
    for (const kernels of backends()) {
      const m32 = emptyModel(model.config, kernels);
      m32.params.set(model.params);
      m32.zeroGrad();
      await orpoStep(m32, batch, opts);
      for (const p of model.layout) {
        const g = m32.grads.subarray(p.offset, p.offset + p.size);
        const ref = analytic.subarray(p.offset, p.offset + p.size);
        let maxRef = 0;
        let maxErr = 0;
        for (let i = 0; i < g.length; i++) {
          maxRef = Math.max(maxRef, Math.abs(ref[i]));
          maxErr = Math.max(maxErr, Math.abs(g[i] - ref[i]));
        }
        assert.ok(maxErr <= 1e-4 * maxRef + 1e-6, `${kernels.name} float32 ${p.name}: max error ${maxErr} vs max ${maxRef}`);
      }
    }
  });
}

test('gradient checkpointing gives the same gradients', async () => {
  for (const c of [CASES[0], CASES[7], CASES[8]]) {
    const rng = new Rng(11);
    const a = createModel(c.raw, { seed: 5 });
    const b = createModel(c.raw, { seed: 5 });
    b.gradientCheckpointing = true;
    const batch = collatePairs(randomPairs(rng, a.config.vocabSize, 2), 0);
    const opts = { beta: 0.1, sftScope: 'full' as const };
    a.zeroGrad();
    b.zeroGrad();
    const la = (await orpoStep(a, batch, opts)).loss;
    const lb = (await orpoStep(b, batch, opts)).loss;
    assert.equal(la, lb);
    assert.deepEqual(b.grads, a.grads, `${c.name}: checkpointed gradients differ`);
  }
});

test('unsupported configurations are refused with what is supported', () => {
  assert.throws(() => parseConfig({ ...llamaBase, model_type: 'falcon' }), /model_type 'falcon' is not supported; supported model_type values: gpt2, llama, mistral, qwen2, qwen3/);
  assert.throws(() => parseConfig({ ...llamaBase, rope_scaling: { rope_type: 'yarn', factor: 4 } }), /rope_scaling type 'yarn' is not supported/);
  assert.throws(() => parseConfig({ ...llamaBase, num_key_value_heads: 3 }), /not a multiple/);
  assert.throws(() => parseConfig({ ...llamaBase, hidden_act: 'gelu' }), /hidden_act 'gelu' is not supported/);
  assert.throws(() => parseConfig({ model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2, activation_function: 'relu' }), /activation_function 'relu'/);
  const mistral = createModel({ ...llamaBase, model_type: 'mistral', sliding_window: 4 });
  assert.throws(() => mistral.forward(new Int32Array(5), 1, 5), /exceeds the model's sliding_window 4/);
  const m = createModel(llamaBase);
  assert.throws(() => m.forward(Int32Array.from([1, 2, 99]), 1, 3), /token id 99 .* outside the vocabulary/);
});
