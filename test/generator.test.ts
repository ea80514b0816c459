// KV-cached next-token logits equal those of a full forward over the whole prefix, token by token, for both
// families, and when the sequence diverges from what was cached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../src/model/create.js';
import { Generator } from '../src/model/generator.js';
import type { DecoderBase } from '../src/model/base.js';

function fullLogits(model: DecoderBase, tokens: number[]): Float32Array {
  const T = tokens.length;
  const { hidden } = model.forward(Int32Array.from(tokens), 1, T);
  const C = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const out = new Float32Array(V);
  model.headLogits(out, hidden.subarray((T - 1) * C, T * C), 1);
  return out;
}

function assertClose(a: Float32Array, b: Float32Array, what: string): void {
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  assert.ok(err < 1e-4, `${what}: max difference ${err}`);
}

const configs = {
  qwen3: { model_type: 'qwen3', vocab_size: 41, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, initializer_range: 0.3 },
  gpt2: { model_type: 'gpt2', vocab_size: 41, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 40, initializer_range: 0.3 },
};

for (const [name, raw] of Object.entries(configs)) {
  test(`${name}: cached generation logits equal full forward logits`, () => {
    const model = createModel(raw, { seed: 9 });
    const gen = new Generator(model);
    const tokens = [1, 5, 9, 2];
    for (let step = 0; step < 8; step++) {
      assertClose(gen.nextLogits(tokens), fullLogits(model, tokens), `${name} at length ${tokens.length}`);
      tokens.push((step * 7 + 3) % 41);
    }
    // a different continuation of a shorter prefix reuses only the common part
    const other = [1, 5, 30, 31, 32];
    assertClose(gen.nextLogits(other), fullLogits(model, other), `${name} after divergence`);
    assertClose(gen.nextLogits(other), fullLogits(model, other), `${name} same sequence twice`);
  });
}
