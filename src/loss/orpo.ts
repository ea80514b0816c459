// ORPO as TRL's ORPOTrainer computes it, on one concatenated forward pass over chosen and rejected rows:
//   loss = nll(chosen) - beta * mean(logsigmoid(log_odds(avg logp chosen, avg logp rejected)))
// `beta` is the paper's λ. See ../shared/fixtures/README.md for the exact definitions.
import type { FloatArray } from '../backend/kernels.js';
import type { CausalLM } from '../model/types.js';
import { collatePairs, type PackedBatch, type PreferenceBatch } from '../data/collate.js';
import { UnfusedLogprobHead, type TokenLogprobHead } from './logprob-head.js';
import { oddsRatio } from './odds-ratio.js';
import { hfLayoutTensors } from '../model/layout.js';
import { separateRows, sharedPrefixRows, type ForwardRows } from './pair-rows.js';

export type SftScope = 'full' | 'response';

export interface OrpoOptions {
  /** λ in the paper: weight of the odds-ratio term (TRL default 0.1) */
  beta: number;
  /** tokens the NLL term covers: prompt and response ('full', TRL) or the response only */
  sftScope: SftScope;
  /** normalise the NLL by this many tokens instead of this batch's count (gradient accumulation) */
  nllDenominator?: number;
  /** normalise the odds-ratio term by this many pairs instead of this batch's (gradient accumulation) */
  pairDenominator?: number;
  /** replace the loss head (e.g. a fused, chunked one) */
  head?: TokenLogprobHead;
  /**
   * run each pair's common prefix (the prompt) through the model once, in one row prompt | chosen | rejected
   * (pair-rows.ts; the same numbers up to float rounding), instead of TRL's two rows. Default true.
   */
  sharePrompt?: boolean;
}

/** TRL's metric names */
export type OrpoMetrics = Record<string, number>;

export interface OrpoLossResult {
  loss: number;
  metrics: OrpoMetrics;
  logpsChosen: Float64Array;
  logpsRejected: Float64Array;
  /** d loss / d logp (R*T) */
  dlogp: Float64Array;
}

/** targets[r,t] = ids[r,t+1] for every predicted real token, -1 elsewhere (padding, last token) */
export function buildTargets(batch: PackedBatch): Int32Array {
  const { ids, rows, T, lengths } = batch;
  const targets = new Int32Array(rows * T).fill(-1);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t + 1 < lengths[r]; t++) targets[r * T + t] = ids[r * T + t + 1];
  }
  return targets;
}

/** first predicted position t (predicting token t+1) the NLL counts in a chosen row */
function nllStart(batch: PackedBatch, r: number, scope: SftScope): number {
  return scope === 'full' ? 0 : batch.promptLens[r] - 1;
}

/** tokens the NLL term averages over in this batch */
export function countNllTokens(batch: PackedBatch, sftScope: SftScope): number {
  let n = 0;
  for (let r = 0; r < batch.nPairs; r++) n += batch.lengths[r] - 1 - nllStart(batch, r, sftScope);
  return n;
}

/** The ORPO loss, TRL metrics and d loss / d logp from per-token log-probs (R*T), all sums in float64. */
export function orpoLossFromLogps(logp: FloatArray, batch: PackedBatch, opts: OrpoOptions): OrpoLossResult {
  const { T, nPairs, lengths, promptLens } = batch;
  const { beta, sftScope } = opts;
  const dlogp = new Float64Array(batch.rows * T);
  const avg = new Float64Array(batch.rows);
  for (let r = 0; r < batch.rows; r++) {
    const start = promptLens[r] - 1;
    const count = lengths[r] - promptLens[r];
    if (count <= 0) throw new Error(`ORPO: row ${r} has an empty response (prompt ${promptLens[r]} tokens, row ${lengths[r]})`);
    let s = 0;
    for (let t = start; t < lengths[r] - 1; t++) s += logp[r * T + t];
    avg[r] = s / count;
  }
  // NLL over the chosen rows, pooled over tokens
  const nllTokens = opts.nllDenominator ?? countNllTokens(batch, sftScope);
  let nllSum = 0;
  for (let r = 0; r < nPairs; r++) {
    for (let t = nllStart(batch, r, sftScope); t < lengths[r] - 1; t++) {
      nllSum -= logp[r * T + t];
      dlogp[r * T + t] = -1 / nllTokens;
    }
  }
  const nll = nllSum / nllTokens;
  // odds-ratio term, averaged over pairs
  const pairs = opts.pairDenominator ?? nPairs;
  let ratioSum = 0;
  let logOddsSum = 0;
  let lcSum = 0;
  let lrSum = 0;
  let wins = 0;
  let marginSum = 0;
  for (let i = 0; i < nPairs; i++) {
    const lc = avg[i];
    const lr = avg[nPairs + i];
    const o = oddsRatio(lc, lr);
    ratioSum += o.logSigmoid;
    logOddsSum += o.logOdds;
    lcSum += lc;
    lrSum += lr;
    if (beta * lc > beta * lr) wins++;
    marginSum += beta * (lc - lr);
    // d loss / d avg = -beta / pairs * d logsigmoid / d avg; d avg / d logp = 1 / count over the response
    const gc = (-beta / pairs) * o.dLc / (lengths[i] - promptLens[i]);
    const gr = (-beta / pairs) * o.dLr / (lengths[nPairs + i] - promptLens[nPairs + i]);
    for (let t = promptLens[i] - 1; t < lengths[i] - 1; t++) dlogp[i * T + t] += gc;
    const rr = nPairs + i;
    for (let t = promptLens[rr] - 1; t < lengths[rr] - 1; t++) dlogp[rr * T + t] += gr;
  }
  const ratioMean = ratioSum / nPairs;
  const loss = nll - (beta * ratioSum) / pairs;
  const metrics: OrpoMetrics = {
    loss,
    nll_loss: nll,
    log_odds_ratio: ratioMean,
    log_odds_chosen: logOddsSum / nPairs,
    'logps/chosen': lcSum / nPairs,
    'logps/rejected': lrSum / nPairs,
    'rewards/chosen': (beta * lcSum) / nPairs,
    'rewards/rejected': (beta * lrSum) / nPairs,
    'rewards/accuracies': wins / nPairs,
    'rewards/margins': marginSum / nPairs,
  };
  return { loss, metrics, logpsChosen: avg.slice(0, nPairs), logpsRejected: avg.slice(nPairs), dlogp };
}

const defaultHeads = new WeakMap<CausalLM, TokenLogprobHead>();

function headFor(model: CausalLM, opts: OrpoOptions): TokenLogprobHead {
  if (opts.head) return opts.head;
  let head = defaultHeads.get(model);
  if (!head) {
    head = new UnfusedLogprobHead(model.kernels, model.precision);
    defaultHeads.set(model, head);
  }
  return head;
}

/** the forward layout for this batch: one row per pair with a shared prompt unless opts.sharePrompt is false */
export function forwardRows(batch: PackedBatch, opts: Pick<OrpoOptions, 'sharePrompt'>): ForwardRows {
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
  let M = 0;
  for (let n = 0; n < all.length; n++) if (all[n] >= 0) M++;
  const scored: ScoredTokens = { hiddenRows: new Int32Array(M), targets: new Int32Array(M), at: new Int32Array(M) };
  let i = 0;
  for (let n = 0; n < all.length; n++) {
    if (all[n] < 0) continue;
    scored.hiddenRows[i] = rows.index[n];
    scored.targets[i] = all[n];
    scored.at[i++] = n;
  }
  return scored;
}

/** forward through the model and the head: per-token log-probs in the batch's (R*T) layout */
function forwardLogps(model: CausalLM, batch: PackedBatch, head: TokenLogprobHead, rows: ForwardRows,
  scored: ScoredTokens): Float64Array {
  const { hidden } = model.forward(rows.ids, rows.B, rows.T, rows.packing);
  const c = model.config;
  const lp = head.forward(hidden, model.headWeight(), scored.hiddenRows, scored.targets, c.hiddenSize, c.vocabSize);
  // float64 whatever the model computes in: float64 models (finite-difference tests) must not round here
  const logp = new Float64Array(batch.rows * batch.T);
  scored.at.forEach((n, i) => { logp[n] = lp[i]; });
  return logp;
}

/** Forward + backward of the ORPO loss on one batch; ACCUMULATES into model.grads (zero them per optimizer step). */
export function orpoStep(model: CausalLM, batch: PackedBatch, opts: OrpoOptions): OrpoLossResult {
  const head = headFor(model, opts);
  const rows = forwardRows(batch, opts);
  const scored = scoredTokens(batch, rows);
  const logp = forwardLogps(model, batch, head, rows, scored);
  const result = orpoLossFromLogps(logp, batch, opts);
  const dlogp = new Float64Array(scored.at.length);
  scored.at.forEach((n, i) => { dlogp[i] = result.dlogp[n]; });
  const dhidden = model.alloc(rows.B * rows.T * model.config.hiddenSize);
  head.backward(dhidden, model.trainBase ? model.headGrad() : null, dlogp);
  model.backward(dhidden);
  return result;
}

/** Forward only: loss, metrics and per-pair average log-probs. */
export function orpoEvaluate(model: CausalLM, batch: PackedBatch, opts: OrpoOptions): OrpoLossResult {
  const rows = forwardRows(batch, opts);
  const logp = forwardLogps(model, batch, headFor(model, opts), rows, scoredTokens(batch, rows));
  return orpoLossFromLogps(logp, batch, opts);
}

/**
 * The public one-call API: loss, TRL metrics and the gradient of every parameter for a batch of token-id pairs,
 * keyed by the checkpoint's Hugging Face parameter names, in the checkpoint's layout (GPT-2 Conv1D as (in, out)).
 */
export function orpoForwardBackward(model: CausalLM, batch: PreferenceBatch,
  opts: { beta?: number; sftScope?: SftScope; sharePrompt?: boolean } = {}): { loss: number; metrics: OrpoMetrics; grads: Map<string, Float32Array> } {
  const packed = collatePairs(batch.pairs, batch.pad_token_id);
  model.zeroGrad();
  const r = orpoStep(model, packed, { beta: opts.beta ?? 0.1, sftScope: opts.sftScope ?? 'full', sharePrompt: opts.sharePrompt ?? true });
  // copies: the caller keeps them across later steps, which overwrite model.grads
  const grads = new Map(hfLayoutTensors(model.layout, model.grads).map((t) =>
    [t.name, t.data.buffer === model.grads.buffer ? t.data.slice() : t.data] as const));
  return { loss: r.loss, metrics: r.metrics, grads };
}
