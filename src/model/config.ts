// config.json -> ModelConfig: every family's names for the same fact are read here, once.
import type { ModelConfig, ModelType, RopeScaling } from './types.js';

export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ['gpt2', 'llama', 'mistral', 'qwen2', 'qwen3'];

const SUPPORTED_TEXT = `supported model_type values: ${SUPPORTED_MODEL_TYPES.join(', ')}`;

type Raw = Record<string, unknown>;

// Upper bounds far above every published model (widths in the tens of thousands, vocabularies of a few hundred
// thousand, at most a few hundred layers, contexts of millions) and low enough that no product of two of them
// loses precision and that the parameter layout stays cheap to build. What really bounds memory is the weight
// files, which loadModel checks the config against before anything is allocated.
const MAX_WIDTH = 1 << 20; // hidden_size, intermediate_size, head_dim, head counts
const MAX_LAYERS = 16_384;
const MAX_VOCAB = 1 << 24;
const MAX_POSITIONS = 2 ** 31 - 1; // positions are int32 everywhere

/** An untrusted config value for a message: short, never the whole of a huge string or list. */
function shown(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `'${value.slice(0, 40)}...'` : `'${value}'`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

/**
 * Reads the fields of one JSON object (config.json, or an object inside it such as rope_scaling), each checked
 * against its allowed range where it is read, and every message naming the file and the field.
 */
class Fields {
  constructor(private readonly raw: Raw, private readonly source: string, private readonly prefix = '') {}

  fail(msg: string): never {
    throw new Error(`${this.source}: ${msg}`);
  }

  private name(key: string): string {
    return `'${this.prefix}${key}'`;
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  get(key: string): unknown {
    return this.raw[key];
  }

  nested(key: string): Fields | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(`${this.name(key)} must be an object or null, got ${shown(v)}`);
    return new Fields(v as Raw, this.source, `${this.prefix}${key}.`);
  }

  /** a whole number in [1, max]; absent or null gives the fallback, or is refused when there is none */
  int(key: string, max: number, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(`missing required field ${this.name(key)}`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
      this.fail(`${this.name(key)} must be a whole number from 1 to ${max}, got ${shown(v)}`);
    }
    return v;
  }

  /** a finite number in the given range; `above` excludes its bound, `atLeast` includes it */
  num(key: string, fallback: number, range: { above?: number; atLeast?: number; atMost?: number }): number {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    const { above, atLeast, atMost } = range;
    const ok = typeof v === 'number' && Number.isFinite(v) && (above === undefined || v > above) &&
      (atLeast === undefined || v >= atLeast) && (atMost === undefined || v <= atMost);
    if (!ok) {
      const lower = above !== undefined ? `greater than ${above}` : atLeast !== undefined ? `at least ${atLeast}` : '';
      const upper = atMost !== undefined ? `at most ${atMost}` : '';
      const bounds = [lower, upper].filter((b) => b !== '').join(' and ');
      this.fail(`${this.name(key)} must be a finite number${bounds === '' ? '' : ` ${bounds}`}, got ${shown(v)}`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(`${this.name(key)} must be true or false, got ${shown(v)}`);
    return v;
  }

  /**
   * A token id: a whole number, or absent. Negative ids mean "none" (early Llama conversions write
   * pad_token_id: -1), as they do in transformers, which never looks such an id up.
   */
  tokenId(key: string): number | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(`${this.name(key)} must be a whole number (a token id), got ${shown(v)}`);
    return v < 0 ? null : v;
  }

  /** eos_token_id: one id or a list of them (Llama 3 has several) */
  tokenIds(key: string): number | number[] | null {
    const v = this.raw[key];
    if (!Array.isArray(v)) return this.tokenId(key);
    if (!v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) {
      this.fail(`${this.name(key)} must be a token id or a list of token ids (whole numbers), got ${shown(v)}`);
    }
    const ids = (v as number[]).filter((x) => x >= 0);
    return ids.length === 0 ? null : ids;
  }
}

function parseRopeScaling(fields: Fields): RopeScaling | null {
  const r = fields.nested('rope_scaling');
  if (r === null) return null;
  const type = r.get('rope_type') ?? r.get('type');
  if (type === 'default') return null;
  if (type !== 'llama3') {
    r.fail(`rope_scaling type ${shown(type)} is not supported (supported: 'llama3' as in Llama 3.1/3.2, or none)`);
  }
  // transformers' _validate_llama3_parameters: factor >= 1, high_freq_factor > low_freq_factor; the frequencies
  // divide by the factors and by their difference, so anything else gives Inf or NaN rotations.
  const lowFreqFactor = r.num('low_freq_factor', 1, { above: 0 });
  const highFreqFactor = r.num('high_freq_factor', 4, { above: lowFreqFactor });
  return {
    type: 'llama3',
    factor: r.num('factor', 8, { atLeast: 1 }),
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositionEmbeddings: r.int('original_max_position_embeddings', MAX_POSITIONS, 8192),
  };
}

/**
 * Normalise a Hugging Face config.json; unsupported architectures and options are refused with what is supported,
 * and every number is checked against its allowed range here, once. `source` names the file in messages.
 */
export function parseConfig(raw: Raw, source = 'config.json'): ModelConfig {
  const f: Fields = new Fields(raw, source);
  const modelType = raw.model_type;
  if (typeof modelType !== 'string') f.fail(`missing 'model_type'; ${SUPPORTED_TEXT}`);
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    f.fail(`model_type ${shown(modelType)} is not supported; ${SUPPORTED_TEXT}`);
  }
  const common = {
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenId: f.tokenIds('eos_token_id'),
    padTokenId: f.tokenId('pad_token_id'),
    raw,
  };
  const vocabSize = f.int('vocab_size', MAX_VOCAB);
  if (modelType === 'gpt2') {
    const C = f.int('n_embd', MAX_WIDTH);
    const NH = f.int('n_head', C);
    if (C % NH !== 0) f.fail(`n_embd ${C} is not divisible by n_head ${NH}`);
    const act = raw.activation_function ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
      f.fail(`activation_function ${shown(act)} is not supported for gpt2 (supported: gelu_new, gelu_pytorch_tanh)`);
    }
    if (f.bool('scale_attn_by_inverse_layer_idx', false)) f.fail(`scale_attn_by_inverse_layer_idx=true is not supported`);
    if (!f.bool('scale_attn_weights', true)) f.fail(`scale_attn_weights=false is not supported`);
    if (f.bool('add_cross_attention', false)) f.fail(`add_cross_attention=true is not supported (decoder-only models only)`);
    return {
      modelType, family: 'gpt2', vocabSize, hiddenSize: C, numLayers: f.int('n_layer', MAX_LAYERS),
      numHeads: NH, numKvHeads: NH, headDim: C / NH, intermediateSize: f.int('n_inner', MAX_WIDTH, Math.min(4 * C, MAX_WIDTH)),
      // GPT-2 learns one embedding per position: n_positions is also a tensor's first dimension
      maxPositions: f.int('n_positions', MAX_WIDTH, 1024), normEps: f.num('layer_norm_epsilon', 1e-5, { above: 0, atMost: 1 }),
      ropeTheta: 0, ropeScaling: null, tieWordEmbeddings: f.bool('tie_word_embeddings', true),
      qkvBias: true, oBias: true, mlpBias: true, qkNorm: false, slidingWindow: null, ...common,
    };
  }
  const mt = modelType as Exclude<ModelType, 'gpt2'>;
  const C = f.int('hidden_size', MAX_WIDTH);
  const NH = f.int('num_attention_heads', MAX_WIDTH);
  const NKV = f.int('num_key_value_heads', NH, NH);
  if (NH % NKV !== 0) f.fail(`num_attention_heads ${NH} is not a multiple of num_key_value_heads ${NKV}`);
  const headDimDefault = C % NH === 0 ? C / NH : undefined;
  const HD = f.int('head_dim', MAX_WIDTH, headDimDefault);
  if (HD % 2 !== 0) f.fail(`head_dim ${HD} must be even for rotary embeddings`);
  if (NH * HD > MAX_WIDTH) f.fail(`num_attention_heads ${NH} times head_dim ${HD} exceeds ${MAX_WIDTH}`);
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') f.fail(`hidden_act ${shown(act)} is not supported (supported: silu)`);
  const attentionBias = mt === 'mistral' ? false : f.bool('attention_bias', false);
  const maxPositions = f.int('max_position_embeddings', MAX_POSITIONS, 2048);
  let slidingWindow: number | null = null;
  if (mt === 'mistral') {
    slidingWindow = f.has('sliding_window') ? f.int('sliding_window', MAX_POSITIONS) : null;
  } else if ((mt === 'qwen2' || mt === 'qwen3') && f.bool('use_sliding_window', false)) {
    slidingWindow = f.int('sliding_window', MAX_POSITIONS, 4096);
  }
  const partial = f.num('partial_rotary_factor', 1, {});
  if (partial !== 1) f.fail(`partial_rotary_factor ${partial} is not supported (only full rotary embeddings)`);
  return {
    modelType: mt, family: 'llama', vocabSize, hiddenSize: C,
    numLayers: f.int('num_hidden_layers', MAX_LAYERS), numHeads: NH, numKvHeads: NKV, headDim: HD,
    intermediateSize: f.int('intermediate_size', MAX_WIDTH), maxPositions,
    normEps: f.num('rms_norm_eps', 1e-6, { above: 0, atMost: 1 }),
    // inv_freq = theta^(-2i/HD): theta <= 0 gives Inf or NaN rotations
    ropeTheta: f.num('rope_theta', 10000, { above: 0 }),
    ropeScaling: parseRopeScaling(f), tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    qkvBias: mt === 'qwen2' ? true : attentionBias,
    oBias: mt === 'qwen2' ? false : attentionBias,
    mlpBias: mt === 'llama' ? f.bool('mlp_bias', false) : false,
    qkNorm: mt === 'qwen3', slidingWindow, ...common,
  };
}

/** The standard deviation createModel initialises weights with (config.json's initializer_range, default 0.02). */
export function parseInitializerRange(raw: Raw, source = 'config.json'): number {
  return new Fields(raw, source).num('initializer_range', 0.02, { atLeast: 0, atMost: 1e3 });
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
