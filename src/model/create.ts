// Build a model from a config: empty (for loading weights into) or randomly initialised like transformers'
// _init_weights (normal(0, initializer_range) for matrices, ones for norm weights, zeros for biases).
import type { Backend, Kernels } from '../backend/kernels.js';
import { getKernels } from '../backend/index.js';
import { bf16ToF32, f32ToBf16 } from '../tensor/dtype.js';
import { Rng } from '../tensor/rng.js';
import { parseConfig, parseInitializerRange } from './config.js';
import { DecoderBase, type Precision } from './base.js';
import { Gpt2Model } from './gpt2.js';
import { LlamaModel } from './llama.js';
import { paramLayout, type WeightDtype } from './layout.js';
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

/**
 * A model of this config with all parameters zero; `weightDtype` bfloat16 keeps its matrices in a frozen bfloat16
 * buffer (torch_dtype bfloat16: a LoRA base in half the memory).
 */
export function emptyModel(config: ModelConfig, kernels: Kernels = getKernels(), precision: Precision = 'float32',
  weightDtype: WeightDtype = 'float32'): DecoderBase {
  checkParameterCount(config);
  return config.family === 'gpt2' ? new Gpt2Model<Float32Array, Int32Array>(config, kernels, precision, weightDtype)
    : new LlamaModel<Float32Array, Int32Array>(config, kernels, precision, weightDtype);
}

/** The bit patterns of a host model's bfloat16 tensor `name`, in place (writing them writes the model). */
export function bf16Bits(model: DecoderBase, name: string): Uint16Array {
  const w = model.bf16Weight(name);
  return new Uint16Array(w.data.buffer, w.data.byteOffset, w.length);
}

/**
 * Sets parameter `name` of a host model from float32 values (internal layout): copied, or rounded to bfloat16
 * (nearest, ties to even) where the model stores the tensor in bfloat16.
 */
export function setParam(model: DecoderBase, name: string, values: Float32Array): void {
  if (model.spec(name).bf16) f32ToBf16(values, bf16Bits(model, name));
  else model.param(name).set(values);
}

/** Parameter `name` of a host model as float32 values: a view, or a widened copy of a bfloat16 tensor. */
export function readParam(model: DecoderBase, name: string): Float32Array {
  return model.spec(name).bf16 ? bf16ToF32(bf16Bits(model, name)) : model.param(name);
}

/**
 * A float32 copy of a host model whose base is bfloat16 (the model itself when it is float32): what saving writes
 * (GGUF export widens tensor by tensor through readParam instead). The values are the bfloat16 ones, exactly.
 */
export function widenModel(model: DecoderBase): DecoderBase {
  if (model.weightDtype === 'float32') return model;
  const wide = emptyModel(model.config, model.kernels as Kernels);
  for (const p of model.layout) wide.param(p.name).set(readParam(model, p.name));
  wide.trainBase = false;
  wide.gradientCheckpointing = model.gradientCheckpointing;
  return wide;
}

function isNormWeight(name: string): boolean {
  return /(layernorm|ln_\d|ln_f|norm)\.weight$/.test(name);
}

/** A randomly initialised model of the given config.json contents. */
export function createModel(raw: Record<string, unknown>,
  opts: { seed?: number; kernels?: Kernels; precision?: Precision; weightDtype?: WeightDtype } = {}): DecoderBase {
  const config = parseConfig(raw);
  const std = parseInitializerRange(raw);
  const model = emptyModel(config, opts.kernels, opts.precision, opts.weightDtype);
  const rng = new Rng(opts.seed ?? 0);
  for (const p of model.layout) {
    // a bfloat16 tensor is drawn in float32 and rounded, so both dtypes draw the same values
    const view = p.bf16 ? new Float32Array(p.size) : model.param(p.name);
    if (p.bf16) setParam(model, p.name, initialValues(view, p.name, config, std, rng));
    else initialValues(view, p.name, config, std, rng);
  }
  return model;
}

/** fills view with tensor `name`'s initial values (see createModel) and returns it */
function initialValues(view: Float32Array, name: string, config: ModelConfig, std: number, rng: Rng): Float32Array {
  if (isNormWeight(name)) view.fill(1);
  else if (name.endsWith('.bias')) view.fill(0);
  else {
    // GPT-2 scales residual output projections by 1/sqrt(2 n_layer), as in transformers
    const s = config.family === 'gpt2' && name.endsWith('c_proj.weight') ? std / Math.sqrt(2 * config.numLayers) : std;
    for (let i = 0; i < view.length; i++) view[i] = rng.normal() * s;
  }
  return view;
}

/**
 * The same model on another backend (e.g. WebGPU): a model of `host`'s config whose buffers `kernels` owns, holding
 * a copy of host's parameters. Settings (checkpointing, frozen base) travel with it; adapters do not (attach them
 * to the copy). Only float32 models move: float64 exists for the TypeScript backend's finite-difference tests.
 */
export function modelOnBackend<F, I>(host: DecoderBase, kernels: Backend<F, I>): DecoderBase<F, I> {
  if (host.precision !== 'float32') throw new Error('modelOnBackend: only float32 models move to another backend');
  const config = host.config;
  const model: DecoderBase<F, I> = config.family === 'gpt2' ? new Gpt2Model<F, I>(config, kernels, 'float32', host.weightDtype)
    : new LlamaModel<F, I>(config, kernels, 'float32', host.weightDtype);
  kernels.upload(model.params, host.params);
  // a bfloat16 base travels as its bit patterns (frozen: it never comes back)
  // (upload copies bytes, NaN payloads and all, so the carrier's float32 elements need no conversion)
  if (host.frozen && model.frozen) kernels.upload(model.frozen.data, host.frozen.data);
  model.gradientCheckpointing = host.gradientCheckpointing;
  model.trainBase = host.trainBase;
  return model;
}

/** host.params = the parameters of `model` (its copy on another backend), read back */
export async function copyParamsToHost<F, I>(model: DecoderBase<F, I>, host: DecoderBase): Promise<void> {
  host.params.set(await model.kernels.download(model.params));
}
