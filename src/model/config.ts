// config.json -> ModelConfig: every family's names for the same fact are read here, once.
import type { ModelConfig, ModelType, RopeScaling } from './types.js';

export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ['gpt2', 'llama', 'mistral', 'qwen2', 'qwen3'];

const SUPPORTED_TEXT = `supported model_type values: ${SUPPORTED_MODEL_TYPES.join(', ')}`;

type Raw = Record<string, unknown>;

function fail(msg: string): never {
  throw new Error(`config.json: ${msg}`);
}

function int(raw: Raw, key: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    fail(`missing required field '${key}'`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`'${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function num(raw: Raw, key: string, fallback: number): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`'${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(raw: Raw, key: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') fail(`'${key}' must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function tokenId(raw: Raw, key: string): number | null {
  const v = raw[key];
  return typeof v === 'number' ? v : null;
}

function eosId(raw: Raw): number | number[] | null {
  const v = raw.eos_token_id;
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return null;
}

function parseRopeScaling(raw: Raw): RopeScaling | null {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object') fail(`'rope_scaling' must be an object or null`);
  const r = rs as Raw;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type !== 'llama3') {
    fail(`rope_scaling type '${String(type)}' is not supported (supported: 'llama3' as in Llama 3.1/3.2, or none)`);
  }
  return {
    type: 'llama3',
    factor: num(r, 'factor', 8),
    lowFreqFactor: num(r, 'low_freq_factor', 1),
    highFreqFactor: num(r, 'high_freq_factor', 4),
    originalMaxPositionEmbeddings: int(r, 'original_max_position_embeddings', 8192),
  };
}

/** Normalise a Hugging Face config.json; unsupported architectures and options are refused with what is supported. */
export function parseConfig(raw: Raw): ModelConfig {
  const modelType = raw.model_type;
  if (typeof modelType !== 'string') fail(`missing 'model_type'; ${SUPPORTED_TEXT}`);
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    fail(`model_type '${modelType}' is not supported; ${SUPPORTED_TEXT}`);
  }
  const common = {
    bosTokenId: tokenId(raw, 'bos_token_id'),
    eosTokenId: eosId(raw),
    padTokenId: tokenId(raw, 'pad_token_id'),
    raw,
  };
  if (modelType === 'gpt2') {
    const C = int(raw, 'n_embd');
    const NH = int(raw, 'n_head');
    if (C % NH !== 0) fail(`n_embd ${C} is not divisible by n_head ${NH}`);
    const act = raw.activation_function ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
      fail(`activation_function '${String(act)}' is not supported for gpt2 (supported: gelu_new, gelu_pytorch_tanh)`);
    }
    if (bool(raw, 'scale_attn_by_inverse_layer_idx', false)) fail(`scale_attn_by_inverse_layer_idx=true is not supported`);
    if (!bool(raw, 'scale_attn_weights', true)) fail(`scale_attn_weights=false is not supported`);
    if (bool(raw, 'add_cross_attention', false)) fail(`add_cross_attention=true is not supported (decoder-only models only)`);
    return {
      modelType, family: 'gpt2', vocabSize: int(raw, 'vocab_size'), hiddenSize: C, numLayers: int(raw, 'n_layer'),
      numHeads: NH, numKvHeads: NH, headDim: C / NH, intermediateSize: int(raw, 'n_inner', 4 * C),
      maxPositions: int(raw, 'n_positions', 1024), normEps: num(raw, 'layer_norm_epsilon', 1e-5),
      ropeTheta: 0, ropeScaling: null, tieWordEmbeddings: bool(raw, 'tie_word_embeddings', true),
      qkvBias: true, oBias: true, mlpBias: true, qkNorm: false, slidingWindow: null, ...common,
    };
  }
  const mt = modelType as Exclude<ModelType, 'gpt2'>;
  const C = int(raw, 'hidden_size');
  const NH = int(raw, 'num_attention_heads');
  const NKV = int(raw, 'num_key_value_heads', NH);
  if (NH % NKV !== 0) fail(`num_attention_heads ${NH} is not a multiple of num_key_value_heads ${NKV}`);
  const headDimDefault = C % NH === 0 ? C / NH : undefined;
  const HD = int(raw, 'head_dim', headDimDefault);
  if (HD % 2 !== 0) fail(`head_dim ${HD} must be even for rotary embeddings`);
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') fail(`hidden_act '${String(act)}' is not supported (supported: silu)`);
  const attentionBias = mt === 'mistral' ? false : bool(raw, 'attention_bias', false);
  let slidingWindow: number | null = null;
  if (mt === 'mistral') {
    const sw = raw.sliding_window;
    slidingWindow = typeof sw === 'number' ? sw : null;
  } else if ((mt === 'qwen2' || mt === 'qwen3') && bool(raw, 'use_sliding_window', false)) {
    slidingWindow = int(raw, 'sliding_window', 4096);
  }
  const partial = num(raw, 'partial_rotary_factor', 1);
  if (partial !== 1) fail(`partial_rotary_factor ${partial} is not supported (only full rotary embeddings)`);
  return {
    modelType: mt, family: 'llama', vocabSize: int(raw, 'vocab_size'), hiddenSize: C,
    numLayers: int(raw, 'num_hidden_layers'), numHeads: NH, numKvHeads: NKV, headDim: HD,
    intermediateSize: int(raw, 'intermediate_size'), maxPositions: int(raw, 'max_position_embeddings', 2048),
    normEps: num(raw, 'rms_norm_eps', 1e-6), ropeTheta: num(raw, 'rope_theta', 10000),
    ropeScaling: parseRopeScaling(raw), tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    qkvBias: mt === 'qwen2' ? true : attentionBias,
    oBias: mt === 'qwen2' ? false : attentionBias,
    mlpBias: mt === 'llama' ? bool(raw, 'mlp_bias', false) : false,
    qkNorm: mt === 'qwen3', slidingWindow, ...common,
  };
}

/** Refuse a sequence the model cannot attend over exactly. */
export function checkSequenceLength(config: ModelConfig, T: number): void {
  if (config.slidingWindow !== null && T > config.slidingWindow) {
    throw new Error(`sequence length ${T} exceeds the model's sliding_window ${config.slidingWindow}; ` +
      `sliding-window attention is not implemented: lower max_length to ${config.slidingWindow} or less`);
  }
  if (config.family === 'gpt2' && T > config.maxPositions) {
    throw new Error(`sequence length ${T} exceeds n_positions ${config.maxPositions} of this GPT-2 model: lower max_length`);
  }
}
