// What llama.cpp needs to run a model of each family orpo-ts trains: the GGUF architecture name, its
// hyper-parameter keys, and every parameter under llama.cpp's tensor name in the layout its graph expects
// (read from llama.cpp's src/models/*.cpp and convert_hf_to_gguf.py, the reference converter):
//   - llama / mistral ("llama" in GGUF): llama.cpp rotates adjacent pairs (x[2i], x[2i+1]) while transformers
//     rotates halves (x[i], x[i + d/2]), so the rows of q_proj and k_proj (and their biases) are permuted within
//     each head, as convert_hf_to_gguf.py's LlamaModel.permute does. Llama 3 RoPE scaling becomes the
//     `rope_freqs.weight` tensor of per-frequency divisors.
//   - qwen2 / qwen3: llama.cpp rotates halves there too (NEOX RoPE), so no permutation.
//   - gpt2: transformers' Conv1D stores (in, out), but orpo-ts keeps every linear weight as (out, in) internally,
//     which is exactly ggml's [in, out] ne order: no transpose at export.
// A tied head is written once (token_embd); llama.cpp reuses it when `output.weight` is absent.
// Whatever llama.cpp's graph for the architecture cannot compute is refused here with the reason.

import { readParam } from '../../model/create.js';
import type { DecoderBase } from '../../model/base.js';
import type { ModelConfig, ParamSpec } from '../../model/types.js';
import type { GgufMetadata, GgufTensorPlan } from './encode.js';
import { Q8_0_BLOCK, type GgmlType } from './quantize.js';

export type GgufArchitecture = 'llama' | 'qwen2' | 'qwen3' | 'gpt2';

/** The storage types `orpo export gguf --dtype` offers. */
export type GgufDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'bf16', 'q8_0'];

/** llama_ftype values (general.file_type): what most of the weights are stored as. */
const FILE_TYPE: Readonly<Record<GgufDtype, number>> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const MATRIX_TYPE: Readonly<Record<GgufDtype, GgmlType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' };

/** ggml's quantisation format version (GGML_QNT_VERSION), written by every converter. */
const GGML_QUANTIZATION_VERSION = 2;

function refuse(config: ModelConfig, why: string): never {
  throw new Error(`cannot export this ${config.modelType} model to GGUF: ${why}`);
}

/** The GGUF architecture of a model, after checking llama.cpp can compute everything its config asks for. */
export function ggufArchitecture(config: ModelConfig): GgufArchitecture {
  const isLlama = config.modelType === 'llama' || config.modelType === 'mistral';
  if (config.ropeScaling !== null && !isLlama) {
    refuse(config, `llama.cpp's ${config.modelType} graph has no Llama 3 rope_scaling (rope_freqs)`);
  }
  switch (config.modelType) {
    case 'llama':
    case 'mistral':
      // llama.cpp's llama graph takes every optional bias orpo-ts's llama has (q/k/v/o, MLP)
      return 'llama';
    case 'qwen2':
      // llama.cpp's qwen2 graph sizes q and o as (hidden, hidden): heads * head_dim must be the hidden size
      if (config.numHeads * config.headDim !== config.hiddenSize) {
        refuse(config, `llama.cpp's qwen2 graph needs num_attention_heads * head_dim (${config.numHeads} * ${config.headDim}) ` +
          `to equal hidden_size (${config.hiddenSize})`);
      }
      if (config.mlpBias) refuse(config, "llama.cpp's qwen2 graph has no MLP biases");
      return 'qwen2';
    case 'qwen3':
      if (config.oBias) refuse(config, "attention_bias=true: llama.cpp's qwen3 graph has no o_proj bias");
      if (config.mlpBias) refuse(config, "llama.cpp's qwen3 graph has no MLP biases");
      return 'qwen3';
    case 'gpt2':
      return 'gpt2';
  }
}

/**
 * The context length to advertise. llama.cpp's llama/qwen2 graphs attend over the whole context, so a model
 * trained with a sliding window computes what it was trained to only up to that window: advertise the window.
 */
export function ggufContextLength(config: ModelConfig): number {
  return config.slidingWindow !== null ? Math.min(config.slidingWindow, config.maxPositions) : config.maxPositions;
}

/** general.* and the architecture's hyper-parameter keys. */
export function architectureMetadata(config: ModelConfig, dtype: GgufDtype, name: string): GgufMetadata {
  const arch = ggufArchitecture(config);
  const m: GgufMetadata = new Map();
  m.set('general.architecture', { type: 'string', value: arch });
  m.set('general.type', { type: 'string', value: 'model' });
  m.set('general.name', { type: 'string', value: name });
  m.set('general.file_type', { type: 'u32', value: FILE_TYPE[dtype] });
  m.set('general.quantization_version', { type: 'u32', value: GGML_QUANTIZATION_VERSION });
  const k = (key: string): string => `${arch}.${key}`;
  m.set(k('vocab_size'), { type: 'u32', value: config.vocabSize });
  m.set(k('context_length'), { type: 'u32', value: ggufContextLength(config) });
  m.set(k('embedding_length'), { type: 'u32', value: config.hiddenSize });
  m.set(k('block_count'), { type: 'u32', value: config.numLayers });
  m.set(k('feed_forward_length'), { type: 'u32', value: config.intermediateSize });
  m.set(k('attention.head_count'), { type: 'u32', value: config.numHeads });
  m.set(k('attention.head_count_kv'), { type: 'u32', value: config.numKvHeads });
  if (arch === 'gpt2') {
    m.set(k('attention.layer_norm_epsilon'), { type: 'f32', value: config.normEps });
    return m;
  }
  m.set(k('attention.layer_norm_rms_epsilon'), { type: 'f32', value: config.normEps });
  m.set(k('rope.freq_base'), { type: 'f32', value: config.ropeTheta });
  // llama.cpp assumes head_dim = hidden / heads unless told; say it always, it costs nothing
  m.set(k('attention.key_length'), { type: 'u32', value: config.headDim });
  m.set(k('attention.value_length'), { type: 'u32', value: config.headDim });
  m.set(k('rope.dimension_count'), { type: 'u32', value: config.headDim });
  return m;
}

/**
 * Llama 3 RoPE scaling as llama.cpp applies it: a divisor per rotary frequency (head_dim / 2 of them),
 * computed as transformers' _compute_llama3_parameters does.
 */
export function llama3RopeFactors(config: ModelConfig): Float32Array {
  const s = config.ropeScaling;
  if (s === null) throw new Error('llama3RopeFactors: the model has no rope_scaling');
  const half = config.headDim / 2;
  const factors = new Float32Array(half);
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = 1 / config.ropeTheta ** ((2 * i) / config.headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) factors[i] = 1;
    else if (wavelen > lowFreqWavelen) factors[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      factors[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return factors;
}

/**
 * Rows of a (heads * headDim, cols) projection reordered within each head from transformers' halves layout
 * (row i pairs with row i + headDim/2) to llama.cpp's interleaved one (row 2i pairs with row 2i + 1), as
 * convert_hf_to_gguf.py's LlamaModel.permute. A bias is the cols = 1 case.
 */
export function permuteRowsForInterleavedRope(w: Float32Array, heads: number, cols: number): Float32Array {
  const headDim = w.length / cols / heads;
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let part = 0; part < 2; part++) {
      for (let i = 0; i < half; i++) {
        const from = (h * headDim + part * half + i) * cols;
        const to = (h * headDim + 2 * i + part) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** One parameter's place in a GGUF file: its name there and how its rows must be reordered. */
export interface GgufTensorMapping {
  /** Hugging Face parameter name inside orpo-ts */
  source: string;
  /** llama.cpp's tensor name */
  name: string;
  /** heads whose rows are permuted for interleaved RoPE (llama q/k), or null */
  permuteHeads: number | null;
}

/** The name mapping of every parameter of a model of this config (row permutation included). */
export function tensorMappings(config: ModelConfig, layoutNames: readonly string[]): GgufTensorMapping[] {
  const arch = ggufArchitecture(config);
  const out: GgufTensorMapping[] = [];
  for (const source of layoutNames) {
    const name = ggufTensorName(arch === 'gpt2' ? GPT2_NAMES : LLAMA_NAMES, source);
    if (name === null) refuse(config, `parameter '${source}' has no llama.cpp tensor`);
    let permuteHeads: number | null = null;
    if (arch === 'llama') {
      if (/\.q_proj\.(weight|bias)$/.test(source)) permuteHeads = config.numHeads;
      if (/\.k_proj\.(weight|bias)$/.test(source)) permuteHeads = config.numKvHeads;
    }
    out.push({ source, name, permuteHeads });
  }
  return out;
}

/** Hugging Face module names -> llama.cpp tensor names, per family: whole-model modules, then per-layer ones. */
interface TensorNameTable {
  /** modules outside the layers (the suffix .weight / .bias is kept) */
  model: Readonly<Record<string, string>>;
  /** what precedes the layer number, e.g. "model.layers." */
  layerPrefix: string;
  /** modules inside a layer */
  layer: Readonly<Record<string, string>>;
}

const LLAMA_NAMES: TensorNameTable = {
  model: { 'model.embed_tokens': 'token_embd', 'model.norm': 'output_norm', 'lm_head': 'output' },
  layerPrefix: 'model.layers.',
  layer: {
    'input_layernorm': 'attn_norm', 'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v',
    'self_attn.o_proj': 'attn_output', 'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm',
    'post_attention_layernorm': 'ffn_norm', 'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
  },
};

const GPT2_NAMES: TensorNameTable = {
  model: { 'transformer.wte': 'token_embd', 'transformer.wpe': 'position_embd', 'transformer.ln_f': 'output_norm', 'lm_head': 'output' },
  layerPrefix: 'transformer.h.',
  layer: { 'ln_1': 'attn_norm', 'attn.c_attn': 'attn_qkv', 'attn.c_proj': 'attn_output', 'ln_2': 'ffn_norm', 'mlp.c_fc': 'ffn_up', 'mlp.c_proj': 'ffn_down' },
};

function ggufTensorName(table: TensorNameTable, source: string): string | null {
  const m = /^(.+)\.(weight|bias)$/.exec(source);
  if (m === null) return null;
  const [, module, kind] = m as unknown as [string, string, string];
  const whole = table.model[module];
  if (whole !== undefined) return `${whole}.${kind}`;
  if (!module.startsWith(table.layerPrefix)) return null;
  const rest = module.slice(table.layerPrefix.length);
  const dot = rest.indexOf('.');
  const layer = rest.slice(0, dot);
  const name = table.layer[rest.slice(dot + 1)];
  return dot < 0 || !/^\d+$/.test(layer) || name === undefined ? null : `blk.${layer}.${name}.${kind}`;
}

/**
 * The stored type of one tensor, by convert_hf_to_gguf.py's rules: vectors (norms, biases, RoPE factors) and
 * GPT-2's position embedding stay F32; matrices take the requested type, except that Q8_0 needs rows of a
 * multiple of 32 and falls back to F16 otherwise.
 */
export function storedType(name: string, shape: readonly number[], dtype: GgufDtype): GgmlType {
  if (shape.length < 2 || name === 'position_embd.weight') return 'F32';
  const wanted = MATRIX_TYPE[dtype];
  if (wanted === 'Q8_0' && shape[shape.length - 1]! % Q8_0_BLOCK !== 0) return 'F16';
  return wanted;
}

/** Reads one parameter in orpo-ts's internal layout (linear weights (out, in)), by its Hugging Face name. */
export type ParamReader = (name: string) => Float32Array | Promise<Float32Array>;

/**
 * Every tensor of a model, ready for writeGguf: each parameter is read (and permuted) only when its turn to be
 * written comes, so a reader that streams from the weight files keeps one tensor in memory at a time.
 */
export function tensorPlans(config: ModelConfig, layout: readonly ParamSpec[], read: ParamReader, dtype: GgufDtype): GgufTensorPlan[] {
  const plans: GgufTensorPlan[] = [];
  if (config.ropeScaling !== null) {
    const factors = llama3RopeFactors(config);
    plans.push({ name: 'rope_freqs.weight', shape: [factors.length], type: 'F32', data: () => factors });
  }
  const specs = new Map(layout.map((p) => [p.name, p]));
  for (const mapping of tensorMappings(config, layout.map((p) => p.name))) {
    // internal shapes are (out, in) for every linear weight, which is ggml's layout
    const shape = specs.get(mapping.source)!.shape;
    const cols = shape.length === 2 ? shape[1]! : 1;
    plans.push({
      name: mapping.name,
      shape,
      type: storedType(mapping.name, shape, dtype),
      data: async () => {
        const values = await read(mapping.source);
        return mapping.permuteHeads === null ? values : permuteRowsForInterleavedRope(values, mapping.permuteHeads, cols);
      },
    });
  }
  return plans;
}

/** Every tensor of a model already in memory. */
export function modelTensorPlans(model: DecoderBase, dtype: GgufDtype): GgufTensorPlan[] {
  return tensorPlans(model.config, model.layout, (name) => readParam(model, name), dtype);
}
