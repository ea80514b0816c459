// SimPO (Meng et al. 2024) as TRL's CPOTrainer with loss_type "simpo" and cpo_alpha 0: no reference model,
// π = the MEAN response log-prob, loss = mean(−logσ(β (π_c − π_r) − γ)). rewards = β π, logps/* = mean π.
import { METRIC as M } from '../metric-names.js';
import type { Objective, ObjectiveResult, SequenceScores, Units } from '../objective.js';
import { addResponseGrad, responseLogps, unitsOf } from '../sequence-logps.js';
import { logitMetrics, mean, negLogSigmoid, PREFERENCE_COMBINE, rewardMetrics } from './common.js';

export interface SimpoObjectiveOptions {
  /** β (CPOConfig's beta; SimPO's recommended 2.0) */
  beta: number;
  /** γ, the target reward margin (simpo_gamma, default 0.5) */
  gamma: number;
}

export function simpoObjective(o: SimpoObjectiveOptions): Objective {
  const { beta, gamma } = o;
  return {
    method: 'simpo',
    options: { beta, simpo_gamma: gamma },
    trainRows: 'pairs',
    needsReference: false,
    needsLogitStats: true,
    combine: PREFERENCE_COMBINE,
    units: (batch) => unitsOf(batch, 'response'),
    compute(s: SequenceScores, stepUnits?: Units): ObjectiveResult {
      const { batch } = s;
      const n = batch.nPairs;
      const pairs = stepUnits?.pairs ?? n;
      const pc = responseLogps(s, true, 0, n);
      const pr = responseLogps(s, true, n, n);
      const dlogp = new Float64Array(batch.rows * batch.T);
      let lossSum = 0;
      for (let i = 0; i < n; i++) {
        const l = negLogSigmoid(beta * (pc[i] - pr[i]) - gamma);
        lossSum += l.value;
        addResponseGrad(dlogp, batch, i, (beta * l.grad) / pairs, true);
        addResponseGrad(dlogp, batch, n + i, (-beta * l.grad) / pairs, true);
      }
      const metrics = {
        [M.loss]: lossSum / n,
        ...rewardMetrics(pc.map((v) => beta * v), pr.map((v) => beta * v)),
        [M.logpsChosen]: mean(pc),
        [M.logpsRejected]: mean(pr),
        ...logitMetrics(s),
      };
      return { loss: lossSum / pairs, dlogp, metrics, logpsChosen: pc, logpsRejected: pr };
    },
  };
}
