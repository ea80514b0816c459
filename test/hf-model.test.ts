// Hugging Face model folders: load -> save -> load is bit-identical (F32 and BF16, single file and sharded),
// re-saving a fixture reproduces its bytes, GPT-2 loads with and without the `transformer.` prefix, and
// mismatched or damaged folders get errors that name the problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sharedDir, SHARED_MISSING } from './helpers/shared.js';
import { loadModel, saveModel, hfTensors } from '../src/io/hf-model.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { createModel } from '../src/model/create.js';
import { withTmp as withTmpDir } from './helpers/test-files.js';

const shared = sharedDir();

const withTmp = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('orpo-hf-', fn);

for (const cs of ['llama', 'gpt2']) {
  test(`${cs} fixture: save reproduces model.safetensors byte for byte; F32/BF16/sharded round trips are bit-identical`, { skip: shared ? false : SHARED_MISSING }, async () => {
    const src = join(shared!, 'fixtures', cs, 'model');
    const model = await loadModel(src);
    await withTmp(async (dir) => {
      await saveModel(model, join(dir, 'f32'));
      assert.deepEqual(await readFile(join(dir, 'f32', 'model.safetensors')), await readFile(join(src, 'model.safetensors')));
      const again = await loadModel(join(dir, 'f32'));
      assert.deepEqual(again.params, model.params);
      const cfg = JSON.parse(await readFile(join(dir, 'f32', 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.model_type, cs);
      // the fixture weights are bf16-exact, so a BF16 save loses nothing
      await saveModel(model, join(dir, 'bf16'), { dtype: 'BF16', maxShardBytes: 40_000 });
      const files = await readdir(join(dir, 'bf16'));
      assert.ok(files.includes('model.safetensors.index.json'), `sharded save wrote ${files.join(', ')}`);
      assert.deepEqual((await loadModel(join(dir, 'bf16'))).params, model.params);
    });
  });
}

test('tied lm_head is not written, and a checkpoint that stores it anyway still loads', async () => {
  const model = createModel({ model_type: 'qwen2', vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true }, { seed: 1 });
  await withTmp(async (dir) => {
    await saveModel(model, dir);
    assert.ok(!hfTensors(model).some((t) => t.name === 'lm_head.weight'));
    const tensors = [...hfTensors(model), { name: 'lm_head.weight', shape: [11, 8], data: model.param('model.embed_tokens.weight') }];
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    assert.deepEqual((await loadModel(dir)).params, model.params);
  });
});

test('GPT-2 weights without the transformer. prefix (GPT2Model) and with causal-mask buffers load', async () => {
  const raw = { model_type: 'gpt2', vocab_size: 13, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16 };
  const model = createModel(raw, { seed: 2 });
  await withTmp(async (dir) => {
    const tensors = hfTensors(model).map((t) => ({ ...t, name: t.name.replace(/^transformer\./, '') }));
    tensors.push({ name: 'h.0.attn.bias', shape: [1, 1, 16, 16], data: new Float32Array(256) });
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    await writeFile(join(dir, 'config.json'), JSON.stringify(raw));
    assert.deepEqual((await loadModel(dir)).params, model.params);
  });
});

test('mismatched folders: missing, misshapen, unexpected and non-finite tensors are named', async () => {
  const raw = { model_type: 'llama', vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2 };
  const model = createModel(raw, { seed: 3 });
  await withTmp(async (dir) => {
    await writeFile(join(dir, 'config.json'), JSON.stringify(raw));
    const all = hfTensors(model);
    await writeSafetensors(join(dir, 'model.safetensors'), all.filter((t) => t.name !== 'model.norm.weight'));
    await assert.rejects(loadModel(dir), /lack 1 parameter\(s\).*model\.norm\.weight/);
    await writeSafetensors(join(dir, 'model.safetensors'), all.map((t) => t.name === 'model.norm.weight' ? { ...t, shape: [4, 2] } : t));
    await assert.rejects(loadModel(dir), /'model\.norm\.weight' has shape \[4,2\] but config\.json implies \[8\]/);
    await writeSafetensors(join(dir, 'model.safetensors'), [...all, { name: 'model.extra.weight', shape: [2], data: new Float32Array(2) }]);
    await assert.rejects(loadModel(dir), /no place for: model\.extra\.weight/);
    const bad = all.map((t) => t.name === 'model.norm.weight' ? { ...t, data: Float32Array.from(t.data, (v, i) => (i === 3 ? NaN : v)) } : t);
    await writeSafetensors(join(dir, 'model.safetensors'), bad);
    await assert.rejects(loadModel(dir), /'model\.norm\.weight' holds NaN or Inf/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...raw, model_type: 'bert' }));
    await assert.rejects(loadModel(dir), /model_type 'bert' is not supported/);
    await rm(join(dir, 'config.json'));
    await assert.rejects(loadModel(dir), /config\.json: not found/);
  });
});
