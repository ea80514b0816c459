// Build a model from a config: empty (for loading weights into) or randomly initialised like transformers'
// _init_weights (normal(0, initializer_range) for matrices, ones for norm weights, zeros for biases).
import type { Kernels } from '../backend/kernels.js';
import { getKernels } from '../backend/index.js';
import { Rng } from '../tensor/rng.js';
import { parseConfig } from './config.js';
import { DecoderBase, type Precision } from './base.js';
import { Gpt2Model } from './gpt2.js';
import { LlamaModel } from './llama.js';
import type { ModelConfig } from './types.js';

export { parseConfig } from './config.js';

/** A model of this config with all parameters zero. */
export function emptyModel(config: ModelConfig, kernels: Kernels = getKernels(), precision: Precision = 'float32'): DecoderBase {
  return config.family === 'gpt2' ? new Gpt2Model(config, kernels, precision) : new LlamaModel(config, kernels, precision);
}

function isNormWeight(name: string): boolean {
  return /(layernorm|ln_\d|ln_f|norm)\.weight$/.test(name);
}

/** A randomly initialised model of the given config.json contents. */
export function createModel(raw: Record<string, unknown>,
  opts: { seed?: number; kernels?: Kernels; precision?: Precision } = {}): DecoderBase {
  const config = parseConfig(raw);
  const model = emptyModel(config, opts.kernels, opts.precision);
  const rng = new Rng(opts.seed ?? 0);
  const std = typeof raw.initializer_range === 'number' ? raw.initializer_range : 0.02;
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
