// DPO (Rafailov et al. 2023) as TRL's DPOTrainer computes it. π = the policy's SUMMED response log-probs, ref = the
// same under the frozen reference model, z = (π_c − ref_c) − (π_r − ref_r):
//   sigmoid (default)  loss = mean(−logσ(β z))
//   hinge              loss = mean(relu(1 − β z))           (SLiC)
//   ipo                loss = mean((z − 1/(2β))²)            with π and ref the MEAN response log-probs, as TRL's ipo
// rewards = β (π − ref); logps/* = mean π; logits/* = the mean logit over the response tokens.
import { METRIC as M } from '../metric-names.js';
import type { Objective, ObjectiveResult, SequenceScores, Units } from '../objective.js';
import { addResponseGrad, responseLogps, responseSpan, unitsOf } from '../sequence-logps.js';
import { logitMetrics, mean, negLogSigmoid, PREFERENCE_COMBINE, rewardMetrics } from './common.js';

export type DpoLossType = 'sigmoid' | 'hinge' | 'ipo';
export const DPO_LOSS_TYPES: readonly DpoLossType[] = ['sigmoid', 'hinge', 'ipo'];

export interface DpoObjectiveOptions {
  beta: number;
  lossType: DpoLossType;
}

/** loss of one pair and d loss / d z */
function pairLoss(lossType: DpoLossType, beta: number, z: number): { value: number; grad: number } {
  switch (lossType) {
    case 'sigmoid': {
      const l = negLogSigmoid(beta * z);
      return { value: l.value, grad: beta * l.grad };
    }
    case 'hinge':
      return 1 - beta * z > 0 ? { value: 1 - beta * z, grad: -beta } : { value: 0, grad: 0 };
    case 'ipo': {
      const d = z - 1 / (2 * beta);
      return { value: d * d, grad: 2 * d };
    }
  }
}

export function dpoObjective(o: DpoObjectiveOptions): Objective {
  const { beta, lossType } = o;
  const average = lossType === 'ipo';
  return {
    method: 'dpo',
    options: { beta, loss_type: lossType },
    trainRows: 'pairs',
    needsReference: true,
    needsLogitStats: true,
    combine: PREFERENCE_COMBINE,
    units: (batch) => unitsOf(batch, 'response'),
    compute(s: SequenceScores, stepUnits?: Units): ObjectiveResult {
      const { batch } = s;
      if (s.reference === null) throw new Error('dpo: no reference log-probs (give a reference model, or precompute them)');
      const n = batch.nPairs;
      const pairs = stepUnits?.pairs ?? n;
      const pc = responseLogps(s, average, 0, n);
      const pr = responseLogps(s, average, n, n);
      // the reference is summed; ipo compares means
      const refOf = (side: Float64Array, first: number): Float64Array => (average
        ? side.map((v, i) => { const [a, b] = responseSpan(batch, first + i); return v / (b - a); })
        : side);
      const rc = refOf(s.reference.chosen, 0);
      const rr = refOf(s.reference.rejected, n);
      const dlogp = new Float64Array(batch.rows * batch.T);
      let lossSum = 0;
      for (let i = 0; i < n; i++) {
        const l = pairLoss(lossType, beta, (pc[i] - rc[i]) - (pr[i] - rr[i]));
        lossSum += l.value;
        addResponseGrad(dlogp, batch, i, l.grad / pairs, average);
        addResponseGrad(dlogp, batch, n + i, -l.grad / pairs, average);
      }
      const rewardsC = pc.map((v, i) => beta * (v - rc[i]));
      const rewardsR = pr.map((v, i) => beta * (v - rr[i]));
      const metrics = {
        [M.loss]: lossSum / n,
        ...rewardMetrics(rewardsC, rewardsR),
        [M.logpsChosen]: mean(pc),
        [M.logpsRejected]: mean(pr),
        ...logitMetrics(s),
      };
      return { loss: lossSum / pairs, dlogp, metrics, logpsChosen: pc, logpsRejected: pr };
    },
  };
}
