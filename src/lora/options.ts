// `orpo train`'s LoRA and memory options, one table the trainer's option table spreads in (TrainConfig extends
// LoraMemoryConfig), and what they turn into: the adapters, the buffers the optimizer trains, the loss heads,
// the memory plan `--dry-run` prints. Pure: no files, no argv.
import type { DecoderBase } from '../model/base.js';
import type { CausalLM, ModelConfig } from '../model/types.js';
import { FusedLogprobHead } from '../loss/fused-head.js';
import { UnfusedLogprobHead, type TokenLogprobHead } from '../loss/logprob-head.js';
import type { OptionTable } from '../train/options.js';
import { formatMemoryPlan, planMemory, type MemoryPlanInput } from '../train/memory.js';
import { attachLora, type LoraAdapters } from './adapters.js';
import { defaultTargetModules, parseTargetModules, type LoraSettings } from './config.js';

export interface LoraMemoryConfig {
  lora_r: number | null;
  lora_alpha: number;
  lora_dropout: number;
  lora_target_modules: string | null;
  gradient_checkpointing: boolean;
  /** null: decided by the size of the logits (fusedLossFor) */
  fused_loss: boolean | null;
  dry_run: boolean;
}

// defaults as TRL's ModelConfig (lora_r 16, lora_alpha 32, lora_dropout 0.05); lora_r unset = full fine-tuning
export const LORA_MEMORY_OPTIONS: OptionTable<LoraMemoryConfig> = {
  lora_r: { type: 'int', default: null, min: 1, symbol: 'r', group: 'LoRA and memory', doc: 'train LoRA adapters of this rank instead of every weight (none: full fine-tuning; TRL uses 16)' },
  lora_alpha: { type: 'float', default: 32, min: 0, minExclusive: true, symbol: 'α', group: 'LoRA and memory', doc: 'LoRA scaling numerator: the update is (alpha / r) B A' },
  lora_dropout: { type: 'float', default: 0.05, min: 0, max: 0.99, group: 'LoRA and memory', doc: 'dropout on the adapters\' input while training (seeded)' },
  lora_target_modules: { type: 'string', default: null, group: 'LoRA and memory', doc: 'comma-separated modules to adapt (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; GPT-2 c_attn,c_proj,c_fc; all-linear); none: PEFT\'s default for the model type' },
  gradient_checkpointing: { type: 'bool', default: false, group: 'LoRA and memory', doc: 'keep only each layer\'s input and recompute the layer in backward (same gradients, ~1/3 more compute)' },
  fused_loss: { type: 'bool', default: null, group: 'LoRA and memory', doc: 'chunked lm_head + log-softmax so the (tokens x vocab) logits never exist, at the cost of a second pass over the vocabulary (none: only when those logits would pass 256 MiB)' },
  dry_run: { type: 'bool', default: false, group: 'LoRA and memory', doc: 'print the memory plan (weights, gradients, optimizer, activations, loss path) and exit without training' },
};

/** The LoRA settings the options ask for, or null for full fine-tuning. */
export function loraSettingsOf(c: LoraMemoryConfig, config: ModelConfig): LoraSettings | null {
  if (c.lora_r === null) return null;
  return {
    r: c.lora_r, alpha: c.lora_alpha, dropout: c.lora_dropout,
    targetModules: c.lora_target_modules === null ? defaultTargetModules(config) : parseTargetModules(c.lora_target_modules),
  };
}

/** Fresh PEFT-initialised adapters on the model (base frozen), or null for full fine-tuning. */
export function attachLoraFromOptions<F, I>(model: DecoderBase<F, I>, c: LoraMemoryConfig, seed: number): LoraAdapters<F, I> | null {
  const settings = loraSettingsOf(c, model.config);
  return settings === null ? null : attachLora(model, settings, { seed });
}

/** What the optimizer updates and clips: the adapters under LoRA, every parameter otherwise. */
export interface TrainableBuffers<F = Float32Array> {
  params: F;
  grads: F;
  /** elements of params (and grads) */
  size: number;
  /** zeroes these gradients only: under LoRA the base gradient buffer is never touched, so it never becomes resident */
  zeroGrad(): void;
}

export function trainableBuffers<F, I>(model: CausalLM<F, I>, adapters: LoraAdapters<F, I> | null): TrainableBuffers<F> {
  if (adapters === null) return modelTrainable(model);
  return { params: adapters.params, grads: adapters.grads, size: adapters.size, zeroGrad: () => adapters.zeroGrad() };
}

/** every parameter of the model trains (full fine-tuning) */
export function modelTrainable<F, I>(model: CausalLM<F, I>): TrainableBuffers<F> {
  return { params: model.params, grads: model.grads, size: model.kernels.lengthOf(model.params), zeroGrad: () => model.zeroGrad() };
}

/** With fused_loss unset, the unfused head (no second pass over the vocabulary) while its logits stay under this. */
export const FUSED_LOSS_AUTO_BYTES = 256 * 1024 ** 2;

/**
 * fused_loss as set; unset, whether the unfused head's float32 logits for the largest micro-batch (`pairs` pairs,
 * every row max_length tokens) would pass FUSED_LOSS_AUTO_BYTES: a 150k vocabulary at 1024 tokens always does, a
 * small model's 8k vocabulary does not, and there the fused head's recomputed logits cost about a tenth of a step
 * (bench 5M: 357 vs 319 ms, 30M: 2035 vs 1902 ms).
 */
export function fusedLossFor(c: Pick<LoraMemoryConfig, 'fused_loss'>, config: ModelConfig, pairs: number, maxLength: number): boolean {
  if (c.fused_loss !== null) return c.fused_loss;
  return 2 * pairs * maxLength * config.vocabSize * 4 > FUSED_LOSS_AUTO_BYTES;
}

/**
 * The loss heads of a run (call after attaching adapters): for training steps, and for evaluation (forward only).
 * With a frozen head (LoRA) the training head precomputes d logp / d hidden in forward, which evaluation does not
 * need.
 */
export function lossHeads<F, I>(model: CausalLM<F, I>, fused: boolean): { train: TokenLogprobHead<F, I>; eval: TokenLogprobHead<F, I> } {
  const k = model.kernels;
  const precision = model.precision;
  if (!fused) {
    const head = new UnfusedLogprobHead(k, precision);
    return { train: head, eval: head };
  }
  const evalHead = new FusedLogprobHead(k, { precision });
  return { train: model.trainBase ? evalHead : new FusedLogprobHead(k, { precision, frozenWeight: true }), eval: evalHead };
}

/**
 * `orpo train --dry-run`: the plan for the largest micro-batch, 2 x max_length tokens per pair (two full rows, or
 * the most one shared-prompt row prompt | chosen | rejected can hold).
 */
export function trainMemoryPlanText(config: ModelConfig,
  c: LoraMemoryConfig & { per_device_train_batch_size: number; max_length: number; torch_dtype?: 'float32' | 'bfloat16' }): string {
  const lora = loraSettingsOf(c, config);
  const input: MemoryPlanInput = {
    config, rows: 2 * c.per_device_train_batch_size, T: c.max_length,
    lora: lora === null ? null : { r: lora.r, targetModules: lora.targetModules, dropout: lora.dropout },
    gradientCheckpointing: c.gradient_checkpointing,
    fusedLoss: fusedLossFor(c, config, c.per_device_train_batch_size, c.max_length),
    // a bfloat16 base exists only under LoRA (torch_dtype auto: the caller resolves it from the weight files first)
    weightDtype: lora !== null && c.torch_dtype === 'bfloat16' ? 'bfloat16' : 'float32',
  };
  return formatMemoryPlan(planMemory(input), input);
}
