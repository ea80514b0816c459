// The memory plan against what a real step allocates: every activation term equals the model's, the LoRA
// adapters' and the loss head's arena bytes after forward + backward, for each family, with and without
// gradient checkpointing and LoRA dropout, fused and unfused; then the plan's orders of magnitude for a real shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsKernels } from '../src/backend/js/kernels.js';
import { createModel } from '../src/model/create.js';
import { parseConfig } from '../src/model/config.js';
import { collatePairs, type TokenPair } from '../src/data/collate.js';
import { forwardRows, orpoStep } from '../src/loss/orpo.js';
import { UnfusedLogprobHead } from '../src/loss/logprob-head.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { attachLora } from '../src/lora/adapters.js';
import { planMemory, formatMemoryPlan, peakRssBytes } from '../src/train/memory.js';
import { Rng } from '../src/tensor/rng.js';

const llama = {
  model_type: 'llama', vocab_size: 41, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: false,
};
const CASES: { name: string; raw: Record<string, unknown>; targets: string[] }[] = [
  { name: 'llama', raw: llama, targets: ['q_proj', 'v_proj', 'down_proj'] },
  { name: 'qwen3 (q/k norm, head_dim 8)', raw: { ...llama, model_type: 'qwen3', head_dim: 8 }, targets: ['all-linear'] },
  { name: 'gpt2', raw: { model_type: 'gpt2', vocab_size: 41, n_embd: 12, n_layer: 2, n_head: 3, n_positions: 32 }, targets: ['c_attn', 'c_fc'] },
];

function pairs(rng: Rng, V: number): TokenPair[] {
  const seq = (n: number) => Array.from({ length: n }, () => 1 + rng.int(V - 1));
  return [{ prompt: seq(4), chosen: seq(5), rejected: seq(3) }, { prompt: seq(2), chosen: seq(2), rejected: seq(6) }];
}

for (const c of CASES) {
  for (const ckpt of [false, true]) {
    for (const lora of [false, true]) {
      test(`${c.name}, checkpointing ${ckpt}, ${lora ? 'LoRA with dropout' : 'full'}: planned activation and loss-path bytes equal the arenas'`, async () => {
        const model = createModel(c.raw, { seed: 1, kernels: jsKernels });
        model.gradientCheckpointing = ckpt;
        const loraSettings = lora ? { r: 3, alpha: 6, dropout: 0.1, targetModules: c.targets } : null;
        const adapters = loraSettings ? attachLora(model, loraSettings) : null;
        if (adapters) adapters.training = true;
        const batch = collatePairs(pairs(new Rng(2), model.config.vocabSize), 0);
        let scored = 0;
        for (let r = 0; r < batch.rows; r++) scored += batch.lengths[r]! - 1;
        for (const fused of [false, true]) {
          const head = fused ? new FusedLogprobHead(jsKernels, { chunkRows: 4, frozenWeight: lora }) : new UnfusedLogprobHead(jsKernels);
          await orpoStep(model, batch, { beta: 0.1, sftScope: 'full', head });
          // the rows the model ran: one per pair, prompt | chosen | rejected (the shared-prompt layout)
          const ran = forwardRows(batch, {});
          assert.equal(ran.B, 2);
          const input = {
            config: model.config, rows: ran.B, T: ran.T, lora: loraSettings, gradientCheckpointing: ckpt,
            fusedLoss: fused, chunkRows: 4, scoredRows: scored,
          };
          const plan = planMemory(input);
          const a = plan.activations;
          assert.equal(a.residual + a.saved + a.final + a.backwardScratch + a.inputs, model.arena.bytes(), 'model arena');
          assert.equal(a.lora, adapters ? adapters.arena.bytes() : 0, 'LoRA arena');
          const dhidden = ran.B * ran.T * model.config.hiddenSize * 4;
          assert.equal(plan.lossPath, head.bytes() + dhidden, `loss path (${fused ? 'fused' : 'unfused'})`);
          assert.equal(plan.adapters, adapters ? adapters.params.byteLength + adapters.grads.byteLength : 0);
          assert.equal(plan.weights, model.params.byteLength);
          assert.match(formatMemoryPlan(plan, input), /total/);
        }
      });
    }
  }
}

test('Qwen2.5-0.5B shapes at 2 x 1024 tokens: LoRA + checkpointing + fused loss plans under 4 GiB, full fine-tuning far more', () => {
  const config = parseConfig({
    model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
    num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768, tie_word_embeddings: true,
  });
  const base = { config, rows: 2, T: 1024 };
  const full = planMemory({ ...base, lora: null, gradientCheckpointing: false, fusedLoss: false });
  const lean = planMemory({ ...base, lora: { r: 16, targetModules: ['all-linear'], dropout: 0 }, gradientCheckpointing: true, fusedLoss: true });
  assert.equal(full.parameters, 494032768); // Qwen2.5-0.5B's published parameter count
  assert.equal(full.optimizer, 2 * full.weights);
  assert.equal(lean.gradients, 0);
  // LoRA on all seven projections at r=16: 16 * sum(in + out) per layer
  assert.equal(lean.trainableParameters, 24 * 16 * ((896 + 896) + (896 + 128) * 2 + (896 + 896) + (896 + 4864) * 3));
  assert.ok(lean.total < 4 * 1024 ** 3, `lean plan ${lean.total}`);
  assert.ok(full.total > 3 * lean.total);
  // the fused head keeps one (256, V) block of logits instead of (2046, V)
  const unfusedLoss = planMemory({ ...base, lora: null, gradientCheckpointing: true, fusedLoss: false }).lossPath;
  assert.ok(lean.lossPath < 0.4 * unfusedLoss, `${lean.lossPath} vs ${unfusedLoss}`);
  assert.ok(peakRssBytes() > 0);
});
