// Issue 5's benchmark: peak RSS and step time of ORPO training on random weights of Qwen2.5-0.5B's shapes
// (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, vocabulary 151,936, tied) at 1 pair x 1024 tokens:
//   full          every parameter trained, unfused loss head, no checkpointing
//   lora          LoRA r=16 on all seven projections, unfused loss head, no checkpointing
//   lora-lean     LoRA r=16 + gradient checkpointing + fused loss head
//   lora-lean-bf16-products  lora-lean with --bf16 (bf16 products, float32 weights)
//   lora-lean-bf16  lora-lean with the base's matrices frozen in bfloat16 (torch_dtype bfloat16) and --bf16
//   lora-lean-dropout  lora-lean with TRL's default lora_dropout 0.05 (what `orpo train --lora-r 16` runs; the
//                      others keep dropout 0, as their earlier rows did)
// Each configuration runs in a fresh child process (node dist/bench/memory.js --child NAME) so its peak RSS
// (process.resourceUsage().maxRSS) is its own. Also reports the planned bytes (src/train/memory.ts) next to
// the measured arenas, and the loss path's bytes fused vs unfused.
//
//   node dist/bench/memory.js [--steps N (default 2: the first step also pays for first-touch page faults)]
//                             [--configs full,lora,lora-lean]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getKernels } from '../src/backend/index.js';
import { collatePairs } from '../src/data/collate.js';
import { FusedLogprobHead } from '../src/loss/fused-head.js';
import { UnfusedLogprobHead, type TokenLogprobHead } from '../src/loss/logprob-head.js';
import { orpoStep } from '../src/loss/orpo.js';
import { attachLora, type LoraAdapters } from '../src/lora/adapters.js';
import { LORA_MODULES } from '../src/lora/config.js';
import { parseConfig } from '../src/model/config.js';
import { bf16Bits, emptyModel } from '../src/model/create.js';
import { f32ToBf16 } from '../src/tensor/dtype.js';
import type { DecoderBase } from '../src/model/base.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import { formatBytes, peakRssBytes, planMemory, type MemoryPlanInput } from '../src/train/memory.js';
import { Rng } from '../src/tensor/rng.js';

const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
  num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768,
  rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, torch_dtype: 'float32',
};
const SEQ = 1024;
const PROMPT = 256;
const LORA = { r: 16, alpha: 32, dropout: 0, targetModules: [...LORA_MODULES.llama] };

interface BenchCase {
  name: string; lora: boolean; checkpointing: boolean; fused: boolean; bf16Products?: boolean; bf16Base?: boolean;
  /** LoRA dropout (0 unless set) */
  dropout?: number;
}
const CASES: BenchCase[] = [
  { name: 'full', lora: false, checkpointing: false, fused: false },
  { name: 'lora', lora: true, checkpointing: false, fused: false },
  { name: 'lora-lean', lora: true, checkpointing: true, fused: true },
  { name: 'lora-lean-bf16-products', lora: true, checkpointing: true, fused: true, bf16Products: true },
  { name: 'lora-lean-bf16', lora: true, checkpointing: true, fused: true, bf16Products: true, bf16Base: true },
  { name: 'lora-lean-dropout', lora: true, checkpointing: true, fused: true, dropout: 0.05 },
];

interface ChildReport {
  name: string;
  threads: number;
  initSeconds: number;
  stepSeconds: number[];
  /** user + system CPU seconds per step: less sensitive than wall time to other processes on a shared machine */
  stepCpuSeconds: number[];
  peakRss: number;
  trainable: number;
  measured: { modelArena: number; loraArena: number; lossHead: number };
  plan: ReturnType<typeof planMemory>;
  loss: number;
}

function loraOf(c: BenchCase): typeof LORA {
  return { ...LORA, dropout: c.dropout ?? 0 };
}

/** Random weights in the spirit of initializer_range 0.02 (uniform, same variance), cheap to draw for 494M values. */
function fillRandom(model: DecoderBase, seed: number): void {
  const rng = new Rng(seed);
  const a = 0.02 * Math.sqrt(3);
  const chunk = new Float32Array(1 << 20);
  for (const p of model.layout) {
    if (p.bf16) {
      // drawn in float32 chunks and rounded: no float32 copy of a whole bfloat16 matrix inflates the peak
      const bits = bf16Bits(model, p.name);
      for (let start = 0; start < bits.length; start += chunk.length) {
        const n = Math.min(chunk.length, bits.length - start);
        for (let i = 0; i < n; i++) chunk[i] = (2 * rng.uniform() - 1) * a;
        f32ToBf16(chunk.subarray(0, n), bits.subarray(start, start + n));
      }
      continue;
    }
    const v = model.param(p.name);
    if (/norm\.weight$/.test(p.name)) v.fill(1);
    else if (p.name.endsWith('.bias')) v.fill(0);
    else for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * a;
  }
}

async function runChild(c: BenchCase, steps: number): Promise<ChildReport> {
  const kernels = getKernels();
  kernels.setThreads(availableParallelism());
  const t0 = performance.now();
  const model = emptyModel(parseConfig(QWEN25_05B), kernels, 'float32', c.bf16Base ? 'bfloat16' : 'float32');
  // what --bf16 sets: the adapters' products in bf16 too (the bfloat16 base's always are)
  kernels.setMatmulBf16(c.bf16Products === true);
  fillRandom(model, 1);
  model.gradientCheckpointing = c.checkpointing;
  let adapters: LoraAdapters | null = null;
  if (c.lora) {
    adapters = attachLora(model, loraOf(c), { seed: 2 });
    // B = 0 at PEFT's init; non-zero B makes the step do the work a trained adapter does
    const b = new Rng(3);
    for (const l of adapters.layers) adapters.B(l.module).forEach((_, i, arr) => { arr[i] = 0.01 * (b.uniform() - 0.5); });
    adapters.training = true;
  }
  const trainable = adapters ? adapters.params : model.params;
  const grads = adapters ? adapters.grads : model.grads;
  const optimizer = new AdamW(trainable.length, { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, kernels);
  // a frozen head (LoRA) lets the fused head skip its second pass over the vocabulary
  const head: TokenLogprobHead = c.fused ? new FusedLogprobHead(kernels, { frozenWeight: c.lora }) : new UnfusedLogprobHead(kernels);
  const rng = new Rng(4);
  const seq = (n: number) => Array.from({ length: n }, () => rng.int(QWEN25_05B.vocab_size));
  const batch = collatePairs([{ prompt: seq(PROMPT), chosen: seq(SEQ - PROMPT), rejected: seq(SEQ - PROMPT) }], 0);
  const initSeconds = (performance.now() - t0) / 1000;
  const stepSeconds: number[] = [];
  const stepCpuSeconds: number[] = [];
  let loss = NaN;
  for (let s = 0; s < steps; s++) {
    const start = performance.now();
    const cpu = process.cpuUsage();
    // under LoRA only the adapter gradients are zeroed: the base gradient buffer is never touched (never resident)
    if (adapters) adapters.zeroGrad();
    else model.zeroGrad();
    loss = (await orpoStep(model, batch, { beta: 0.1, sftScope: 'full', head })).loss;
    await clipGradNorm(grads, 1, kernels);
    optimizer.update(trainable, grads);
    stepSeconds.push((performance.now() - start) / 1000);
    const used = process.cpuUsage(cpu);
    stepCpuSeconds.push((used.user + used.system) / 1e6);
  }
  const input: MemoryPlanInput = {
    config: model.config, rows: batch.rows, T: batch.T, lora: adapters ? loraOf(c) : null,
    gradientCheckpointing: c.checkpointing, fusedLoss: c.fused, weightDtype: c.bf16Base ? 'bfloat16' : 'float32',
  };
  return {
    name: c.name, threads: kernels.getThreads(), initSeconds, stepSeconds, stepCpuSeconds, peakRss: peakRssBytes(), trainable: trainable.length,
    measured: { modelArena: model.arena.bytes(), loraArena: adapters?.arena.bytes() ?? 0, lossHead: head.bytes() },
    plan: planMemory(input), loss,
  };
}

function table(reports: ChildReport[]): string {
  const gib = (n: number) => (n / 1024 ** 3).toFixed(2);
  const lines = [
    '| config | trained params | step s (wall) | step CPU s | peak RSS GiB | planned total GiB | activations (plan / arena) GiB | loss path (plan / head arena) MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of reports) {
    const p = r.plan;
    lines.push(`| ${r.name} | ${(r.trainable / 1e6).toFixed(2)}M | ${r.stepSeconds.map((s) => s.toFixed(1)).join(', ')} | ${r.stepCpuSeconds.map((s) => s.toFixed(1)).join(', ')} | ${gib(r.peakRss)} | ` +
      `${gib(p.total)} | ${gib(p.activations.total)} / ${gib(r.measured.modelArena + r.measured.loraArena)} | ` +
      `${(p.lossPath / 2 ** 20).toFixed(0)} / ${(r.measured.lossHead / 2 ** 20).toFixed(0)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { child: { type: 'string' }, steps: { type: 'string', default: '2' }, configs: { type: 'string' } } });
  const steps = Number(values.steps);
  if (values.child !== undefined) {
    const c = CASES.find((x) => x.name === values.child);
    if (!c) throw new Error(`unknown configuration '${values.child}'`);
    process.stdout.write(JSON.stringify(await runChild(c, steps)) + '\n');
    return;
  }
  const names = values.configs?.split(',') ?? CASES.map((c) => c.name);
  const reports: ChildReport[] = [];
  for (const name of names) {
    const started = performance.now();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', name, '--steps', String(steps)],
      { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`child '${name}' failed with status ${child.status}`);
    const report = JSON.parse(child.stdout.trim().split('\n').pop()!) as ChildReport;
    reports.push(report);
    process.stdout.write(`${name}: steps ${report.stepSeconds.map((s) => s.toFixed(1)).join(', ')} s ` +
      `(CPU ${report.stepCpuSeconds.map((s) => s.toFixed(1)).join(', ')} s), peak RSS ` +
      `${formatBytes(report.peakRss)}, loss ${report.loss.toFixed(4)} (${((performance.now() - started) / 1000).toFixed(0)} s in all)\n`);
  }
  const config = parseConfig(QWEN25_05B);
  const shape = { config, rows: 2, T: SEQ, lora: LORA, gradientCheckpointing: true };
  const unfused = planMemory({ ...shape, fusedLoss: false }).lossPath;
  const fused = planMemory({ ...shape, fusedLoss: true }).lossPath;
  const md = [
    `# LoRA / memory benchmark: Qwen2.5-0.5B shapes (random weights), 1 pair x ${SEQ} tokens, ${getKernels().name} kernels, ${reports[0]?.threads ?? '?'} threads`,
    '',
    table(reports),
    '',
    `Loss path (planned): unfused ${formatBytes(unfused)}, fused ${formatBytes(fused)} (-${(100 * (1 - fused / unfused)).toFixed(1)}%).`,
  ].join('\n');
  process.stdout.write(`\n${md}\n`);
  const out = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bench', 'out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'memory.json'), JSON.stringify({ reports, lossPath: { unfused, fused } }, null, 2) + '\n');
  writeFileSync(join(out, 'memory.md'), md + '\n');
}

await main();
