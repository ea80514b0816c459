// What the rest of the project may know about a model: its normalised config, its parameter layout (one flat
// buffer with named views, keyed by the Hugging Face names `save_pretrained` writes) and a forward/backward that
// maps token ids to the final normalised hidden states. The loss head (lm_head + log-softmax) lives in src/loss,
// so a fused, chunked head can replace it without touching the model.

import type { Backend, Weight } from '../backend/kernels.js';

export type ModelType = 'gpt2' | 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export type Family = 'gpt2' | 'llama';

export interface RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** config.json, normalised across families (one name per fact). */
export interface ModelConfig {
  modelType: ModelType;
  family: Family;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  normEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** bias on q/k/v projections */
  qkvBias: boolean;
  /** bias on the attention output projection */
  oBias: boolean;
  /** bias on gate/up/down projections */
  mlpBias: boolean;
  /** Qwen3: per-head RMSNorm of q and k before RoPE */
  qkNorm: boolean;
  /** Mistral/Qwen2 sliding window, null when every token sees the whole prefix */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  /** config.json exactly as read, written back on save */
  raw: Record<string, unknown>;
}

/** One parameter: its Hugging Face name, internal (out,in) shape and place in the flat buffer. */
export interface ParamSpec {
  name: string;
  /** shape inside orpo-ts: linear weights are always (out, in) */
  shape: number[];
  /** shape on disk (GPT-2's Conv1D stores (in, out)) */
  hfShape: number[];
  /** true when the on-disk tensor is the transpose of the internal one */
  transposed: boolean;
  /** where the tensor starts in its buffer: the model's float32 params, or its frozen bfloat16 store when `bf16` */
  offset: number;
  size: number;
  /** stored in the model's frozen bfloat16 buffer (torch_dtype bfloat16: the matrices of a LoRA base) */
  bf16?: true;
}

/**
 * Several sequences in one row of the forward pass: a shared prefix followed by two continuations
 * (prompt | chosen | rejected, see loss/pair-rows.ts). Each token carries its own position, and the second
 * continuation must not attend to the first.
 */
export interface RowPacking {
  /** position of each token (B*T) */
  positions: Int32Array;
  /** (B,2): keys [hiddenKeys[2b], hiddenKeys[2b+1]) of row b are invisible to its queries at t >= hiddenKeys[2b+1] */
  hiddenKeys: Int32Array;
  /** 1 + the largest position */
  length: number;
}

export interface ForwardResult<F = Float32Array> {
  /** final normalised hidden states (B*T, C) */
  hidden: F;
  B: number;
  T: number;
}

/**
 * A decoder-only model: flat parameters and gradients, forward to hidden states, backward from them. F and I are
 * its backend's float and int32 buffers (host typed arrays by default, GPU tensors on WebGPU).
 */
export interface CausalLM<F = Float32Array, I = Int32Array> {
  readonly config: ModelConfig;
  readonly layout: readonly ParamSpec[];
  /** every parameter, one allocation */
  readonly params: F;
  /** every gradient, one allocation, same layout as params */
  readonly grads: F;
  kernels: Backend<F, I>;
  /** false freezes every base parameter (LoRA): backward then computes activation gradients only */
  trainBase: boolean;
  /** float32 always, except float64 models built for finite-difference tests */
  readonly precision: 'float32' | 'float64';
  /** view of a parameter (or gradient) by Hugging Face name */
  param(name: string): F;
  grad(name: string): F;
  /** the (V, C) output projection (lm_head, or the token embedding when tied) and its gradient view */
  headWeight(): Weight<F>;
  /** hidden (N,C) -> logits (N,V) written: hidden @ headWeight^T */
  headLogits(logits: F, hidden: F, N: number): void;
  headGrad(): F;
  /** ids (B,T) int32 (host) -> hidden (B*T, C); saves activations for backward. Row b's token t has position t unless packed. */
  forward(ids: Int32Array, B: number, T: number, packing?: RowPacking | null): ForwardResult<F>;
  /** dhidden (B*T, C) -> accumulates into grads (call zeroGrad() first) */
  backward(dhidden: F): void;
  zeroGrad(): void;
  /** a zeroed buffer of the model's precision (float32, or float64 in finite-difference tests) */
  alloc(n: number): F;
}
