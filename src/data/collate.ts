// Collation of tokenised preference pairs into the one concatenated batch ORPO runs forward:
// rows are prompt+chosen for every pair, then prompt+rejected for every pair, right padded with padTokenId.
// With right padding and causal attention no real token sees a pad, so no attention mask is needed.

export interface TokenPair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

export interface PreferenceBatch {
  pairs: TokenPair[];
  pad_token_id: number;
}

/** pairs -> ids (R,T) int32 with R = 2 * pairs, plus each row's length and prompt length. */
export interface PackedBatch {
  ids: Int32Array;
  rows: number;
  T: number;
  nPairs: number;
  lengths: Int32Array;
  promptLens: Int32Array;
  /** real (non-pad) tokens in the batch */
  tokens: number;
}

export function collatePairs(pairs: readonly TokenPair[], padTokenId: number): PackedBatch {
  if (pairs.length === 0) throw new Error('collatePairs: a batch needs at least one pair');
  const rowsTokens: number[][] = [];
  const promptLens: number[] = [];
  for (const side of ['chosen', 'rejected'] as const) {
    for (const [i, p] of pairs.entries()) {
      if (p[side].length === 0) throw new Error(`collatePairs: pair ${i} has an empty ${side} response`);
      rowsTokens.push([...p.prompt, ...p[side]]);
      promptLens.push(p.prompt.length);
    }
  }
  const R = rowsTokens.length;
  const T = Math.max(...rowsTokens.map((r) => r.length));
  const ids = new Int32Array(R * T).fill(padTokenId);
  const lengths = new Int32Array(R);
  let tokens = 0;
  rowsTokens.forEach((row, r) => {
    ids.set(row, r * T);
    lengths[r] = row.length;
    tokens += row.length;
  });
  return { ids, rows: R, T, nPairs: pairs.length, lengths, promptLens: Int32Array.from(promptLens), tokens };
}
