// A LoRA base held in bfloat16 (torch_dtype bfloat16, issue 16): its matrices live in one frozen bfloat16 buffer at
// half the bytes, and a training step on it gives exactly the numbers of the bf16 option on a float32 model whose
// matrices hold the same bfloat16 values (the definition), on every CPU backend; loading, saving, the memory plan and
// `orpo train --torch-dtype bfloat16` follow.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableBackends, hostKernelsNamed } from '../src/backend/index.js';
import type { Kernels } from '../src/backend/kernels.js';
import { collatePairs, type TokenPair } from '../src/data/collate.js';
import { loadModel, saveModel } from '../src/io/hf-model.js';
import { attachLora, type LoraAdapters } from '../src/lora/adapters.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { orpoStep } from '../src/loss/orpo.js';
import type { DecoderBase } from '../src/model/base.js';
import { bf16Bits, createModel, readParam, setParam, widenModel } from '../src/model/create.js';
import { planMemory } from '../src/train/memory.js';
import { bf16ToF32, f32ToBf16 } from '../src/tensor/dtype.js';
import { Rng } from '../src/tensor/rng.js';
import { writeDemoData, writeDemoModelFolder } from '../src/cli/demo.js';
import { arithmeticTask } from '../src/train/demo-task.js';

const root = mkdtempSync(join(tmpdir(), 'orpo-bf16-base-'));
after(() => rmSync(root, { recursive: true, force: true }));

const qwen2 = {
  model_type: 'qwen2', vocab_size: 41, hidden_size: 16, intermediate_size: 26, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true, initializer_range: 0.2,
};
const qwen3 = { ...qwen2, model_type: 'qwen3', head_dim: 6, tie_word_embeddings: false };
// odd widths: a row of a (.., 11) matrix starts in the high half of a 32-bit element every other row
const gpt2 = { model_type: 'gpt2', vocab_size: 37, n_embd: 12, n_layer: 2, n_head: 3, n_positions: 32, initializer_range: 0.2 };
const CASES = [
  { name: 'qwen2 (tied head, q/k/v biases)', raw: qwen2, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] },
  { name: 'qwen3 (q/k norm, untied head)', raw: qwen3, targets: ['q_proj', 'k_proj', 'gate_proj', 'up_proj'] },
  { name: 'gpt2 (Conv1D, position table)', raw: gpt2, targets: ['c_attn', 'c_proj', 'c_fc'] },
];

function randomPairs(rng: Rng, V: number, n: number): TokenPair[] {
  const seq = (len: number) => Array.from({ length: len }, () => 1 + rng.int(V - 1));
  return Array.from({ length: n }, () => ({ prompt: seq(2 + rng.int(4)), chosen: seq(1 + rng.int(5)), rejected: seq(1 + rng.int(5)) }));
}

/** the same float32 model with every matrix rounded to bfloat16 (what the bf16 base holds, widened) */
function roundedTwin(model: DecoderBase, kernels: Kernels): DecoderBase {
  const twin = createModel(model.config.raw, { kernels });
  for (const p of model.layout) {
    const v = model.param(p.name);
    twin.param(p.name).set(p.shape.length === 2 ? bf16ToF32(f32ToBf16(v)) : v);
  }
  return twin;
}

function withLora(model: DecoderBase, targets: string[]): LoraAdapters {
  const adapters = attachLora(model, { r: 3, alpha: 6, dropout: 0.2, targetModules: targets }, { seed: 11 });
  const rng = new Rng(5);
  for (const l of adapters.layers) adapters.B(l.module).forEach((_, i, b) => { b[i] = 0.3 * rng.normal(); });
  adapters.training = true;
  return adapters;
}

for (const backend of availableBackends()) {
  for (const c of CASES) {
    for (const fused of [false, true]) {
      test(`${backend}, ${c.name}, ${fused ? 'fused' : 'unfused'} head: a bfloat16 base trains with the bf16 option's numbers on its values`, async () => {
        const kernels = hostKernelsNamed(backend as 'js' | 'native');
        const source = createModel(c.raw, { seed: 3, kernels });
        // the base in bfloat16: each matrix rounded to nearest even as it is set
        const base = createModel(c.raw, { seed: 3, kernels, weightDtype: 'bfloat16' });
        for (const p of source.layout) setParam(base, p.name, source.param(p.name));
        const twin = roundedTwin(source, kernels);
        for (const p of twin.layout) assert.deepEqual(readParam(base, p.name), twin.param(p.name), p.name);
        base.gradientCheckpointing = twin.gradientCheckpointing = fused;
        const batch = collatePairs(randomPairs(new Rng(7), base.config.vocabSize, 3), 0);
        const results = [];
        const was = kernels.getMatmulBf16();
        kernels.setMatmulBf16(true);
        try {
          for (const m of [base, twin]) {
            const adapters = withLora(m, c.targets);
            adapters.zeroGrad();
            const head = fused ? new FusedLogprobHead(kernels, { frozenWeight: true, chunkRows: 5 }) : undefined;
            const r = await orpoStep(m, batch, { beta: 0.5, sftScope: 'full', head });
            results.push({ loss: r.loss, grads: Float64Array.from(adapters.grads) });
          }
        } finally {
          kernels.setMatmulBf16(was);
        }
        const [got, want] = results as [{ loss: number; grads: Float64Array }, { loss: number; grads: Float64Array }];
        // the js backend computes both the same way (exactly equal); the native kernels may sum in another order
        const tol = backend === 'js' ? 0 : 2e-5;
        assert.ok(Math.abs(got.loss - want.loss) <= tol * Math.abs(want.loss), `loss ${got.loss} vs ${want.loss}`);
        let scale = 0;
        for (const g of want.grads) scale = Math.max(scale, Math.abs(g));
        assert.ok(scale > 0, 'the adapters got gradients');
        for (let i = 0; i < want.grads.length; i++) {
          assert.ok(Math.abs(got.grads[i]! - want.grads[i]!) <= tol * scale + (tol === 0 ? 0 : 1e-7), `adapter grad ${i}: ${got.grads[i]} vs ${want.grads[i]}`);
        }
      });
    }
  }
}

test('a bfloat16 base holds its matrices in 2 bytes each, as the memory plan says, and refuses to be trained or read as float32', () => {
  const model = createModel(qwen2, { seed: 1, weightDtype: 'bfloat16' });
  const matrices = model.layout.filter((p) => p.shape.length === 2).reduce((n, p) => n + p.size + (p.size % 2), 0);
  const vectors = model.layout.filter((p) => p.shape.length !== 2).reduce((n, p) => n + p.size, 0);
  assert.equal(model.frozen!.length, matrices);
  assert.equal(model.params.length, vectors);
  assert.equal(model.parameterCount, matrices + vectors - model.layout.filter((p) => p.shape.length === 2 && p.size % 2).length);
  const plan = planMemory({ config: model.config, rows: 2, T: 8, lora: { r: 2, targetModules: ['q_proj'], dropout: 0 },
    gradientCheckpointing: false, fusedLoss: false, weightDtype: 'bfloat16' });
  assert.equal(plan.weights, 4 * model.params.length + 4 * model.frozen!.data.length);
  const f32 = planMemory({ config: model.config, rows: 2, T: 8, lora: null, gradientCheckpointing: false, fusedLoss: false });
  assert.ok(plan.weights < 0.6 * f32.weights, `${plan.weights} vs ${f32.weights}`);
  assert.throws(() => { model.trainBase = true; }, /frozen: train LoRA adapters on it/);
  assert.throws(() => model.param('model.layers.0.self_attn.q_proj.weight'), /stored in bfloat16 \(torch_dtype bfloat16\)/);
  assert.throws(() => model.grad('model.embed_tokens.weight'), /no gradient/);
  assert.equal(model.param('model.norm.weight').length, 16);
});

test('loadModel: bfloat16 from F32 files rounds to nearest even, from BF16 files copies the bits; auto follows the files; saving widens', async () => {
  const source = createModel(qwen3, { seed: 2 });
  const f32Dir = join(root, 'f32');
  const bf16Dir = join(root, 'bf16');
  await saveModel(source, f32Dir);
  await saveModel(source, bf16Dir, { dtype: 'BF16' });
  for (const dir of [f32Dir, bf16Dir]) {
    const m = await loadModel(dir, { weightDtype: 'bfloat16' });
    assert.equal(m.weightDtype, 'bfloat16');
    for (const p of m.layout) {
      if (p.bf16) assert.deepEqual(bf16Bits(m, p.name), f32ToBf16(source.param(p.name)), p.name);
      else if (dir === f32Dir) assert.deepEqual(m.param(p.name), source.param(p.name), p.name);
    }
  }
  assert.equal((await loadModel(f32Dir, { weightDtype: 'auto' })).weightDtype, 'float32');
  assert.equal((await loadModel(bf16Dir, { weightDtype: 'auto' })).weightDtype, 'bfloat16');
  // saved (widened, exactly) and loaded back as float32: the bfloat16 values
  const m = await loadModel(f32Dir, { weightDtype: 'bfloat16' });
  const out = join(root, 'saved');
  await saveModel(m, out);
  const back = await loadModel(out);
  const wide = widenModel(m);
  assert.deepEqual(back.params, wide.params);
  assert.notDeepEqual(back.params, source.params, 'the matrices were rounded');
});

test('orpo train --dry-run --torch-dtype auto plans the dtype the run would load: the weight files\' (their headers only)', async () => {
  const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const source = createModel(qwen2, { seed: 3 });
  const plans: Record<string, string> = {};
  for (const dtype of ['F32', 'BF16'] as const) {
    const dir = join(root, `dry-run-${dtype}`);
    await saveModel(source, dir, { dtype });
    for (const lora of [true, false]) {
      const r = spawnSync(process.execPath, [MAIN, 'train', '--model', dir, '--dataset', join(root, 'none.jsonl'), '--output-dir', join(root, 'dry-out'),
        '--dry-run', '--torch-dtype', 'auto', ...(lora ? ['--lora-r', '4'] : [])], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      plans[`${dtype} lora=${lora}`] = r.stdout;
    }
  }
  assert.match(plans['BF16 lora=true']!, /weights .* matrices bfloat16 \(frozen\)/);
  assert.match(plans['F32 lora=true']!, /weights .* float32\n/);
  // full fine-tuning trains float32 whatever the files hold
  assert.match(plans['BF16 lora=false']!, /weights .* float32\n/);
});

test('loadModel with a bfloat16 base names a NaN in a BF16 matrix', async () => {
  const source = createModel(qwen2, { seed: 4 });
  source.param('model.layers.1.mlp.up_proj.weight')[7] = NaN;
  const dir = join(root, 'nan');
  await saveModel(source, dir, { dtype: 'BF16' });
  await assert.rejects(loadModel(dir, { weightDtype: 'bfloat16' }), /parameter 'model\.layers\.1\.mlp\.up_proj\.weight' holds NaN or Inf/);
});

test('orpo train --torch-dtype bfloat16 trains LoRA on a bfloat16 base (the loss falls); without LoRA it says what to do', async () => {
  const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const modelDir = join(root, 'demo-model');
  await writeDemoModelFolder(modelDir, { hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32 }, 4);
  const data = await writeDemoData(join(root, 'demo-data'), arithmeticTask(9, 40, 8));
  const out = join(root, 'trained');
  const args = ['train', '--model', modelDir, '--dataset', data.train, '--eval-dataset', data.eval, '--output-dir', out, '--learning-rate', '2e-2',
    '--max-steps', '12', '--per-device-train-batch-size', '4', '--logging-steps', '1', '--threads', '1', '--no-report', '--torch-dtype', 'bfloat16'];
  const refused = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(refused.status, 2, refused.stderr); // a usage error
  assert.match(refused.stderr, /torch_dtype bfloat16 keeps the base frozen in bfloat16, for LoRA: add --lora-r/);
  assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
  const r = spawnSync(process.execPath, [MAIN, ...args, '--lora-r', '8', '--lora-alpha', '16'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /LoRA r=8 on \d+ modules, the base frozen in bfloat16/);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const losses = records.filter((x) => 'loss' in x).map((x) => x['loss']!);
  const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
  const last = losses.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(last < first, `the loss fell: ${first} -> ${last}`);
  // orpo eval on the output takes the run's torch_dtype and reproduces the trainer's held-out loss
  const ev = spawnSync(process.execPath, [MAIN, 'eval', '--model', out, '--dataset', data.eval, '--json', '--threads', '1'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(ev.status, 0, ev.stderr);
  assert.match(ev.stderr, /torch_dtype bfloat16/);
  const want = records.filter((x) => 'eval_loss' in x).at(-1)!['eval_loss']!;
  const got = (JSON.parse(ev.stdout) as Record<string, number>)['eval_loss']!;
  assert.ok(Math.abs(got - want) <= 1e-6 * Math.abs(want), `${got} vs ${want}`);
  // generation on the bfloat16 base (decoding reads the bf16 matrices in place, one row at a time)
  const gen = spawnSync(process.execPath, [MAIN, 'generate', '--model', out, '--prompt', '12+07=', '--max-new-tokens', '4',
    '--torch-dtype', 'bfloat16', '--json', '--threads', '1'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(gen.status, 0, gen.stderr);
  const { tokens } = JSON.parse(gen.stdout) as { tokens: number[] };
  assert.ok(tokens.length >= 1 && tokens.length <= 4 && tokens.every((t) => Number.isInteger(t) && t >= 0), gen.stdout);
});
