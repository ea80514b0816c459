// LoRA adapters on disk in PEFT's format: names, shapes and adapter_config.json as PEFT writes them; a saved
// adapter reloads onto a fresh base and reproduces the same hidden states; `orpo merge` (base + adapter -> plain
// folder) loads without adapters and computes what base + adapter computes, for Llama-family and GPT-2 (Conv1D).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jsKernels } from '../src/backend/js/kernels.js';
import { createModel } from '../src/model/create.js';
import type { DecoderBase } from '../src/model/base.js';
import { attachLora, type LoraAdapters } from '../src/lora/adapters.js';
import { mergeLora } from '../src/lora/merge.js';
import { loadAdapter, saveAdapter, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../src/io/adapter.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { loadModel, saveModel } from '../src/io/hf-model.js';
import { runMergeCommand } from '../src/cli/merge.js';
import { Rng } from '../src/tensor/rng.js';
import { withTmp as withTmpDir } from './helpers/test-files.js';

const llama = {
  model_type: 'qwen2', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
};
const gpt2 = { model_type: 'gpt2', vocab_size: 37, n_embd: 12, n_layer: 2, n_head: 3, n_positions: 32 };
const CASES = [
  { name: 'qwen2', raw: llama, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], prefix: 'base_model.model.model.layers.0.self_attn.q_proj' },
  { name: 'gpt2', raw: gpt2, targets: ['c_attn', 'c_proj', 'c_fc'], prefix: 'base_model.model.transformer.h.0.attn.c_attn' },
];
const ids = Int32Array.from([3, 1, 4, 1, 5, 9, 2, 6, 5, 3]);

const withTmp = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('orpo-lora-', fn);

function trainedAdapters(model: DecoderBase, targets: string[]): LoraAdapters {
  const adapters = attachLora(model, { r: 4, alpha: 16, dropout: 0.05, targetModules: targets }, { seed: 2 });
  const rng = new Rng(4);
  for (let i = 0; i < adapters.params.length; i++) adapters.params[i] += 0.2 * rng.normal();
  return adapters;
}

const hidden = (m: DecoderBase) => Float32Array.from(m.forward(ids, 2, 5).hidden);

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

for (const c of CASES) {
  test(`${c.name}: saved adapter has PEFT's names, shapes and config, and reloads to the same outputs`, () => withTmp(async (dir) => {
    const model = createModel(c.raw, { seed: 1, kernels: jsKernels });
    const adapters = trainedAdapters(model, c.targets);
    const expected = hidden(model);
    await saveAdapter(adapters, join(dir, 'adapter'), { baseModelNameOrPath: 'some/base' });
    const header = await readSafetensorsHeader(join(dir, 'adapter', ADAPTER_WEIGHTS_FILE));
    const a = header.tensors.get(`${c.prefix}.lora_A.weight`);
    const b = header.tensors.get(`${c.prefix}.lora_B.weight`);
    const first = adapters.layers[0]!;
    assert.deepEqual(a?.shape, [4, first.inFeatures]);
    assert.deepEqual(b?.shape, [first.outFeatures, 4]);
    assert.equal(header.tensors.size, 2 * adapters.layers.length);
    const config = JSON.parse(await readFile(join(dir, 'adapter', ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    assert.equal(config['peft_type'], 'LORA');
    assert.equal(config['task_type'], 'CAUSAL_LM');
    assert.equal(config['r'], 4);
    assert.equal(config['lora_alpha'], 16);
    assert.equal(config['lora_dropout'], 0.05);
    assert.equal(config['bias'], 'none');
    assert.equal(config['base_model_name_or_path'], 'some/base');
    assert.deepEqual(config['target_modules'], c.targets);
    assert.equal(config['fan_in_fan_out'], c.name === 'gpt2');

    const fresh = createModel(c.raw, { seed: 1, kernels: jsKernels });
    const loaded = await loadAdapter(join(dir, 'adapter'), fresh);
    assert.deepEqual(loaded.params, adapters.params);
    assert.deepEqual(hidden(fresh), expected);
  }));

  test(`${c.name}: orpo merge writes a plain model equal to base + adapter (within 1e-5)`, () => withTmp(async (dir) => {
    const base = createModel(c.raw, { seed: 1, kernels: jsKernels });
    await saveModel(base, join(dir, 'base'));
    await writeFile(join(dir, 'base', 'tokenizer.json'), '{"marker": "base"}');
    const adapters = trainedAdapters(base, c.targets);
    const expected = hidden(base);
    await saveAdapter(adapters, join(dir, 'adapter'), { baseModelNameOrPath: join(dir, 'base') });
    // --base defaults to the adapter's base_model_name_or_path
    const code = await runMergeCommand(['--adapter', join(dir, 'adapter'), '--out', join(dir, 'merged')]);
    assert.equal(code, 0);
    const merged = await loadModel(join(dir, 'merged'), { kernels: jsKernels });
    assert.equal(merged.linearHooks.size, 0);
    const got = hidden(merged);
    assert.ok(maxDiff(got, expected) <= 1e-5, `merged vs adapter: ${maxDiff(got, expected)}`);
    // and the adapter does change the model, so the comparison above is not vacuous
    const plain = await loadModel(join(dir, 'base'), { kernels: jsKernels });
    assert.ok(maxDiff(hidden(plain), expected) > 1e-3);
    assert.equal(await readFile(join(dir, 'merged', 'tokenizer.json'), 'utf8'), '{"marker": "base"}');
    // --out must not be the base (or the adapter): the merge would overwrite what it reads, and the base is left as it was
    const baseBytes = await readFile(join(dir, 'base', 'model.safetensors'));
    for (const out of [join(dir, 'base'), join(dir, 'base', '.'), join(dir, 'adapter')]) {
      await assert.rejects(runMergeCommand(['--adapter', join(dir, 'adapter'), '--out', out]), /--out .* is the --(base|adapter) folder; write the merged model to a new folder/);
    }
    assert.deepEqual(await readFile(join(dir, 'base', 'model.safetensors')), baseBytes);
    // a --base other than the one the adapter records is merged, with a warning
    await saveModel(base, join(dir, 'other-base'));
    const warnings: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => { warnings.push(String(s)); return true; }) as typeof process.stderr.write;
    try {
      assert.equal(await runMergeCommand(['--base', join(dir, 'other-base'), '--adapter', join(dir, 'adapter'), '--out', join(dir, 'merged2')]), 0);
    } finally {
      process.stderr.write = write;
    }
    assert.match(warnings.join(''), /warning: .*adapter was trained on .*base .*but --base is .*other-base/);
    // in memory too: merging then detaching gives the same function
    mergeLora(adapters);
    assert.ok(maxDiff(hidden(base), expected) <= 1e-5);
  }));
}

test('loading rejects adapters that do not fit: missing tensor, wrong rank, unsupported features', () => withTmp(async (dir) => {
  const model = createModel(llama, { seed: 1, kernels: jsKernels });
  const adapters = trainedAdapters(model, ['q_proj', 'v_proj']);
  await saveAdapter(adapters, dir);
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  const fresh = () => createModel(llama, { seed: 1, kernels: jsKernels });
  await writeFile(configFile, JSON.stringify({ ...config, target_modules: ['q_proj', 'v_proj', 'k_proj'] }));
  await assert.rejects(loadAdapter(dir, fresh()), /k_proj.lora_A.weight' is missing/);
  await writeFile(configFile, JSON.stringify({ ...config, r: 8 }));
  await assert.rejects(loadAdapter(dir, fresh()), /has shape \[4,16\] but r=8/);
  await writeFile(configFile, JSON.stringify({ ...config, target_modules: ['q_proj'] }));
  await assert.rejects(loadAdapter(dir, fresh()), /have no place.*v_proj/);
  await writeFile(configFile, JSON.stringify({ ...config, use_dora: true }));
  await assert.rejects(loadAdapter(dir, fresh()), /DoRA/);
  // PEFT's string form of target_modules is a full-match regular expression
  await writeFile(configFile, JSON.stringify({ ...config, target_modules: '.*\\.(q_proj|v_proj)' }));
  const loaded = await loadAdapter(dir, fresh());
  assert.deepEqual(loaded.params, adapters.params);
}));
