// PEFT compatibility check (a twin, not a test: it needs Python torch + transformers + peft, which the project
// never installs). For tiny random Qwen2 and GPT-2 models it writes, under bench/out/peft/<name>/:
//   base/      a plain model folder (saveModel)
//   adapter/   a LoRA adapter with random A and B (saveAdapter, PEFT's format)
//   merged/    `orpo merge --base base --adapter adapter --out merged`
//   expected.json  token ids and orpo-ts's logits of base + adapter
// then runs bench/peft_twin.py, which loads base + adapter with PeftModel.from_pretrained, compares the logits,
// and compares PEFT's merge_and_unload() weights with merged/.
//
//   node dist/bench/lora.js [--python /path/to/python3]
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jsKernels } from '../src/backend/js/kernels.js';
import { runMergeCommand } from '../src/cli/merge.js';
import { saveAdapter } from '../src/io/adapter.js';
import { saveModel } from '../src/io/hf-model.js';
import { attachLora } from '../src/lora/adapters.js';
import { createModel } from '../src/model/create.js';
import { Rng } from '../src/tensor/rng.js';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CASES = [
  {
    name: 'qwen2', targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    raw: {
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 64, hidden_size: 32, intermediate_size: 48,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128,
      rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true, initializer_range: 0.1, torch_dtype: 'float32',
    },
  },
  {
    name: 'gpt2', targets: ['c_attn', 'c_proj', 'c_fc'],
    raw: {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 64, n_embd: 32, n_layer: 2, n_head: 4,
      n_positions: 64, n_ctx: 64, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', initializer_range: 0.1, torch_dtype: 'float32',
    },
  },
];

const { values } = parseArgs({ options: { python: { type: 'string', default: 'python3' } } });
const root = join(repoRoot, 'bench', 'out', 'peft');
rmSync(root, { recursive: true, force: true });
for (const c of CASES) {
  const dir = join(root, c.name);
  mkdirSync(dir, { recursive: true });
  const model = createModel(c.raw, { seed: 1, kernels: jsKernels });
  await saveModel(model, join(dir, 'base'));
  const adapters = attachLora(model, { r: 4, alpha: 8, dropout: 0.05, targetModules: c.targets }, { seed: 2 });
  const rng = new Rng(3);
  for (const l of adapters.layers) adapters.B(l.module).forEach((_, i, b) => { b[i] = 0.2 * rng.normal(); });
  await saveAdapter(adapters, join(dir, 'adapter'), { baseModelNameOrPath: join(dir, 'base') });
  const T = 12;
  const ids = Int32Array.from({ length: T }, () => rng.int(64));
  const { hidden } = model.forward(ids, 1, T);
  const V = model.config.vocabSize;
  const C = model.config.hiddenSize;
  const logits = new Float32Array(T * V);
  model.headLogits(logits, hidden, T);
  writeFileSync(join(dir, 'expected.json'), JSON.stringify({ ids: Array.from(ids), logits: Array.from(logits), T, V }));
  await runMergeCommand(['--base', join(dir, 'base'), '--adapter', join(dir, 'adapter'), '--out', join(dir, 'merged')]);
}
const twin = spawnSync(values.python!, [join(repoRoot, 'bench', 'peft_twin.py'), root], { stdio: 'inherit' });
process.exitCode = twin.status ?? 1;
