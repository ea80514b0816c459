// ORPO (Hong, Lee, Thorne 2024) as TRL's ORPOTrainer computes it:
//   loss = nll(chosen) − λ · mean(logσ(log_odds(mean logp chosen, mean logp rejected)))
// `beta` is the paper's λ. See ../shared/fixtures/README.md for the exact definitions.
import { METRIC as M } from '../metric-names.js';
import { oddsRatio } from '../odds-ratio.js';
import type { Objective, ObjectiveResult, SequenceScores, SftScope, Units } from '../objective.js';
import { addResponseGrad, responseLogps, unitsOf } from '../sequence-logps.js';
import { chosenNll, logitMetrics } from './common.js';

export interface OrpoObjectiveOptions {
  /** λ: weight of the odds-ratio term (TRL default 0.1) */
  beta: number;
  /** tokens the NLL term covers: prompt and response ('full', TRL) or the response only */
  sftScope: SftScope;
}

export function orpoObjective(o: OrpoObjectiveOptions): Objective {
  const { beta, sftScope } = o;
  return {
    method: 'orpo',
    options: { beta, sft_scope: sftScope },
    trainRows: 'pairs',
    needsReference: false,
    needsLogitStats: true,
    combine: {
      [M.loss]: 'derived', [M.nllLoss]: 'nllTokens', [M.logOddsRatio]: 'pairs', [M.logOddsChosen]: 'pairs',
      [M.logpsChosen]: 'pairs', [M.logpsRejected]: 'pairs', [M.rewardsChosen]: 'pairs', [M.rewardsRejected]: 'pairs',
      [M.rewardsAccuracies]: 'pairs', [M.rewardsMargins]: 'pairs', [M.logitsChosen]: 'chosenTokens', [M.logitsRejected]: 'rejectedTokens',
    },
    units: (batch) => unitsOf(batch, sftScope),
    derive(m) {
      m[M.loss] = m[M.nllLoss]! - beta * m[M.logOddsRatio]!;
    },
    compute(s: SequenceScores, stepUnits?: Units): ObjectiveResult {
      const { batch } = s;
      const n = batch.nPairs;
      const own = unitsOf(batch, sftScope);
      const step = stepUnits ?? own;
      const dlogp = new Float64Array(batch.rows * batch.T);
      const nllSum = chosenNll(s, sftScope, step.nllTokens, dlogp);
      const lc = responseLogps(s, true, 0, n);
      const lr = responseLogps(s, true, n, n);
      let ratioSum = 0;
      let logOddsSum = 0;
      let lcSum = 0;
      let lrSum = 0;
      let wins = 0;
      let marginSum = 0;
      for (let i = 0; i < n; i++) {
        const or = oddsRatio(lc[i], lr[i]);
        ratioSum += or.logSigmoid;
        logOddsSum += or.logOdds;
        lcSum += lc[i];
        lrSum += lr[i];
        if (beta * lc[i] > beta * lr[i]) wins++;
        marginSum += beta * (lc[i] - lr[i]);
        // d loss / d mean logp = −λ / pairs · d logσ / d mean logp
        addResponseGrad(dlogp, batch, i, (-beta / step.pairs) * or.dLc, true);
        addResponseGrad(dlogp, batch, n + i, (-beta / step.pairs) * or.dLr, true);
      }
      const nll = nllSum / own.nllTokens;
      const metrics = {
        [M.loss]: nll - (beta * ratioSum) / n,
        [M.nllLoss]: nll,
        [M.logOddsRatio]: ratioSum / n,
        [M.logOddsChosen]: logOddsSum / n,
        [M.logpsChosen]: lcSum / n,
        [M.logpsRejected]: lrSum / n,
        [M.rewardsChosen]: (beta * lcSum) / n,
        [M.rewardsRejected]: (beta * lrSum) / n,
        [M.rewardsAccuracies]: wins / n,
        [M.rewardsMargins]: marginSum / n,
        ...logitMetrics(s),
      };
      return { loss: nllSum / step.nllTokens - (beta * ratioSum) / step.pairs, dlogp, metrics, logpsChosen: lc, logpsRejected: lr };
    },
  };
}
