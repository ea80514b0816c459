// How a batch of preference pairs is laid out for the model's forward pass.
//
// TRL runs every pair as two rows, prompt+chosen and prompt+rejected, so each prompt goes through the model twice.
// Under causal attention a prefix's hidden states do not depend on what follows it, so the two rows can share it:
// one row per pair, prompt | chosen | rejected, where the rejected tokens keep the positions they have in their own
// row and do not attend to the chosen ones (the model's RowPacking). Every hidden state - and so the loss, the
// metrics and every gradient - is the one TRL's layout gives, up to float rounding, while the model runs
// P + Lc + Lr tokens per pair instead of 2P + Lc + Lr. On HH-RLHF, where prompts are 72% of a pair's tokens,
// that is 36% fewer.
//
// One difference in kind: LoRA dropout draws one mask per token the model runs, so a shared prompt token gets one
// mask where TRL's two rows draw two.
//
// The loss keeps working in TRL's layout (logp and dlogp per row r and token t of the PackedBatch): `index` maps
// each of those tokens to the hidden-state row that holds it.
import type { PackedBatch } from '../data/collate.js';
import type { RowPacking } from '../model/types.js';

export interface ForwardRows {
  /** the token ids the model runs, (B,T) */
  ids: Int32Array;
  B: number;
  T: number;
  /** positions and hidden keys when rows hold a shared prefix and two continuations; null for TRL's two rows */
  packing: RowPacking | null;
  /** hidden-state row (in B*T) of the batch's row r, token t, at r * batch.T + t; -1 for padding and tokens not run */
  index: Int32Array;
  /** real tokens the model runs */
  tokens: number;
}

/** TRL's layout: the batch's rows as they are */
export function separateRows(batch: PackedBatch): ForwardRows {
  const index = new Int32Array(batch.rows * batch.T).fill(-1);
  for (let r = 0; r < batch.rows; r++) {
    for (let t = 0; t < batch.lengths[r]; t++) index[r * batch.T + t] = r * batch.T + t;
  }
  return { ids: batch.ids, B: batch.rows, T: batch.T, packing: null, index, tokens: batch.tokens };
}

/** tokens chosen row i and rejected row nPairs + i have in common from the start (at least the prompt, by TRL's rules) */
export function sharedPrefixLength(batch: PackedBatch, pair: number): number {
  const { ids, T, lengths, nPairs } = batch;
  const c = pair * T;
  const r = (nPairs + pair) * T;
  const n = Math.min(lengths[pair], lengths[nPairs + pair]);
  let s = 0;
  while (s < n && ids[c + s] === ids[r + s]) s++;
  return s;
}

/**
 * One row per pair: the chosen row, then the rejected row's tokens after the shared prefix S. Those take positions
 * S, S+1, ... and hide the chosen tokens [S, Lc) from themselves. Padding (id `padTokenId`, position 0) follows.
 */
export function sharedPrefixRows(batch: PackedBatch, padTokenId = 0): ForwardRows {
  const { ids, T, lengths, nPairs } = batch;
  const shared = Array.from({ length: nPairs }, (_, i) => sharedPrefixLength(batch, i));
  const width = shared.map((s, i) => lengths[i] + lengths[nPairs + i] - s);
  const W = Math.max(...width);
  const out = new Int32Array(nPairs * W).fill(padTokenId);
  const positions = new Int32Array(nPairs * W);
  const hiddenKeys = new Int32Array(2 * nPairs);
  const index = new Int32Array(batch.rows * T).fill(-1);
  let length = 0;
  for (let i = 0; i < nPairs; i++) {
    const s = shared[i];
    const lc = lengths[i];
    const lr = lengths[nPairs + i];
    const row = i * W;
    for (let t = 0; t < lc; t++) {
      out[row + t] = ids[i * T + t];
      positions[row + t] = t;
      index[i * T + t] = row + t;
    }
    const rr = (nPairs + i) * T;
    for (let t = 0; t < lr; t++) {
      const at = t < s ? t : lc + t - s;
      if (t >= s) {
        out[row + at] = ids[rr + t];
        positions[row + at] = t;
      }
      index[rr + t] = row + at;
    }
    // the rejected continuation [lc, width) must not see the chosen one [s, lc); nothing to hide without it
    if (lr > s) {
      hiddenKeys[2 * i] = s;
      hiddenKeys[2 * i + 1] = lc;
    }
    length = Math.max(length, lc, lr);
  }
  const tokens = width.reduce((a, b) => a + b, 0);
  return { ids: out, B: nPairs, T: W, packing: { positions, hiddenKeys, length }, index, tokens };
}

/** The chosen rows alone (SFT trains on nothing else), as wide as the longest; the rejected rows are not run (index -1). */
export function chosenRows(batch: PackedBatch): ForwardRows {
  const { nPairs, T, lengths } = batch;
  const W = Math.max(...lengths.subarray(0, nPairs));
  const ids = new Int32Array(nPairs * W);
  const index = new Int32Array(batch.rows * T).fill(-1);
  let tokens = 0;
  for (let r = 0; r < nPairs; r++) {
    ids.set(batch.ids.subarray(r * T, r * T + W), r * W);
    for (let t = 0; t < lengths[r]; t++) index[r * T + t] = r * W + t;
    tokens += lengths[r];
  }
  return { ids, B: nPairs, T: W, packing: null, index, tokens };
}
