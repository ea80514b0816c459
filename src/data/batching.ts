// Which pairs go in which batch. Every batch is padded to its longest row, so batches of similar lengths waste
// less compute on pads: groupByLength does what transformers' LengthGroupedSampler does (shuffle, then sort by
// length inside mega-batches of 50 batches, so batches stay random across the epoch but uniform inside).

import { Rng } from '../tensor/rng.js';
import { collatePairs, type PackedBatch, type TokenPair } from './collate.js';

/** A pair's longest row, prompt + longer response: the length it pads its batch to. */
export function pairLength(pair: TokenPair): number {
  return pair.prompt.length + Math.max(pair.chosen.length, pair.rejected.length);
}

export interface BatchPlanOptions {
  batchSize: number;
  groupByLength: boolean;
  /** shuffle with this seed; null keeps file order */
  seed: number | null;
}

const MEGA_BATCH_MULTIPLIER = 50; // transformers' LengthGroupedSampler

/**
 * An already shuffled order of pair indices, sorted longest first inside each mega-batch of 50 batches, so that
 * consecutive batches hold pairs of similar length while the epoch stays shuffled at the mega-batch scale.
 */
export function groupOrderByLength(order: readonly number[], pairs: readonly TokenPair[], batchSize: number): number[] {
  const mega = batchSize * MEGA_BATCH_MULTIPLIER;
  const grouped: number[] = [];
  for (let s = 0; s < order.length; s += mega) {
    const chunk = order.slice(s, s + mega);
    chunk.sort((a, b) => pairLength(pairs[b]!) - pairLength(pairs[a]!) || a - b);
    grouped.push(...chunk);
  }
  return grouped;
}

/** Indices of the pairs in each batch; every pair appears exactly once, the last batch may be short. */
export function planBatches(pairs: readonly TokenPair[], opts: BatchPlanOptions): number[][] {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`batch size must be >= 1, got ${opts.batchSize}`);
  let order = pairs.map((_, i) => i);
  if (opts.seed !== null) new Rng(opts.seed).shuffle(order);
  if (opts.groupByLength) order = groupOrderByLength(order, pairs, opts.batchSize);
  const batches: number[][] = [];
  for (let s = 0; s < order.length; s += opts.batchSize) batches.push(order.slice(s, s + opts.batchSize));
  return batches;
}

export interface PaddingStats {
  /** real tokens over all rows of all batches */
  tokens: number;
  /** token slots including pads (rows x padded length, summed over batches) */
  slots: number;
  /** pads / slots */
  paddingFraction: number;
}

/** What padding a plan costs, computed from lengths alone (no batch is built). */
export function paddingStats(pairs: readonly TokenPair[], batches: readonly number[][]): PaddingStats {
  let tokens = 0;
  let slots = 0;
  for (const batch of batches) {
    let T = 0;
    for (const i of batch) {
      const p = pairs[i]!;
      tokens += 2 * p.prompt.length + p.chosen.length + p.rejected.length;
      T = Math.max(T, pairLength(p));
    }
    slots += 2 * batch.length * T;
  }
  return { tokens, slots, paddingFraction: slots === 0 ? 0 : 1 - tokens / slots };
}

/** The batches of a plan, collated into the core's (2B, T) layout. */
export function* collatePlan(pairs: readonly TokenPair[], batches: readonly number[][], padTokenId: number): Generator<PackedBatch> {
  for (const batch of batches) yield collatePairs(batch.map((i) => pairs[i]!), padTokenId);
}
