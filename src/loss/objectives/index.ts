// The methods by name, with TRL's defaults: the one place that maps a method name to its objective.
import type { Method, Objective, SftScope } from '../objective.js';
import { dpoObjective, type DpoLossType } from './dpo.js';
import { orpoObjective } from './orpo.js';
import { sftObjective } from './sft.js';
import { simpoObjective } from './simpo.js';

export { DPO_LOSS_TYPES, type DpoLossType } from './dpo.js';

export interface ObjectiveOptions {
  method?: Method;
  /** ORPO's λ, DPO's β, SimPO's β; default per method (DEFAULT_BETA); SFT has none */
  beta?: number | null;
  /** NLL tokens: ORPO default 'full' (TRL's ORPOTrainer), SFT default 'response' (SFTTrainer's completion_only_loss) */
  sftScope?: SftScope | null;
  /** DPO's loss_type (default sigmoid) */
  lossType?: DpoLossType;
  /** SimPO's γ (simpo_gamma, default 0.5) */
  simpoGamma?: number;
}

/** TRL's defaults: ORPOConfig and DPOConfig beta 0.1; SimPO's recommended β 2.0 (CPOConfig with loss_type simpo) */
export const DEFAULT_BETA: Readonly<Record<Method, number | null>> = { orpo: 0.1, sft: null, dpo: 0.1, simpo: 2.0 };
export const DEFAULT_SFT_SCOPE: Readonly<Record<Method, SftScope | null>> = { orpo: 'full', sft: 'response', dpo: null, simpo: null };
export const DEFAULT_SIMPO_GAMMA = 0.5;

export function createObjective(o: ObjectiveOptions = {}): Objective {
  const method = o.method ?? 'orpo';
  const beta = o.beta ?? DEFAULT_BETA[method] ?? 0;
  const sftScope = o.sftScope ?? DEFAULT_SFT_SCOPE[method] ?? 'response';
  switch (method) {
    case 'orpo': return orpoObjective({ beta, sftScope });
    case 'sft': return sftObjective({ sftScope });
    case 'dpo': return dpoObjective({ beta, lossType: o.lossType ?? 'sigmoid' });
    case 'simpo': return simpoObjective({ beta, gamma: o.simpoGamma ?? DEFAULT_SIMPO_GAMMA });
  }
}
