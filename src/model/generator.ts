// Next-token logits for generation, with a KV cache: feeding a sequence that extends the previous one runs the
// model on the new tokens only.
import type { DecoderBase } from './base.js';
import type { KvCache } from './kv-cache.js';

export class Generator {
  private cache: KvCache;
  private fed: number[] = [];
  private logits: Float32Array;

  constructor(private readonly model: DecoderBase) {
    this.cache = model.newKvCache();
    this.logits = new Float32Array(model.config.vocabSize);
  }

  /** logits (V) of the token that follows `tokens` (a copy the caller may keep) */
  nextLogits(tokens: readonly number[]): Float32Array {
    if (tokens.length === 0) throw new Error('nextLogits: needs at least one token (e.g. BOS)');
    let common = 0;
    while (common < this.fed.length && common < tokens.length && this.fed[common] === tokens[common]) common++;
    // at least the last token must run, its hidden state gives the logits
    common = Math.min(common, tokens.length - 1);
    this.cache.length = common; // rows past `common` are stale and will be overwritten
    const fresh = Int32Array.from(tokens.slice(common));
    const { hidden } = this.model.forwardCached(this.cache, fresh);
    this.fed = tokens.slice();
    const C = this.model.config.hiddenSize;
    const last = hidden.subarray((fresh.length - 1) * C, fresh.length * C);
    this.model.headLogits(this.logits, last, 1);
    return this.logits.slice();
  }

  reset(): void {
    this.fed = [];
    this.cache.length = 0;
  }
}
