// Autoregressive generation against one function, `nextLogits(tokens)` = the vocab logits for the token that
// follows `tokens`. The model side supplies it (a KV-cached incremental forward, or fullForwardLogits below);
// this side only decides which token comes next and when to stop.

import type { CausalLM } from '../model/types.js';
import { Rng } from '../tensor/rng.js';
import { sampleNext, type SamplingOptions } from './sample.js';

export type NextLogits = (tokens: readonly number[]) => Float32Array;

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** generation stops after emitting any of these (EOS); they are included in the output */
  stopTokenIds: readonly number[];
  seed: number;
  /** called with each new token as it is chosen (streaming) */
  onToken?: (id: number) => void;
}

export interface Generation {
  /** the new tokens only */
  tokens: number[];
  stopReason: 'eos' | 'max_new_tokens' | 'context_full';
}

export function generateTokens(nextLogits: NextLogits, prompt: readonly number[], opts: GenerateOptions,
  maxContext = Infinity): Generation {
  if (prompt.length === 0) throw new Error('generate: the prompt is empty (no tokens to condition on); give some text or enable BOS');
  const rng = new Rng(opts.seed);
  const context = [...prompt];
  const tokens: number[] = [];
  const stops = new Set(opts.stopTokenIds);
  while (tokens.length < opts.maxNewTokens) {
    if (context.length >= maxContext) return { tokens, stopReason: 'context_full' };
    const id = sampleNext(nextLogits(context), opts, rng);
    tokens.push(id);
    context.push(id);
    opts.onToken?.(id);
    if (stops.has(id)) return { tokens, stopReason: 'eos' };
  }
  return { tokens, stopReason: 'max_new_tokens' };
}

/**
 * nextLogits by a full forward over the whole context each time (O(T^2) per sequence): the reference for an
 * incremental KV-cached forward, and the fallback when the model has none.
 */
export function fullForwardLogits(model: CausalLM): NextLogits {
  const { hiddenSize: C, vocabSize: V } = model.config;
  return (tokens) => {
    const T = tokens.length;
    const { hidden } = model.forward(Int32Array.from(tokens), 1, T);
    const logits = new Float32Array(V);
    // last row (C) @ head (V,C)^T -> (V)
    model.headLogits(logits, hidden.subarray((T - 1) * C, T * C), 1);
    return logits;
  };
}
