// The machinery every objective shares: which tokens of a collated batch are scored, the forward through the model
// and the loss head to per-token log-probs in TRL's (R*T) layout, and the backward from d loss / d logp. Also the
// small sums objectives build on (a response's summed or mean log-prob, token-pooled means), so that "which
// positions are the response" is written once.
import type { PackedBatch } from '../data/collate.js';
import { Arena } from '../model/base.js';
import type { CausalLM } from '../model/types.js';
import { UnfusedLogprobHead, type LogitStats, type TokenLogprobHead } from './logprob-head.js';
import { chosenRows, separateRows, sharedPrefixRows, type ForwardRows } from './pair-rows.js';
import type { SequenceScores, SftScope, Units } from './objective.js';

/** targets[r,t] = ids[r,t+1] for every predicted real token, -1 elsewhere (padding, last token) */
export function buildTargets(batch: PackedBatch): Int32Array {
  const { ids, rows, T, lengths } = batch;
  const targets = new Int32Array(rows * T).fill(-1);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t + 1 < lengths[r]; t++) targets[r * T + t] = ids[r * T + t + 1];
  }
  return targets;
}

/**
 * The predicted positions [start, end) of row r's response: position t predicts token t+1, so the response tokens
 * promptLen..length-1 are predicted from promptLen-1..length-2. Throws on an empty response (its mean is undefined).
 */
export function responseSpan(batch: PackedBatch, r: number): [number, number] {
  const start = batch.promptLens[r] - 1;
  const end = batch.lengths[r] - 1;
  if (end <= start) throw new Error(`row ${r} has an empty response (prompt ${batch.promptLens[r]} tokens, row ${batch.lengths[r]})`);
  return [start, end];
}

/** the first predicted position the NLL term counts in a chosen row */
export function nllStart(batch: PackedBatch, r: number, scope: SftScope): number {
  return scope === 'full' ? 0 : batch.promptLens[r] - 1;
}

/** tokens the NLL term averages over in this batch (chosen rows) */
export function countNllTokens(batch: PackedBatch, sftScope: SftScope): number {
  let n = 0;
  for (let r = 0; r < batch.nPairs; r++) n += batch.lengths[r] - 1 - nllStart(batch, r, sftScope);
  return n;
}

/** the batch's units with the NLL over `sftScope` */
export function unitsOf(batch: PackedBatch, sftScope: SftScope): Units {
  let chosen = 0;
  let rejected = 0;
  for (let i = 0; i < batch.nPairs; i++) {
    chosen += batch.lengths[i] - batch.promptLens[i];
    rejected += batch.lengths[batch.nPairs + i] - batch.promptLens[batch.nPairs + i];
  }
  return { pairs: batch.nPairs, nllTokens: countNllTokens(batch, sftScope), chosenTokens: chosen, rejectedTokens: rejected };
}

/** per row: the sum of the response's log-probs, or their mean (length-normalised, `mean`); rows [first, first+n) */
export function responseLogps(s: SequenceScores, mean: boolean, first: number, n: number): Float64Array {
  const { batch, logp } = s;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = first + i;
    const [start, end] = responseSpan(batch, r);
    let sum = 0;
    for (let t = start; t < end; t++) sum += logp[r * batch.T + t];
    out[i] = mean ? sum / (end - start) : sum;
  }
  return out;
}

/** d loss / d (row r's sequence log-prob) = g spread over its response tokens (divided by the count for a mean) */
export function addResponseGrad(dlogp: Float64Array, batch: PackedBatch, r: number, g: number, mean: boolean): void {
  const [start, end] = responseSpan(batch, r);
  const v = mean ? g / (end - start) : g;
  for (let t = start; t < end; t++) dlogp[r * batch.T + t] += v;
}

/** the mean of a per-token grid over the response tokens of rows [first, first+n), pooled over tokens (TRL's logits/*) */
export function responseTokenMean(grid: Float64Array | Uint8Array, batch: PackedBatch, first: number, n: number): number {
  let sum = 0;
  let count = 0;
  for (let r = first; r < first + n; r++) {
    const [start, end] = responseSpan(batch, r);
    for (let t = start; t < end; t++) sum += grid[r * batch.T + t];
    count += end - start;
  }
  return sum / count;
}

/** The forward layout: chosen rows only, TRL's two rows per pair, or one row per pair with the prompt shared. */
export function forwardRows(batch: PackedBatch, opts: { sharePrompt?: boolean; rows?: 'chosen' | 'pairs' }): ForwardRows {
  if (opts.rows === 'chosen') return chosenRows(batch);
  return opts.sharePrompt === false ? separateRows(batch) : sharedPrefixRows(batch);
}

/** the scored tokens: hidden-state row, target id and place in the batch's (R*T) grid of each */
interface ScoredTokens {
  hiddenRows: Int32Array;
  targets: Int32Array;
  at: Int32Array;
}

function scoredTokens(batch: PackedBatch, rows: ForwardRows): ScoredTokens {
  const all = buildTargets(batch);
  const keep = (n: number): boolean => all[n] >= 0 && rows.index[n] >= 0;
  let M = 0;
  for (let n = 0; n < all.length; n++) if (keep(n)) M++;
  const scored: ScoredTokens = { hiddenRows: new Int32Array(M), targets: new Int32Array(M), at: new Int32Array(M) };
  let i = 0;
  for (let n = 0; n < all.length; n++) {
    if (!keep(n)) continue;
    scored.hiddenRows[i] = rows.index[n];
    scored.targets[i] = all[n];
    scored.at[i++] = n;
  }
  return scored;
}

export interface ScoreOptions<F = Float32Array, I = Int32Array> {
  head?: TokenLogprobHead<F, I>;
  /** one row per pair with the prompt shared (default), or TRL's two rows (false) */
  sharePrompt?: boolean;
  /** 'chosen': run the chosen rows only (SFT's training forward); default both */
  rows?: 'chosen' | 'pairs';
  /** also compute each scored token's logit mean and argmax hit */
  logitStats?: boolean;
}

export interface ScoredBatch {
  scores: Omit<SequenceScores, 'reference'>;
  /** real tokens the model ran */
  tokens: number;
  /** dlogp (R*T grid) -> the model's gradients, accumulated; only once, right after this forward */
  backward(dlogp: Float64Array): void;
}

const defaultHeads = new WeakMap<object, unknown>();

/** the model's own unfused head, made once: its buffers are reused across steps */
export function defaultHeadFor<F, I>(model: CausalLM<F, I>): TokenLogprobHead<F, I> {
  let head = defaultHeads.get(model) as TokenLogprobHead<F, I> | undefined;
  if (!head) {
    head = new UnfusedLogprobHead(model.kernels, model.precision);
    defaultHeads.set(model, head);
  }
  return head;
}

/** per model, the scoring path's own buffers (logit stats, dhidden) in an arena of its backend: reused across batches */
const scoreArenas = new WeakMap<object, unknown>();

function scoreArena<F, I>(model: CausalLM<F, I>): Arena<F, I> {
  let arena = scoreArenas.get(model) as Arena<F, I> | undefined;
  if (arena === undefined) {
    arena = new Arena(model.kernels, model.precision);
    scoreArenas.set(model, arena);
  }
  return arena;
}

/** buffers hold at least one value: a batch may score no token (M 0) */
function statsFor<F, I>(model: CausalLM<F, I>, M: number): LogitStats<F, I> {
  const arena = scoreArena(model);
  return { mean: arena.get('logit-mean', Math.max(M, 1)), argmax: arena.ints('logit-argmax', Math.max(M, 1)) };
}

/**
 * Forward through the model and the loss head: per-token log-probs (and logit stats) in the batch's (R*T) layout.
 * The one awaited point of a batch: the scored log-probs (and stats) come back from the backend here.
 */
export async function scoreBatch<F, I>(model: CausalLM<F, I>, batch: PackedBatch, opts: ScoreOptions<F, I> = {}): Promise<ScoredBatch> {
  const head = opts.head ?? defaultHeadFor(model);
  const k = model.kernels;
  const rows = forwardRows(batch, opts);
  const scored = scoredTokens(batch, rows);
  const { hidden } = model.forward(rows.ids, rows.B, rows.T, rows.packing);
  const c = model.config;
  const M = scored.at.length;
  const stats = opts.logitStats === true ? statsFor(model, M) : null;
  const lpBuf = head.forward(hidden, model.headWeight(), scored.hiddenRows, scored.targets, c.hiddenSize, c.vocabSize, stats);
  const [lp, mean, argmax] = await Promise.all([k.download(lpBuf), stats ? k.download(stats.mean) : null,
    stats ? k.downloadInts(stats.argmax) : null]);
  // float64 whatever the model computes in: float64 models (finite-difference tests) must not round here
  const grid = batch.rows * batch.T;
  const logp = new Float64Array(grid);
  scored.at.forEach((n, i) => { logp[n] = lp[i]!; });
  let meanLogit: Float64Array | null = null;
  let hit: Uint8Array | null = null;
  if (mean !== null && argmax !== null) {
    meanLogit = new Float64Array(grid);
    hit = new Uint8Array(grid);
    scored.at.forEach((n, i) => {
      meanLogit![n] = mean[i]!;
      hit![n] = argmax[i] === scored.targets[i] ? 1 : 0;
    });
  }
  return {
    scores: { batch, logp, meanLogit, hit },
    tokens: rows.tokens,
    backward: (dlogpGrid: Float64Array): void => {
      const dlogp = new Float64Array(M);
      scored.at.forEach((n, i) => { dlogp[i] = dlogpGrid[n]!; });
      // kept and zeroed by the backend (threaded natively), not allocated per step: a fresh allocation faulted in
      // its pages inside the head's scatter, ~400 faults and 4 ms of a 5M model's step, 40x the scatter itself
      const dhidden = scoreArena(model).zeros('dhidden', rows.B * rows.T * c.hiddenSize);
      head.backward(dhidden, model.trainBase ? model.headGrad() : null, dlogp);
      model.backward(dhidden);
    },
  };
}
