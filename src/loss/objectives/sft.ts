// Supervised fine-tuning on the chosen responses, as TRL's SFTTrainer on prompt-completion data: the mean NLL over
// the chosen rows' completion tokens, pooled over the batch (completion_only_loss, the default: sftScope
// 'response'), or over prompt and completion ('full'). The rejected responses are not used; training runs the
// chosen rows only.
import { METRIC as M } from '../metric-names.js';
import type { Objective, ObjectiveResult, SequenceScores, SftScope, Units } from '../objective.js';
import { nllStart, responseLogps, unitsOf } from '../sequence-logps.js';
import { chosenNll } from './common.js';

export interface SftObjectiveOptions {
  /** 'response' = SFTTrainer's completion_only_loss (default); 'full' = prompt tokens too */
  sftScope: SftScope;
}

export function sftObjective(o: SftObjectiveOptions): Objective {
  const { sftScope } = o;
  return {
    method: 'sft',
    options: { completion_only_loss: sftScope === 'response' },
    trainRows: 'chosen',
    needsReference: false,
    needsLogitStats: true,
    combine: { [M.loss]: 'nllTokens', [M.meanTokenAccuracy]: 'nllTokens' },
    units: (batch) => unitsOf(batch, sftScope),
    compute(s: SequenceScores, stepUnits?: Units): ObjectiveResult {
      const { batch } = s;
      const own = unitsOf(batch, sftScope);
      const step = stepUnits ?? own;
      const dlogp = new Float64Array(batch.rows * batch.T);
      const nllSum = chosenNll(s, sftScope, step.nllTokens, dlogp);
      const metrics: ObjectiveResult['metrics'] = { [M.loss]: nllSum / own.nllTokens };
      if (s.hit !== null) {
        // SFTTrainer's mean_token_accuracy: the argmax is the target, over the tokens of the loss
        let hits = 0;
        for (let r = 0; r < batch.nPairs; r++) {
          for (let t = nllStart(batch, r, sftScope); t < batch.lengths[r] - 1; t++) hits += s.hit[r * batch.T + t];
        }
        metrics[M.meanTokenAccuracy] = hits / own.nllTokens;
      }
      const n = batch.nPairs;
      return { loss: nllSum / step.nllTokens, dlogp, metrics, logpsChosen: responseLogps(s, true, 0, n), logpsRejected: new Float64Array(n).fill(NaN) };
    },
  };
}
