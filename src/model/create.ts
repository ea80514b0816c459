// Build a model from a config: empty (for loading weights into) or randomly initialised like transformers'
// _init_weights (normal(0, initializer_range) for matrices, ones for norm weights, zeros for biases).
import type { Backend, Kernels } from '../backend/kernels.js';
import { getKernels } from '../backend/index.js';
import { Rng } from '../tensor/rng.js';
import { parseConfig, parseInitializerRange } from './config.js';
import { DecoderBase, type Precision } from './base.js';
import { Gpt2Model } from './gpt2.js';
import { LlamaModel } from './llama.js';
import { paramLayout } from './layout.js';
import type { ModelConfig } from './types.js';

export { parseConfig } from './config.js';

/** The most elements one typed array may hold in Node 20 (V8's limit); parameters and gradients are one each. */
export const MAX_PARAMETERS = 2 ** 32;

/**
 * Refuses a config whose parameters cannot be allocated, before anything is: the typed-array constructor would
 * only say "Invalid typed array length: N".
 */
export function checkParameterCount(config: ModelConfig): void {
  const layout = paramLayout(config);
  const total = layout.reduce((n, p) => n + p.size, 0);
  if (total <= MAX_PARAMETERS) return;
  const largest = layout.reduce((a, b) => (b.size > a.size ? b : a));
  throw new Error(`this ${config.modelType} config has ${total} parameters (largest: ${largest.name} ` +
    `[${largest.shape.join(', ')}]); orpo-ts holds a model's parameters in one buffer of at most ${MAX_PARAMETERS} ` +
    `values: check vocab_size, hidden_size, intermediate_size and the layer count in config.json`);
}

/** A model of this config with all parameters zero. */
export function emptyModel(config: ModelConfig, kernels: Kernels = getKernels(), precision: Precision = 'float32'): DecoderBase {
  checkParameterCount(config);
  return config.family === 'gpt2' ? new Gpt2Model<Float32Array, Int32Array>(config, kernels, precision)
    : new LlamaModel<Float32Array, Int32Array>(config, kernels, precision);
}

function isNormWeight(name: string): boolean {
  return /(layernorm|ln_\d|ln_f|norm)\.weight$/.test(name);
}

/** A randomly initialised model of the given config.json contents. */
export function createModel(raw: Record<string, unknown>,
  opts: { seed?: number; kernels?: Kernels; precision?: Precision } = {}): DecoderBase {
  const config = parseConfig(raw);
  const std = parseInitializerRange(raw);
  const model = emptyModel(config, opts.kernels, opts.precision);
  const rng = new Rng(opts.seed ?? 0);
  for (const p of model.layout) {
    const view = model.param(p.name);
    if (isNormWeight(p.name)) view.fill(1);
    else if (p.name.endsWith('.bias')) view.fill(0);
    else {
      // GPT-2 scales residual output projections by 1/sqrt(2 n_layer), as in transformers
      const s = config.family === 'gpt2' && p.name.endsWith('c_proj.weight') ? std / Math.sqrt(2 * config.numLayers) : std;
      for (let i = 0; i < view.length; i++) view[i] = rng.normal() * s;
    }
  }
  return model;
}

/**
 * The same model on another backend (e.g. WebGPU): a model of `host`'s config whose buffers `kernels` owns, holding
 * a copy of host's parameters. Settings (checkpointing, frozen base) travel with it; adapters do not (attach them
 * to the copy). Only float32 models move: float64 exists for the TypeScript backend's finite-difference tests.
 */
export function modelOnBackend<F, I>(host: DecoderBase, kernels: Backend<F, I>): DecoderBase<F, I> {
  if (host.precision !== 'float32') throw new Error('modelOnBackend: only float32 models move to another backend');
  const config = host.config;
  const model: DecoderBase<F, I> = config.family === 'gpt2' ? new Gpt2Model<F, I>(config, kernels) : new LlamaModel<F, I>(config, kernels);
  kernels.upload(model.params, host.params);
  model.gradientCheckpointing = host.gradientCheckpointing;
  model.trainBase = host.trainBase;
  return model;
}

/** host.params = the parameters of `model` (its copy on another backend), read back */
export async function copyParamsToHost<F, I>(model: DecoderBase<F, I>, host: DecoderBase): Promise<void> {
  host.params.set(await model.kernels.download(model.params));
}
