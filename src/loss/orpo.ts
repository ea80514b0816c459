// ORPO's entry points, kept for the library's users: each is the generic objective machinery (preference.ts,
// sequence-logps.ts) with the ORPO objective (objectives/orpo.ts). See ../shared/fixtures/README.md.
import type { FloatArray } from '../backend/kernels.js';
import type { PackedBatch, PreferenceBatch } from '../data/collate.js';
import type { CausalLM } from '../model/types.js';
import type { TokenLogprobHead } from './logprob-head.js';
import type { Metrics } from './metric-names.js';
import type { ObjectiveResult, SftScope, Units } from './objective.js';
import { orpoObjective } from './objectives/orpo.js';
import { objectiveEvaluate, objectiveStep, preferenceForwardBackward } from './preference.js';
import { unitsOf } from './sequence-logps.js';

export { buildTargets, countNllTokens, forwardRows } from './sequence-logps.js';
export type { SftScope } from './objective.js';

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
  /** one row per pair with the prompt shared (default true), or TRL's two rows */
  sharePrompt?: boolean;
}

/** TRL's metric names */
export type OrpoMetrics = Metrics;

export type OrpoLossResult = ObjectiveResult;

function stepUnits(batch: PackedBatch, opts: OrpoOptions): Units {
  const own = unitsOf(batch, opts.sftScope);
  return { ...own, nllTokens: opts.nllDenominator ?? own.nllTokens, pairs: opts.pairDenominator ?? own.pairs };
}

/** The ORPO loss, TRL metrics and d loss / d logp from per-token log-probs (R*T), all sums in float64. */
export function orpoLossFromLogps(logp: FloatArray, batch: PackedBatch, opts: OrpoOptions): OrpoLossResult {
  const objective = orpoObjective(opts);
  return objective.compute({ batch, logp: Float64Array.from(logp), meanLogit: null, hit: null, reference: null }, stepUnits(batch, opts));
}

/** Forward + backward of the ORPO loss on one batch; ACCUMULATES into model.grads (zero them per optimizer step). */
export function orpoStep(model: CausalLM, batch: PackedBatch, opts: OrpoOptions): Promise<OrpoLossResult> {
  return objectiveStep(model, batch, orpoObjective(opts), { head: opts.head, sharePrompt: opts.sharePrompt, stepUnits: stepUnits(batch, opts) });
}

/** Forward only: loss, metrics and per-pair average log-probs. */
export function orpoEvaluate(model: CausalLM, batch: PackedBatch, opts: OrpoOptions): Promise<OrpoLossResult> {
  return objectiveEvaluate(model, batch, orpoObjective(opts), { head: opts.head, sharePrompt: opts.sharePrompt });
}

/**
 * Loss, TRL metrics and the gradient of every parameter for a batch of token-id pairs, keyed by the checkpoint's
 * Hugging Face parameter names, in the checkpoint's layout (GPT-2 Conv1D as (in, out)).
 */
export function orpoForwardBackward(model: CausalLM, batch: PreferenceBatch,
  opts: { beta?: number; sftScope?: SftScope; sharePrompt?: boolean } = {}): Promise<{ loss: number; metrics: OrpoMetrics; grads: Map<string, Float32Array> }> {
  return preferenceForwardBackward(model, batch, { method: 'orpo', beta: opts.beta ?? 0.1, sftScope: opts.sftScope ?? 'full', sharePrompt: opts.sharePrompt ?? true });
}
