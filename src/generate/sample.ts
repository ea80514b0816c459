// Choosing the next token from a vocab-sized logits row, as transformers' logits warpers do: temperature,
// then top-k, then top-p (nucleus), then a draw from the softmax; temperature 0 is greedy (argmax).

import { Rng } from '../tensor/rng.js';

export interface SamplingOptions {
  /** 0 = greedy; otherwise logits are divided by it */
  temperature: number;
  /** keep the k most likely tokens (0 = all) */
  topK: number;
  /** keep the smallest set of most likely tokens whose probability reaches p (1 = all) */
  topP: number;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** The next token id. `rng` is used only when sampling (temperature > 0). */
export function sampleNext(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.temperature <= 0) return argmax(logits);
  const V = logits.length;
  // candidates sorted by logit, descending; ties keep the lower id first so runs are reproducible
  let ids = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (opts.topK > 0 && opts.topK < V) ids = ids.slice(0, opts.topK);
  // softmax over the kept candidates, shifted by the max so exp cannot overflow
  const maxLogit = logits[ids[0]!]! / opts.temperature;
  const weights = ids.map((i) => Math.exp(logits[i]! / opts.temperature - maxLogit));
  let total = weights.reduce((a, b) => a + b, 0);
  if (opts.topP < 1) {
    // keep tokens until their cumulative probability reaches top_p (always at least one)
    let cumulative = 0;
    let keep = 0;
    while (keep < ids.length && (keep === 0 || cumulative < opts.topP * total)) cumulative += weights[keep++]!;
    ids = ids.slice(0, keep);
    weights.length = keep;
    total = cumulative;
  }
  let r = rng.uniform() * total;
  for (let i = 0; i < ids.length; i++) {
    r -= weights[i]!;
    if (r < 0) return ids[i]!;
  }
  return ids[ids.length - 1]!; // rounding left r a hair above zero
}
