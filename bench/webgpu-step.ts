// The ORPO training step on the WebGPU backend: the CPU bench's configurations (bench/train-step.ts: same model,
// batch and hyperparameters) and a Qwen2.5-0.5B-shaped LoRA step (r 16 on every projection, seq 1024, the fused
// head), run through the library's generic code (modelOnBackend, objectiveStep, clipGradNorm, AdamW), each step
// ending at its awaited gradient norm, with the GPU drained (runtime.sync) before the clock stops. Reports
// tokens/s and, given the adapter's fp32 peak (WebGPU does not report one), MFU by bench/train-step's FLOP count.
//
//   node dist/bench/webgpu-step.js [--configs 5M,30M,5M-hh,qwen-lora] [--steps 5] [--warmup 2] [--peak-tflops 67]
//   node dist/bench/webgpu-step.js --swiftshader     (SwiftShader's environment, the micro config: a smoke run only)
//
// On SwiftShader (no GPU) the numbers say only that the step runs. Writes bench/out/webgpu-step.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { createNodeWebGpuBackend } from '../src/backend/webgpu/node-gpu.js';
import { collatePairs } from '../src/data/collate.js';
import { attachLora } from '../src/lora/adapters.js';
import { LORA_MODULES } from '../src/lora/config.js';
import { lossHeads, trainableBuffers } from '../src/lora/options.js';
import { createObjective } from '../src/loss/objectives/index.js';
import { objectiveStep } from '../src/loss/preference.js';
import { createModel, modelOnBackend } from '../src/model/create.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import { BENCH_CONFIGS, HYPER, MICRO_CONFIG, MODEL_SEED, benchPairs, stepCost, type BenchConfig } from './train-step.js';

const SWIFTSHADER_DIR = '/usr/lib/chromium';

/** Qwen2.5-0.5B's shapes (random weights), one pair of 2 x 1024 tokens, LoRA r 16 on every projection */
const QWEN_LORA: BenchConfig & { lora: true } = {
  name: 'qwen-lora', lora: true, pairs: 1, seq: 1024, promptLen: 256, warmup: 1, steps: 3,
  hf: {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
    num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768,
    rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, initializer_range: 0.02,
  },
};

interface Row {
  config: string;
  lora: boolean;
  tokens: number;
  medianStepMs: number;
  tokensPerSec: number;
  tflops: number;
  mfu: number | null;
  firstLoss: number;
}

async function measure(gpu: WebGpuBackend, cfg: BenchConfig & { lora?: boolean }, steps: number, warmup: number,
  peakTflops: number | null): Promise<Row> {
  {
    const host = createModel(cfg.hf, { seed: MODEL_SEED });
    const cost = stepCost(cfg, host);
    const model = modelOnBackend(host, gpu.kernels);
    const adapters = cfg.lora === true ? attachLora(model, { r: 16, alpha: 32, dropout: 0, targetModules: [...LORA_MODULES.llama] }) : null;
    if (adapters) model.gradientCheckpointing = true;
    const trainable = trainableBuffers(model, adapters);
    const head = lossHeads(model, cfg.lora === true).train;
    const objective = createObjective({ method: 'orpo', beta: HYPER.beta, sftScope: 'full' });
    const batch = collatePairs(benchPairs(cfg), 0);
    const opt = new AdamW(trainable.size, { lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, eps: HYPER.eps, weightDecay: HYPER.weightDecay }, gpu.kernels);
    const step = async (): Promise<{ ms: number; loss: number }> => {
      const t0 = performance.now();
      trainable.zeroGrad();
      const r = await objectiveStep(model, batch, objective, { head });
      await clipGradNorm(trainable.grads, HYPER.maxGradNorm, gpu.kernels);
      opt.update(trainable.params, trainable.grads);
      await gpu.runtime.sync();
      return { ms: performance.now() - t0, loss: r.loss };
    };
    const first = await step();
    for (let i = 1; i < warmup; i++) await step();
    const ms: number[] = [];
    for (let i = 0; i < steps; i++) ms.push((await step()).ms);
    ms.sort((a, b) => a - b);
    const median = ms[Math.floor(ms.length / 2)]!;
    // the CPU bench's FLOP count; under LoRA it includes the frozen base's weight-gradient products the step skips,
    // as bench/train-step counts it, so MFU figures compare across backends
    const tflops = cost.flops / (median / 1000) / 1e12;
    return {
      config: cfg.name, lora: cfg.lora === true, tokens: cost.tokens, medianStepMs: Math.round(median * 10) / 10,
      tokensPerSec: Math.round(cost.tokens / (median / 1000)), tflops: Math.round(tflops * 1000) / 1000,
      mfu: peakTflops === null ? null : Math.round((tflops / peakTflops) * 1000) / 10, firstLoss: first.loss,
    };
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    configs: { type: 'string' }, steps: { type: 'string' }, warmup: { type: 'string' }, 'peak-tflops': { type: 'string' },
    swiftshader: { type: 'boolean', default: false }, child: { type: 'boolean', default: false },
  } });
  if (values.swiftshader && !values.child) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--swiftshader', '--child', ...process.argv.slice(2).filter((a) => a !== '--swiftshader')], {
      stdio: 'inherit', env: { ...process.env, VK_ICD_FILENAMES: `${SWIFTSHADER_DIR}/vk_swiftshader_icd.json`,
        LD_LIBRARY_PATH: [SWIFTSHADER_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
    });
    process.exit(r.status ?? 1);
  }
  const all = [...BENCH_CONFIGS, QWEN_LORA, MICRO_CONFIG];
  const names = values.configs?.split(',') ?? (values.swiftshader ? ['micro'] : ['5M', '30M', '5M-hh', 'qwen-lora']);
  const peak = values['peak-tflops'] === undefined ? null : Number(values['peak-tflops']);
  const gpu = await createNodeWebGpuBackend();
  const adapter = gpu.runtime.info.adapter;
  const software = gpu.runtime.info.isSoftware;
  console.log(`# WebGPU training step: ${adapter}${software ? ' (software: not a speed measurement)' : ''}${peak === null ? '' : `, fp32 peak ${peak} TFLOP/s`}`);
  const rows: Row[] = [];
  for (const name of names) {
    const cfg = all.find((c) => c.name === name);
    if (!cfg) throw new Error(`no config named '${name}' (have ${all.map((c) => c.name).join(', ')})`);
    // one device for every configuration: Dawn in Node does not survive a second instance after the first is torn down
    const row = await measure(gpu, cfg, Number(values.steps ?? cfg.steps), Number(values.warmup ?? cfg.warmup), peak);
    rows.push(row);
    console.log(`${row.config.padEnd(10)} ${String(row.tokens).padStart(6)} tokens  ${row.medianStepMs.toFixed(1).padStart(9)} ms/step  ` +
      `${String(row.tokensPerSec).padStart(8)} tokens/s  ${row.tflops.toFixed(3)} TFLOP/s${row.mfu === null ? '' : `  MFU ${row.mfu}%`}  (first loss ${row.firstLoss.toFixed(4)})`);
  }
  const out = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bench', 'out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'webgpu-step.json'), JSON.stringify({ adapter, software, peakTflops: peak, rows }, null, 2) + '\n');
  gpu.runtime.destroy();
}

await main();
