// GGUF export checked by llama.cpp itself (node-llama-cpp's prebuilt CPU build): every family orpo-ts trains,
// built small with random weights, saved as a model folder, exported, loaded in llama.cpp without a warning,
// and llama.cpp's next-token log-probabilities over a token sequence compared with orpo-ts's own.
// Also: a LoRA adapter exported with gguf-lora, applied by llama.cpp over its base, equals the merged model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '../src/model/create.js';
import type { DecoderBase } from '../src/model/base.js';
import { saveModel } from '../src/io/hf-model.js';
import { saveAdapter } from '../src/io/adapter.js';
import { attachLora } from '../src/lora/adapters.js';
import { mergeLora } from '../src/lora/merge.js';
import { exportAdapterFolderToGguf, exportModelFolderToGguf } from '../src/io/gguf/export.js';
import type { GgufDtype } from '../src/io/gguf/architecture.js';
import { Rng } from '../src/tensor/rng.js';
import { tinyTokenizerFiles } from './data-tiny-tokenizer.js';
import { complaintsSince, llamaCpp, llamaLog, llamaNextLogprobs, loadGguf } from './helpers/llama-cpp.js';

// the tiny byte-level tokenizer has 261 tokens; the embedding has 264 rows, so three are padding
const V = 264;
const llamaBase = {
  model_type: 'llama', vocab_size: V, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.08, bos_token_id: 258, eos_token_id: 259,
};
const gpt2Base = {
  model_type: 'gpt2', vocab_size: V, n_embd: 64, n_layer: 2, n_head: 4, n_positions: 256, initializer_range: 0.08,
  bos_token_id: 258, eos_token_id: 259,
};

const CASES: { name: string; raw: Record<string, unknown> }[] = [
  { name: 'llama GQA 4/2, untied', raw: llamaBase },
  { name: 'llama tied, attention and MLP biases, Llama 3 rope scaling', raw: { ...llamaBase, tie_word_embeddings: true, attention_bias: true, mlp_bias: true, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } } },
  { name: 'llama MQA, head_dim 32 != hidden/heads', raw: { ...llamaBase, num_key_value_heads: 1, head_dim: 32 } },
  { name: 'mistral', raw: { ...llamaBase, model_type: 'mistral', sliding_window: 4096 } },
  { name: 'qwen2 tied, q/k/v biases', raw: { ...llamaBase, model_type: 'qwen2', tie_word_embeddings: true } },
  { name: 'qwen3 q/k norms, head_dim 32 != hidden/heads', raw: { ...llamaBase, model_type: 'qwen3', head_dim: 32, num_key_value_heads: 1 } },
  { name: 'gpt2 tied', raw: gpt2Base },
  { name: 'gpt2 untied', raw: { ...gpt2Base, tie_word_embeddings: false, n_inner: 160 } },
];

/**
 * Largest |llama.cpp - orpo-ts| of a next-token log-probability, per storage type, measured on these models with
 * node-llama-cpp 3.21.1's CPU build and rounded up about 2-3x (README, "Run it with llama.cpp"). f32 is the issue's
 * 1e-4 (measured: 1e-6 to 2e-6). The others are the rounding of the weights, plus llama.cpp's rounding of the
 * activations to the weights' type inside each matrix product (orpo-ts computes with the float32 originals).
 */
const TOLERANCE: Readonly<Record<GgufDtype, number>> = { f32: 1e-4, f16: 1e-2, bf16: 8e-2, q8_0: 2e-1 };
/**
 * llama.cpp's CPU GELU (GPT-2's MLP) reads a table indexed by the input rounded to f16 (GGML_GELU_FP16), which
 * alone moves GPT-2's log-probs by about 5e-4; the export itself is exact (see the near-linear GELU test below).
 */
const GPT2_F32_TOLERANCE = 2e-3;

function perturb(model: DecoderBase, seed: number): void {
  // norms start at 1 and biases at 0; move them so their export is exercised too
  const rng = new Rng(seed);
  for (const p of model.layout) {
    if (p.name.endsWith('.bias') || /norm|ln_/.test(p.name)) {
      const v = model.param(p.name);
      for (let i = 0; i < v.length; i++) v[i] += 0.3 * rng.normal();
    }
  }
}

/**
 * Scales GPT-2's MLP input projections by 0.01: GELU then sees tiny inputs, where gelu(x) ~ x/2 and the f16
 * rounding of llama.cpp's GELU table is negligible, so any remaining difference would be the export's.
 */
function linearizeGelu(model: DecoderBase): void {
  for (const p of model.layout) {
    if (!p.name.includes('.mlp.c_fc.')) continue;
    const v = model.param(p.name);
    for (let i = 0; i < v.length; i++) v[i] *= 0.01;
  }
}

/** orpo-ts's next-token log-probabilities after every prefix of ids (float64 log-softmax of float32 logits). */
function orpoNextLogprobs(model: DecoderBase, ids: readonly number[]): Float64Array[] {
  const { hiddenSize: C, vocabSize: Vm } = model.config;
  const T = ids.length;
  const { hidden } = model.forward(Int32Array.from(ids), 1, T);
  const logits = new Float32Array(T * Vm);
  model.headLogits(logits, hidden, T);
  return Array.from({ length: T }, (_, t) => {
    const row = logits.subarray(t * Vm, (t + 1) * Vm);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    return Float64Array.from(row, (x) => x - lse);
  });
}

function maxAbsDiff(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  a.forEach((row, t) => {
    assert.equal(row.length, b[t]!.length, `row ${t}: vocabulary sizes differ`);
    for (let i = 0; i < row.length; i++) worst = Math.max(worst, Math.abs(row[i]! - b[t]![i]!));
  });
  return worst;
}

function saveTokenizer(dir: string): void {
  const files = tinyTokenizerFiles({ padToken: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.config));
}

const rng = new Rng(11);
const SEQUENCE = Array.from({ length: 24 }, () => rng.int(258));
const measured: string[] = [];

for (const [index, c] of CASES.entries()) {
  test(`${c.name}: llama.cpp's next-token log-probs match orpo-ts (f32 within 1e-4; f16, bf16, q8_0)`, async (t) => {
    const llama = await llamaCpp();
    if (typeof llama === 'string') return t.skip(llama);
    const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-'));
    try {
      const model = createModel(c.raw, { seed: 100 + index });
      perturb(model, 200 + index);
      const modelDir = join(dir, 'model');
      await saveModel(model, modelDir);
      saveTokenizer(modelDir);
      const expected = orpoNextLogprobs(model, SEQUENCE);
      const spread = expected[expected.length - 1]!.reduce((a, b) => Math.max(a, b), -Infinity) - Math.log(1 / V);
      assert.ok(spread > 0.5, `the random model's distributions are not flat (top log-prob ${spread.toFixed(2)} above uniform)`);
      const errors: string[] = [];
      for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as const) {
        const file = join(dir, `model-${dtype}.gguf`);
        await exportModelFolderToGguf(modelDir, file, { dtype });
        const before = llamaLog.length;
        const loaded = await loadGguf(llama, file);
        try {
          const err = maxAbsDiff(await llamaNextLogprobs(loaded, SEQUENCE), expected);
          // llama.cpp's log lines arrive asynchronously: look once it has computed something
          assert.deepEqual(await complaintsSince(before), [], `${dtype}: llama.cpp loads the file without a warning`);
          errors.push(`${dtype} ${err.toExponential(1)}`);
          const tolerance = dtype === 'f32' && c.raw.model_type === 'gpt2' ? GPT2_F32_TOLERANCE : TOLERANCE[dtype];
          assert.ok(err <= tolerance, `${dtype}: max |Δ log p| ${err.toExponential(2)} > ${tolerance}`);
        } finally {
          await loaded.dispose();
        }
      }
      measured.push(`${c.name}: ${errors.join(', ')}`);
      t.diagnostic(`max |Δ log p|: ${errors.join(', ')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

for (const c of [CASES[0]!, CASES[5]!, CASES[6]!]) {
  test(`${c.name}: a gguf-lora adapter over its base gives llama.cpp the merged model's log-probs`, async (t) => {
    const llama = await llamaCpp();
    if (typeof llama === 'string') return t.skip(llama);
    const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-lora-'));
    try {
      const model = createModel(c.raw, { seed: 300 });
      perturb(model, 301);
      const gpt2 = c.raw.model_type === 'gpt2';
      // GPT-2: GELU kept near-linear (see above) and its input projection not adapted, so that llama.cpp's f16
      // GELU table cannot blur the comparison; every other projection carries an adapter
      if (gpt2) linearizeGelu(model);
      const baseDir = join(dir, 'base');
      await saveModel(model, baseDir);
      saveTokenizer(baseDir);
      const targetModules = gpt2 ? ['c_attn', 'c_proj'] : ['all-linear'];
      const adapters = attachLora(model, { r: 4, alpha: 8, dropout: 0, targetModules }, { seed: 302 });
      const r = new Rng(303);
      for (const l of adapters.layers) {
        const b = adapters.B(l.module);
        for (let i = 0; i < b.length; i++) b[i] = 0.3 * r.normal();
      }
      const adapterDir = join(dir, 'adapter');
      await saveAdapter(adapters, adapterDir, { baseModelNameOrPath: baseDir });
      mergeLora(adapters);
      const expected = orpoNextLogprobs(model, SEQUENCE);

      await exportModelFolderToGguf(baseDir, join(dir, 'base.gguf'), { dtype: 'f32' });
      await exportAdapterFolderToGguf(adapterDir, join(dir, 'adapter.gguf'));
      await exportModelFolderToGguf(baseDir, join(dir, 'merged.gguf'), { dtype: 'f32', adapterDir });

      const before = llamaLog.length;
      const withAdapter = await loadGguf(llama, join(dir, 'base.gguf'), { lora: join(dir, 'adapter.gguf') });
      const merged = await loadGguf(llama, join(dir, 'merged.gguf'));
      try {
        const viaAdapter = await llamaNextLogprobs(withAdapter, SEQUENCE);
        const viaMerged = await llamaNextLogprobs(merged, SEQUENCE);
        assert.deepEqual(await complaintsSince(before), [], 'llama.cpp loads the adapter without a warning');
        const adapterVsMerged = maxAbsDiff(viaAdapter, viaMerged);
        const mergedVsOrpo = maxAbsDiff(viaMerged, expected);
        t.diagnostic(`max |Δ log p| adapter vs merged ${adapterVsMerged.toExponential(1)}, merged vs orpo-ts ${mergedVsOrpo.toExponential(1)}`);
        assert.ok(adapterVsMerged <= 1e-4, `base + adapter vs merged: ${adapterVsMerged}`);
        assert.ok(mergedVsOrpo <= 1e-4, `merged GGUF vs orpo-ts: ${mergedVsOrpo}`);
        // and the adapter does something: the base alone differs
        const baseOnly = await loadGguf(llama, join(dir, 'base.gguf'));
        try {
          assert.ok(maxAbsDiff(await llamaNextLogprobs(baseOnly, SEQUENCE), viaMerged) > 1e-2, 'the adapter changes the model');
        } finally {
          await baseOnly.dispose();
        }
      } finally {
        await withAdapter.dispose();
        await merged.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('gpt2 with its MLP inputs scaled down (GELU near-linear): f32 within 1e-4, so the export is exact', async (t) => {
  const llama = await llamaCpp();
  if (typeof llama === 'string') return t.skip(llama);
  const dir = mkdtempSync(join(tmpdir(), 'orpo-gguf-gpt2-'));
  try {
    const model = createModel({ ...gpt2Base, tie_word_embeddings: false }, { seed: 400 });
    perturb(model, 401);
    linearizeGelu(model);
    const modelDir = join(dir, 'model');
    await saveModel(model, modelDir);
    saveTokenizer(modelDir);
    await exportModelFolderToGguf(modelDir, join(dir, 'model.gguf'), { dtype: 'f32' });
    const loaded = await loadGguf(llama, join(dir, 'model.gguf'));
    try {
      const err = maxAbsDiff(await llamaNextLogprobs(loaded, SEQUENCE), orpoNextLogprobs(model, SEQUENCE));
      t.diagnostic(`max |Δ log p| ${err.toExponential(1)}`);
      assert.ok(err <= 1e-4, `max |Δ log p| ${err}`);
    } finally {
      await loaded.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('measured log-prob differences per storage type', (t) => {
  for (const line of measured) t.diagnostic(line);
});
