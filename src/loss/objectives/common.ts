// Pieces two or more objectives share.
import { METRIC as M } from '../metric-names.js';
import type { Objective, SequenceScores, SftScope } from '../objective.js';
import { nllStart, responseTokenMean } from '../sequence-logps.js';
import { logSigmoid, sigmoid } from '../odds-ratio.js';

/** The NLL over the chosen rows' `scope` tokens: returns its sum and adds d(sum / denominator) / d logp into dlogp. */
export function chosenNll(s: SequenceScores, scope: SftScope, denominator: number, dlogp: Float64Array): number {
  const { batch, logp } = s;
  let sum = 0;
  for (let r = 0; r < batch.nPairs; r++) {
    for (let t = nllStart(batch, r, scope); t < batch.lengths[r] - 1; t++) {
      sum -= logp[r * batch.T + t];
      dlogp[r * batch.T + t] -= 1 / denominator;
    }
  }
  return sum;
}

/** TRL's logits/chosen and logits/rejected: the mean logit over the vocabulary, pooled over the response tokens */
export function logitMetrics(s: SequenceScores): { 'logits/chosen'?: number; 'logits/rejected'?: number } {
  if (s.meanLogit === null) return {};
  const n = s.batch.nPairs;
  return { [M.logitsChosen]: responseTokenMean(s.meanLogit, s.batch, 0, n), [M.logitsRejected]: responseTokenMean(s.meanLogit, s.batch, n, n) };
}

/** −logσ(z) and its derivative d/dz = −σ(−z), without overflow (DPO's sigmoid loss, SimPO) */
export function negLogSigmoid(z: number): { value: number; grad: number } {
  return { value: -logSigmoid(z), grad: -sigmoid(-z) };
}

/** per-pair values of chosen and rejected -> their means, how often chosen is larger, and the mean difference */
export function pairStats(c: Float64Array, r: Float64Array): { chosen: number; rejected: number; accuracy: number; margin: number } {
  const n = c.length;
  let cs = 0;
  let rs = 0;
  let wins = 0;
  for (let i = 0; i < n; i++) {
    cs += c[i];
    rs += r[i];
    if (c[i] > r[i]) wins++;
  }
  return { chosen: cs / n, rejected: rs / n, accuracy: wins / n, margin: (cs - rs) / n };
}

/** TRL's rewards/* metrics from per-pair rewards */
export function rewardMetrics(rc: Float64Array, rr: Float64Array): Record<string, number> {
  const s = pairStats(rc, rr);
  return { [M.rewardsChosen]: s.chosen, [M.rewardsRejected]: s.rejected, [M.rewardsAccuracies]: s.accuracy, [M.rewardsMargins]: s.margin };
}

/** DPO's and SimPO's metrics, each a mean over pairs but TRL's logits/*, pooled over response tokens */
export const PREFERENCE_COMBINE: Objective['combine'] = {
  [M.loss]: 'pairs', [M.rewardsChosen]: 'pairs', [M.rewardsRejected]: 'pairs', [M.rewardsAccuracies]: 'pairs',
  [M.rewardsMargins]: 'pairs', [M.logpsChosen]: 'pairs', [M.logpsRejected]: 'pairs',
  [M.logitsChosen]: 'chosenTokens', [M.logitsRejected]: 'rejectedTokens',
};

export function mean(x: Float64Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s / x.length;
}
