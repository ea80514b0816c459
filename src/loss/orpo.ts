// ORPO as TRL's ORPOTrainer computes it, on one concatenated forward pass over chosen and rejected rows:
//   loss = nll(chosen) - beta * mean(logsigmoid(log_odds(avg logp chosen, avg logp rejected)))
// `beta` is the paper's λ. See ../shared/fixtures/README.md for the exact definitions.
import type { FloatArray } from '../backend/kernels.js';
import type { CausalLM } from '../model/types.js';
import { collatePairs, type PackedBatch, type PreferenceBatch } from '../data/collate.js';
import { UnfusedLogprobHead, type TokenLogprobHead } from './logprob-head.js';
import { oddsRatio } from './odds-ratio.js';
import { hfLayoutTensors } from '../model/layout.js';

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

function forwardLogps(model: CausalLM, batch: PackedBatch, head: TokenLogprobHead): Float32Array {
  const { hidden } = model.forward(batch.ids, batch.rows, batch.T);
  const c = model.config;
  return head.forward(hidden, model.headWeight(), buildTargets(batch), batch.rows * batch.T, c.hiddenSize, c.vocabSize);
}

/** Forward + backward of the ORPO loss on one batch; ACCUMULATES into model.grads (zero them per optimizer step). */
export function orpoStep(model: CausalLM, batch: PackedBatch, opts: OrpoOptions): OrpoLossResult {
  const head = headFor(model, opts);
  const logp = forwardLogps(model, batch, head);
  const result = orpoLossFromLogps(logp, batch, opts);
  const dhidden = model.alloc(batch.rows * batch.T * model.config.hiddenSize);
  head.backward(dhidden, model.trainBase ? model.headGrad() : null, result.dlogp);
  model.backward(dhidden);
  return result;
}

/** Forward only: loss, metrics and per-pair average log-probs. */
export function orpoEvaluate(model: CausalLM, batch: PackedBatch, opts: OrpoOptions): OrpoLossResult {
  const logp = forwardLogps(model, batch, headFor(model, opts));
  return orpoLossFromLogps(logp, batch, opts);
}

/**
 * The public one-call API: loss, TRL metrics and the gradient of every parameter for a batch of token-id pairs,
 * keyed by the checkpoint's Hugging Face parameter names, in the checkpoint's layout (GPT-2 Conv1D as (in, out)).
 */
export function orpoForwardBackward(model: CausalLM, batch: PreferenceBatch,
  opts: { beta?: number; sftScope?: SftScope } = {}): { loss: number; metrics: OrpoMetrics; grads: Map<string, Float32Array> } {
  const packed = collatePairs(batch.pairs, batch.pad_token_id);
  model.zeroGrad();
  const r = orpoStep(model, packed, { beta: opts.beta ?? 0.1, sftScope: opts.sftScope ?? 'full' });
  // copies: the caller keeps them across later steps, which overwrite model.grads
  const grads = new Map(hfLayoutTensors(model.layout, model.grads).map((t) =>
    [t.name, t.data.buffer === model.grads.buffer ? t.data.slice() : t.data] as const));
  return { loss: r.loss, metrics: r.metrics, grads };
}
