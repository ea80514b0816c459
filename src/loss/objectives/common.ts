// Pieces two or more objectives share.
import { METRIC as M } from '../metric-names.js';
import type { SequenceScores, SftScope } from '../objective.js';
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

/** TRL's rewards/* metrics from per-pair rewards */
export function rewardMetrics(rc: Float64Array, rr: Float64Array): Record<string, number> {
  const n = rc.length;
  let c = 0;
  let r = 0;
  let wins = 0;
  let margin = 0;
  for (let i = 0; i < n; i++) {
    c += rc[i];
    r += rr[i];
    if (rc[i] > rr[i]) wins++;
    margin += rc[i] - rr[i];
  }
  return { [M.rewardsChosen]: c / n, [M.rewardsRejected]: r / n, [M.rewardsAccuracies]: wins / n, [M.rewardsMargins]: margin / n };
}

export function mean(x: Float64Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s / x.length;
}
