// Memory planning for `orpo train --dry-run`: the bytes a training step needs for weights, gradients, AdamW
// moments, LoRA adapters, saved activations and the loss path, from a model config, a batch shape and the
// LoRA / checkpointing / fused-loss settings. Pure arithmetic on shapes: nothing is allocated, so a plan for a
// model larger than this machine's memory costs nothing.
//
// The activation terms mirror the arena buffers that src/model/{llama,gpt2}.ts, src/lora/adapters.ts and the
// loss heads allocate (by name, in the comments below); test/memory.test.ts checks each term against the
// arenas' measured bytes after a real step, so a change to the model that forgets this file fails there.
import type { ModelConfig } from '../model/types.js';
import { layoutSizes, paramLayout, type WeightDtype } from '../model/layout.js';
import { selectLoraTargets } from '../lora/config.js';
import { DEFAULT_CHUNK_ROWS } from '../loss/fused-head.js';

export interface MemoryPlanInput {
  config: ModelConfig;
  /** rows of the forward pass per micro-batch (one per pair with a shared prompt; 2 x pairs as two rows) */
  rows: number;
  /** padded row length */
  T: number;
  /** LoRA settings, or null for full fine-tuning */
  lora: { r: number; targetModules: readonly string[]; dropout: number } | null;
  gradientCheckpointing: boolean;
  fusedLoss: boolean;
  /** rows per chunk of the fused head (default DEFAULT_CHUNK_ROWS) */
  chunkRows?: number;
  /** rows of the batch that are scored (have a next token); default rows * (T - 1), every row full length */
  scoredRows?: number;
  /** bytes per float of parameters and activations (4; 8 for the float64 test models) */
  bytesPerFloat?: number;
  /** rows hold a shared prompt and two continuations (the default layout; see loss/pair-rows.ts) */
  packed?: boolean;
  /** how the base holds its weights (default float32): bfloat16 keeps the matrices in 2 bytes each (LoRA only) */
  weightDtype?: WeightDtype;
}

export interface ActivationPlan {
  /** residual stream entering every layer (x0..xL): kept with or without checkpointing */
  residual: number;
  /** one layer's saved activations */
  perLayer: number;
  /** layers whose activations are held at once: L, or 1 with checkpointing (+ the recomputed layer's output) */
  saved: number;
  /** final norm output and statistics */
  final: number;
  /** gradient buffers of one layer's backward, shared by all layers */
  backwardScratch: number;
  /** LoRA: each module's x A^T and the dropout scratch */
  lora: number;
  /** the step's inputs in the backend: token ids, positions, packed rows' hidden keys and gathered RoPE tables */
  inputs: number;
  total: number;
}

export interface MemoryPlan {
  parameters: number;
  trainableParameters: number;
  weights: number;
  /** gradients of trained base parameters (0 under LoRA: the buffer is never touched, so never resident) */
  gradients: number;
  /** AdamW first and second moments of the trained parameters */
  optimizer: number;
  /** LoRA factors and their gradients */
  adapters: number;
  activations: ActivationPlan;
  /** the loss head's buffers (logits of every scored row, or one chunk of them) + the step's dhidden */
  lossPath: number;
  total: number;
}

// Floats per token of one layer's saved activations (names as in the model's arena).
function layerFloatsPerToken(c: ModelConfig): number {
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  if (c.family === 'gpt2') {
    // h1, qkv (3C), att, x2, h2 | mean1, rstd1, mean2, rstd2 | lse (NH) | fc, gelu
    return 7 * C + 4 + c.numHeads + 2 * I;
  }
  const Q = c.numHeads * c.headDim;
  const KV = c.numKvHeads * c.headDim;
  // h1, x2, h2 | rstd1, rstd2 | q, att | k, v | lse (NH) | gate, up, m
  let n = 3 * C + 2 + 2 * Q + 2 * KV + c.numHeads + 3 * I;
  // qwen3: qraw, kraw, and the per-head rstd of q and k
  if (c.qkNorm) n += Q + KV + c.numHeads + c.numKvHeads;
  return n;
}

// Floats per token of the gradient scratch one layer's backward uses.
function backwardFloatsPerToken(c: ModelConfig): number {
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  // dx (the carried residual gradient) is counted here too
  if (c.family === 'gpt2') return 6 * C + 2 * I; // dx, dh, datt, dqkv (3C) | dgelu, dfc
  const Q = c.numHeads * c.headDim;
  const KV = c.numKvHeads * c.headDim;
  return 2 * C + 3 * I + 3 * Q + 3 * KV; // dx, dh | dm, dg, du | datt, dq, dqpre | dk, dv, dkpre
}

function finalFloatsPerToken(c: ModelConfig): number {
  return c.hiddenSize + (c.family === 'gpt2' ? 2 : 1); // hidden | meanf?, rstdf
}

export function planMemory(p: MemoryPlanInput): MemoryPlan {
  const c = p.config;
  const f = p.bytesPerFloat ?? 4;
  const N = p.rows * p.T;
  const L = c.numLayers;
  const C = c.hiddenSize;
  const layout = paramLayout(c);
  const parameters = layout.reduce((n, s) => n + s.size, 0);

  let adapterParams = 0;
  let loraActivations = 0;
  if (p.lora !== null) {
    const targets = selectLoraTargets(c, layout, p.lora.targetModules);
    const r = p.lora.r;
    adapterParams = targets.reduce((n, t) => n + r * (t.inFeatures + t.outFeatures), 0);
    // zs{i} (N, r) per module, dz (N, r); with dropout xdrop and dxdrop (N, widest input)
    loraActivations = (targets.length + 1) * N * r;
    if (p.lora.dropout > 0) loraActivations += 2 * N * Math.max(...targets.map((t) => t.inFeatures));
  }
  const trainableParameters = p.lora === null ? parameters : adapterParams;

  const perLayer = N * layerFloatsPerToken(c) * f;
  const residual = (L + 1) * N * C * f;
  // with checkpointing: one shared slot plus ckpt.out, the recomputed layer's output
  const saved = p.gradientCheckpointing ? perLayer + N * C * f : L * perLayer;
  const final = N * finalFloatsPerToken(c) * f;
  const backwardScratch = N * backwardFloatsPerToken(c) * f;
  const lora = loraActivations * f;
  const inputs = inputBytes(c, p.rows, N, p.packed ?? true, f);
  const activations: ActivationPlan = {
    residual, perLayer, saved, final, backwardScratch, lora, inputs, total: residual + saved + final + backwardScratch + lora + inputs,
  };

  const lossPath = lossPathBytes(c, N, p.scoredRows ?? p.rows * (p.T - 1), p.fusedLoss, p.chunkRows ?? DEFAULT_CHUNK_ROWS, f,
    p.lora !== null);
  // a bfloat16 base: its matrices at 2 bytes, norms and biases float32 (what DecoderBase allocates)
  const sizes = layoutSizes(paramLayout(c, p.weightDtype ?? 'float32'));
  const weights = sizes.float32 * f + sizes.bf16 * 2;
  const gradients = p.lora === null ? parameters * f : 0;
  const optimizer = 2 * trainableParameters * 4;
  const adapters = 2 * adapterParams * f;
  return {
    parameters, trainableParameters, weights, gradients, optimizer, adapters, activations, lossPath,
    total: weights + gradients + optimizer + adapters + activations.total + lossPath,
  };
}

/**
 * The inputs the model uploads per forward (int32 unless said): ids (N); GPT-2's positions (N); packed rows' hidden
 * keys (2 per row) and, for RoPE models, each token's position (N) and its gathered cos and sin (N, HD/2) floats.
 */
function inputBytes(c: ModelConfig, rows: number, N: number, packed: boolean, f: number): number {
  let bytes = N * 4;
  if (c.family === 'gpt2') bytes += N * 4;
  if (packed) {
    bytes += 2 * rows * 4;
    if (c.family !== 'gpt2') bytes += N * 4 + N * c.headDim * f;
  }
  return bytes;
}

/**
 * The loss head's arena for N hidden rows of which M are scored (a shared prompt's last row twice), plus the
 * (N, C) dhidden orpoStep hands to backward.
 * Unfused: packed hidden and dhidden (M, C), logits (M, V), logp/lse/dlogp (M).
 * Fused: the same but one chunk of m = min(chunkRows, M) rows for the hidden, dhidden and logits blocks; with a
 * frozen head (LoRA) the fused head keeps each row's d logp / d hidden (M, C) and a chunk of ones (m) instead of
 * the chunk's dhidden.
 */
export function lossPathBytes(c: ModelConfig, N: number, M: number, fused: boolean, chunkRows: number, bytesPerFloat = 4,
  frozenHead = false): number {
  const V = c.vocabSize;
  const C = c.hiddenSize;
  const block = fused ? Math.min(chunkRows, M) : M;
  const frozenFused = fused && frozenHead ? M * C + block - block * C : 0;
  // + the scored rows' indices and targets, int32
  return (block * (2 * C + V) + 3 * M + N * C + frozenFused) * bytesPerFloat + 2 * M * 4;
}

const GiB = 1024 ** 3;

export function formatBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/** Peak resident memory of this process so far (bytes). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** The plan as the lines `orpo train --dry-run` prints. */
export function formatMemoryPlan(plan: MemoryPlan, input: MemoryPlanInput): string {
  const a = plan.activations;
  const mode = input.lora === null ? 'full fine-tuning' : `LoRA r=${input.lora.r} on ${input.lora.targetModules.join(',')}`;
  const rows: [string, number, string][] = [
    ['weights', plan.weights, `${(plan.parameters / 1e6).toFixed(1)}M parameters, ${input.weightDtype === 'bfloat16' ? 'matrices bfloat16 (frozen), norms and biases float32' : 'float32'}`],
    ['gradients', plan.gradients, input.lora === null ? 'every parameter' : 'none: the base is frozen'],
    ['optimizer', plan.optimizer, `AdamW moments of ${(plan.trainableParameters / 1e6).toFixed(2)}M trained parameters`],
    ['adapters', plan.adapters, input.lora === null ? '-' : 'LoRA factors + gradients'],
    ['activations', a.total, `${input.gradientCheckpointing ? 'checkpointed: layer inputs + one layer' : `${input.config.numLayers} layers`}` +
      ` (${formatBytes(a.perLayer)} per layer, residual stream ${formatBytes(a.residual)}, backward scratch ${formatBytes(a.backwardScratch)})`],
    ['loss path', plan.lossPath, input.fusedLoss ? `fused, ${input.chunkRows ?? DEFAULT_CHUNK_ROWS} rows per chunk` : 'unfused: logits of every scored row'],
  ];
  const lines = [`memory plan: ${mode}, ${input.rows} rows x ${input.T} tokens`];
  for (const [name, bytes, note] of rows) lines.push(`  ${name.padEnd(12)} ${formatBytes(bytes).padStart(11)}  ${note}`);
  lines.push(`  ${'total'.padEnd(12)} ${formatBytes(plan.total).padStart(11)}  (+ the Node.js runtime, tokenizer and data)`);
  return lines.join('\n');
}
