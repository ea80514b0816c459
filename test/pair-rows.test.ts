// A shared prompt (one row per pair: prompt | chosen | rejected, pair-rows.ts) against TRL's two rows per pair:
// the same loss, metrics and gradient of every parameter, in float64 to rounding, for every model family, with
// LoRA and gradient checkpointing, and for pairs whose responses share tokens or are prefixes of each other.
// Also the layout itself on a hand-made batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../src/backend/js/kernels.js';
import { availableBackends, getKernels } from '../src/backend/index.js';
import { collatePairs, type TokenPair } from '../src/data/collate.js';
import { orpoEvaluate, orpoStep } from '../src/loss/orpo.js';
import { separateRows, sharedPrefixRows } from '../src/loss/pair-rows.js';
import { createModel } from '../src/model/create.js';
import type { DecoderBase } from '../src/model/base.js';
import { attachLora } from '../src/lora/adapters.js';
import { Rng } from '../src/tensor/rng.js';

const llama = {
  model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6,
  rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.2,
};
const MODELS: [string, Record<string, unknown>][] = [
  ['llama GQA', llama],
  ['llama 3 rope_scaling', { ...llama, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } }],
  ['qwen3 q/k norm', { ...llama, model_type: 'qwen3', head_dim: 8, num_key_value_heads: 1, tie_word_embeddings: true }],
  ['gpt2', { model_type: 'gpt2', vocab_size: 37, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 20, initializer_range: 0.2 }],
];

function randomPairs(rng: Rng, n: number): TokenPair[] {
  const seq = (len: number) => Array.from({ length: len }, () => 1 + rng.int(36));
  const pairs: TokenPair[] = Array.from({ length: n }, () => ({ prompt: seq(1 + rng.int(6)), chosen: seq(1 + rng.int(6)), rejected: seq(1 + rng.int(6)) }));
  // responses that start alike (the shared prefix reaches into them), one a prefix of the other, and equal
  pairs.push({ prompt: seq(3), chosen: [5, 6, 7, 8], rejected: [5, 6, 9] });
  pairs.push({ prompt: seq(2), chosen: [4, 4, 4], rejected: [4, 4] });
  pairs.push({ prompt: seq(4), chosen: [3], rejected: [3, 1, 2] });
  pairs.push({ prompt: seq(1), chosen: [7, 7], rejected: [7, 7] });
  return pairs;
}

function perturbNorms(model: DecoderBase, rng: Rng): void {
  for (const p of model.layout) {
    if (p.name.endsWith('.bias') || /norm|ln_/.test(p.name)) {
      const v = model.param(p.name);
      for (let i = 0; i < v.length; i++) v[i] += 0.2 * rng.normal();
    }
  }
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, what: string): void {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  assert.ok(scale > 0, `${what}: all zero`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= rtol * scale, `${what}[${i}]: ${got[i]} vs ${want[i]} (scale ${scale})`);
  }
}

test('shared-prompt layout: rows, positions, hidden keys and the index back to the two-row batch', () => {
  const batch = collatePairs([
    { prompt: [1, 2, 3], chosen: [4, 5], rejected: [6] },
    { prompt: [7], chosen: [8, 9], rejected: [8, 10, 11] },
  ], 0);
  const r = sharedPrefixRows(batch, 0);
  assert.equal(r.B, 2);
  // pair 0: 1 2 3 4 5 | 6 ; pair 1 shares [7, 8]: 7 8 9 | 10 11
  assert.equal(r.T, 6);
  assert.deepEqual([...r.ids], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0]);
  assert.deepEqual([...r.packing!.positions], [0, 1, 2, 3, 4, 3, 0, 1, 2, 2, 3, 0]);
  assert.deepEqual([...r.packing!.hiddenKeys], [3, 5, 2, 3]);
  assert.equal(r.packing!.length, 5);
  assert.equal(r.tokens, 11);
  // rejected row of pair 1 (batch row 3): tokens 7 8 10 11 live at hidden rows 6 7 9 10
  const T = batch.T;
  assert.deepEqual([...r.index.subarray(3 * T, 3 * T + 4)], [6, 7, 9, 10]);
  assert.deepEqual([...r.index.subarray(2 * T, 2 * T + 4)], [0, 1, 2, 5]);
  assert.equal(r.index[2 * T + 4], -1);
  const s = separateRows(batch);
  assert.equal(s.packing, null);
  assert.equal(s.tokens, batch.tokens);
});

for (const [name, raw] of MODELS) {
  test(`${name}: a shared prompt gives TRL's two-row loss, metrics and gradients (float64)`, async () => {
    const rng = new Rng(11);
    const batch = collatePairs(randomPairs(rng, 4), 0);
    const run = async (sharePrompt: boolean, opts: { lora?: boolean; checkpointing?: boolean } = {}) => {
      const model = createModel(raw, { seed: 5, kernels: jsKernels, precision: 'float64' });
      perturbNorms(model, new Rng(3));
      model.gradientCheckpointing = opts.checkpointing ?? false;
      const lora = opts.lora ? attachLora(model, { r: 2, alpha: 4, dropout: 0, targetModules: ['all-linear'] }, { seed: 9 }) : null;
      if (lora) {
        // B starts at zero (PEFT): give it values so that both factors' gradients are exercised
        const brng = new Rng(4);
        for (const l of lora.layers) lora.B(l.module).forEach((_, i, b) => { b[i] = 0.3 * brng.normal(); });
      }
      model.zeroGrad();
      lora?.zeroGrad();
      const out = await orpoStep(model, batch, { beta: 0.3, sftScope: 'full', sharePrompt });
      const evalOut = await orpoEvaluate(model, batch, { beta: 0.3, sftScope: 'full', sharePrompt });
      assert.equal(evalOut.loss, out.loss);
      return { out, grads: Float64Array.from(lora ? lora.grads : model.grads) };
    };
    const want = await run(false);
    const got = await run(true);
    assert.ok(Math.abs(got.out.loss - want.out.loss) < 1e-12, `${got.out.loss} vs ${want.out.loss}`);
    for (const [k, v] of Object.entries(want.out.metrics)) assert.ok(Math.abs((got.out.metrics as Record<string, number>)[k]! - v) < 1e-12, k);
    assertClose(got.out.logpsRejected, want.out.logpsRejected, 1e-12, 'logps rejected');
    assertClose(got.grads, want.grads, 1e-11, 'grads');
    const ckpt = await run(true, { checkpointing: true });
    assert.deepEqual(ckpt.grads, got.grads, 'checkpointing recomputes the packed layers exactly');
    const loraWant = await run(false, { lora: true });
    const loraGot = await run(true, { lora: true });
    assertClose(loraGot.grads, loraWant.grads, 1e-11, 'LoRA grads');
  });
}

test('shared prompt in float32 on every backend: within float32 rounding of the two-row float64 numbers', async () => {
  const rng = new Rng(12);
  const batch = collatePairs(randomPairs(rng, 6), 0);
  const ref = createModel(llama, { seed: 5, kernels: jsKernels, precision: 'float64' });
  ref.zeroGrad();
  const want = await orpoStep(ref, batch, { beta: 0.3, sftScope: 'full', sharePrompt: false });
  const wantGrads = Float64Array.from(ref.grads);
  const kernels = [jsKernels, ...(availableBackends().includes('native') ? [getKernels()] : [])];
  for (const k of kernels) {
    const model = createModel(llama, { seed: 5, kernels: k });
    model.zeroGrad();
    const got = await orpoStep(model, batch, { beta: 0.3, sftScope: 'full', sharePrompt: true });
    assert.ok(Math.abs(got.loss - want.loss) < 1e-5 * Math.abs(want.loss), `${k.name}: ${got.loss} vs ${want.loss}`);
    assertClose(model.grads, wantGrads, 2e-5, `${k.name} grads`);
  }
});

test('a packed forward is refused where it cannot run: a KV cache, wrong sizes', () => {
  const model = createModel(llama, { seed: 5, kernels: jsKernels });
  const ids = new Int32Array(6);
  assert.throws(() => model.forward(ids, 2, 3, { positions: new Int32Array(5), hiddenKeys: new Int32Array(4), length: 3 }), /packing has 5 positions/);
  const gpt2 = createModel(MODELS[3][1], { seed: 5, kernels: jsKernels });
  // positions, not the packed row's width, must fit n_positions (20)
  gpt2.forward(new Int32Array(30), 1, 30, { positions: new Int32Array(30).map((_, i) => i % 15), hiddenKeys: Int32Array.from([15, 15]), length: 15 });
  assert.throws(() => gpt2.forward(new Int32Array(30), 1, 30, { positions: new Int32Array(30).map((_, i) => i), hiddenKeys: new Int32Array(2), length: 30 }), /n_positions 20/);
});

test('bf16 mixed precision (bf16 option): loss and gradients within bfloat16 rounding of float32 on every backend', async () => {
  const rng = new Rng(13);
  const batch = collatePairs(randomPairs(rng, 4), 0);
  const kernels = [jsKernels, ...(availableBackends().includes('native') ? [getKernels()] : [])];
  for (const k of kernels) {
    const run = async (bf16: boolean) => {
      const model = createModel(llama, { seed: 6, kernels: k });
      k.setMatmulBf16(bf16);
      try {
        model.zeroGrad();
        const r = await orpoStep(model, batch, { beta: 0.2, sftScope: 'full' });
        return { loss: r.loss, grads: Float64Array.from(model.grads) };
      } finally {
        k.setMatmulBf16(false);
      }
    };
    const f32 = await run(false);
    const bf = await run(true);
    assert.ok(bf.loss !== f32.loss, `${k.name}: bf16 changed nothing`);
    assert.ok(Math.abs(bf.loss - f32.loss) < 1e-2 * Math.abs(f32.loss), `${k.name}: loss ${bf.loss} vs ${f32.loss}`);
    let num = 0;
    let den = 0;
    for (let i = 0; i < f32.grads.length; i++) {
      num += (bf.grads[i] - f32.grads[i]) ** 2;
      den += f32.grads[i] ** 2;
    }
    assert.ok(Math.sqrt(num / den) < 3e-2, `${k.name}: gradient relative error ${Math.sqrt(num / den)}`);
    assert.equal(k.getMatmulBf16(), false);
  }
});
