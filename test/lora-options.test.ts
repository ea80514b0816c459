// `orpo train`'s LoRA and memory options and what they build: flags parse (--no-fused-loss, defaults as TRL),
// the optimizer sees only the adapters and never touches the base gradients, the heads match the mode, the
// dry-run plan prints, and a few AdamW steps on the adapters alone lower the ORPO loss of a tiny model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../src/backend/js/kernels.js';
import { createModel } from '../src/model/create.js';
import { collatePairs, type TokenPair } from '../src/data/collate.js';
import { orpoEvaluate, orpoStep } from '../src/loss/orpo.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { UnfusedLogprobHead } from '../src/loss/logprob-head.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import { resolveOptions } from '../src/train/options.js';
import { parseConfig } from '../src/model/config.js';
import {
  LORA_MEMORY_OPTIONS, fusedLossFor, attachLoraFromOptions, lossHeads, loraSettingsOf, trainMemoryPlanText, trainableBuffers,
} from '../src/lora/options.js';
import { Rng } from '../src/tensor/rng.js';

const raw = {
  model_type: 'llama', vocab_size: 29, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
};

test('options: defaults as TRL, flags override, lora_r unset means full fine-tuning', () => {
  const d = resolveOptions(LORA_MEMORY_OPTIONS, []);
  assert.deepEqual(d, { lora_r: null, lora_alpha: 32, lora_dropout: 0.05, lora_target_modules: null, gradient_checkpointing: false, fused_loss: null, dry_run: false });
  const model = createModel(raw, { kernels: jsKernels });
  assert.equal(loraSettingsOf(d, model.config), null);
  const c = resolveOptions(LORA_MEMORY_OPTIONS, [{ source: 'argv', flagStyle: true, values: { lora_r: '8', fused_loss: 'false', lora_target_modules: 'q_proj, down_proj' } }]);
  assert.deepEqual(loraSettingsOf(c, model.config), { r: 8, alpha: 32, dropout: 0.05, targetModules: ['q_proj', 'down_proj'] });
  assert.deepEqual(loraSettingsOf({ ...c, lora_target_modules: null }, model.config)?.targetModules, ['q_proj', 'v_proj']);
  assert.throws(() => resolveOptions(LORA_MEMORY_OPTIONS, [{ source: 'argv', values: { lora_r: 0 } }]), /lora_r.*>= 1/);
  const plan = trainMemoryPlanText(model.config, { ...c, per_device_train_batch_size: 2, max_length: 32 });
  assert.match(plan, /LoRA r=8 on q_proj,down_proj, 4 rows x 32 tokens/);
  assert.match(plan, /loss path .*unfused/);
});

test('fused_loss unset: the fused head exactly when the unfused logits would pass 256 MiB; set, as set', () => {
  const qwen = parseConfig({ model_type: 'qwen2', vocab_size: 151936, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1,
    num_attention_heads: 4, num_key_value_heads: 2 });
  const small = parseConfig({ ...raw, vocab_size: 8192 });
  // 2 pairs x 2 rows x 1024 tokens x 151936 x 4 bytes = 2.3 GiB; 4 pairs x 2 x 256 x 8192 x 4 = 64 MiB
  assert.equal(fusedLossFor({ fused_loss: null }, qwen, 2, 1024), true);
  assert.equal(fusedLossFor({ fused_loss: null }, small, 4, 256), false);
  // 2 pairs x 2 x 4096 x 8192 x 4 = 512 MiB
  assert.equal(fusedLossFor({ fused_loss: null }, small, 2, 4096), true);
  assert.equal(fusedLossFor({ fused_loss: false }, qwen, 2, 1024), false);
  assert.equal(fusedLossFor({ fused_loss: true }, small, 4, 256), true);
});

test('LoRA training: only adapter buffers are optimised, base gradients stay untouched, and the loss goes down', async () => {
  const model = createModel(raw, { kernels: jsKernels, seed: 4 });
  const base = Float32Array.from(model.params);
  const c = { lora_r: 4, lora_alpha: 8, lora_dropout: 0.1, lora_target_modules: 'all-linear', gradient_checkpointing: true, fused_loss: true, dry_run: false };
  model.gradientCheckpointing = c.gradient_checkpointing;
  const adapters = attachLoraFromOptions(model, c, 1)!;
  const heads = lossHeads(model, fusedLossFor(c, model.config, 2, 64));
  assert.ok(heads.train instanceof FusedLogprobHead && heads.train.frozenWeight);
  assert.ok(heads.eval instanceof FusedLogprobHead && !heads.eval.frozenWeight);
  const trainable = trainableBuffers(model, adapters);
  assert.equal(trainable.params, adapters.params);
  model.grads.fill(7); // a sentinel: nothing may zero or write the base gradients
  const rng = new Rng(3);
  const seq = (n: number) => Array.from({ length: n }, () => 1 + rng.int(28));
  const pairs: TokenPair[] = Array.from({ length: 4 }, () => ({ prompt: seq(4), chosen: seq(5), rejected: seq(5) }));
  const batch = collatePairs(pairs, 0);
  const opts = { beta: 0.5, sftScope: 'full' as const };
  const before = (await orpoEvaluate(model, batch, { ...opts, head: heads.eval })).loss;
  const optimizer = new AdamW(trainable.params.length, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, jsKernels);
  for (let step = 0; step < 15; step++) {
    adapters.training = true;
    trainable.zeroGrad();
    await orpoStep(model, batch, { ...opts, head: heads.train });
    await clipGradNorm(trainable.grads, 1, jsKernels);
    optimizer.update(trainable.params, trainable.grads);
  }
  adapters.training = false;
  const after = (await orpoEvaluate(model, batch, { ...opts, head: heads.eval })).loss;
  assert.ok(after < before - 0.05, `loss ${before} -> ${after}`);
  assert.ok(model.grads.every((g) => g === 7));
  assert.deepEqual(model.params, base);
  // full fine-tuning: the model's own buffers, and an unfused head when asked
  const full = createModel(raw, { kernels: jsKernels });
  assert.equal(trainableBuffers(full, null).grads, full.grads);
  assert.ok(lossHeads(full, false).train instanceof UnfusedLogprobHead);
});
