// One training or evaluation step of any objective: reference log-probs (if the objective needs them) -> the
// policy's forward to per-token log-probs -> the objective's loss, metrics and d loss / d logp -> backward.
// The public one-call API, preferenceForwardBackward, sits on top.
import { collatePairs, type PackedBatch, type PreferenceBatch } from '../data/collate.js';
import { hfLayoutTensors } from '../model/layout.js';
import type { CausalLM } from '../model/types.js';
import type { TokenLogprobHead } from './logprob-head.js';
import { METRIC as M, type Metrics } from './metric-names.js';
import type { Method, Objective, ObjectiveResult, ReferenceLogps, SftScope, Units } from './objective.js';
import { createObjective, type DpoLossType } from './objectives/index.js';
import { pairStats } from './objectives/common.js';
import { modelReference, type ReferenceModel } from './reference.js';
import { responseLogps, scoreBatch } from './sequence-logps.js';

export interface StepOptions<F = Float32Array, I = Int32Array> {
  head?: TokenLogprobHead<F, I>;
  /** one row per pair with the prompt shared (default true; pair-rows.ts), or TRL's two rows */
  sharePrompt?: boolean;
  /** the whole optimizer step's units (gradient accumulation); default this batch's */
  stepUnits?: Units;
  /** the reference's log-probs for this batch (precomputed), or the model that computes them */
  reference?: ReferenceLogps | ReferenceModel | null;
}

export interface StepResult extends ObjectiveResult {
  /** real tokens the policy ran */
  tokens: number;
}

export interface EvaluateStepResult extends StepResult {
  /** per pair: the mean response log-probs of chosen and rejected (method-neutral) */
  meanLogpsChosen: Float64Array;
  meanLogpsRejected: Float64Array;
}

async function referenceFor(objective: Objective, batch: PackedBatch, ref: StepOptions['reference']): Promise<ReferenceLogps | null> {
  if (!objective.needsReference) return null;
  if (ref === undefined || ref === null) throw new Error(`${objective.method}: needs a reference model (refModel / --ref-model) or precomputed reference log-probs`);
  return 'logps' in ref ? await ref.logps(batch) : ref;
}

/** Forward + backward of `objective` on one batch; ACCUMULATES into the model's gradients (zero them per optimizer step). */
export async function objectiveStep<F, I>(model: CausalLM<F, I>, batch: PackedBatch, objective: Objective,
  opts: StepOptions<F, I> = {}): Promise<StepResult> {
  // the reference first: with LoRA it is this same model, and its forward would overwrite the policy's activations
  const reference = await referenceFor(objective, batch, opts.reference);
  const scored = await scoreBatch(model, batch, { head: opts.head, sharePrompt: opts.sharePrompt, rows: objective.trainRows, logitStats: objective.needsLogitStats });
  const result = objective.compute({ ...scored.scores, reference }, opts.stepUnits);
  scored.backward(result.dlogp);
  return { ...result, tokens: scored.tokens };
}

/**
 * Forward only, both rows of every pair whatever the method trains on: the objective's loss and metrics plus the
 * method-neutral ones (mean response log-probs of chosen and rejected, how often and by how much chosen wins), which
 * put every method on one scale.
 */
export async function objectiveEvaluate<F, I>(model: CausalLM<F, I>, batch: PackedBatch, objective: Objective,
  opts: StepOptions<F, I> = {}): Promise<EvaluateStepResult> {
  const reference = await referenceFor(objective, batch, opts.reference);
  const scored = await scoreBatch(model, batch, { head: opts.head, sharePrompt: opts.sharePrompt, rows: 'pairs', logitStats: objective.needsLogitStats });
  const s = { ...scored.scores, reference };
  const result = objective.compute(s, undefined);
  const n = batch.nPairs;
  const lc = responseLogps(s, true, 0, n);
  const lr = responseLogps(s, true, n, n);
  const st = pairStats(lc, lr);
  const neutral: Metrics = { [M.meanLogpChosen]: st.chosen, [M.meanLogpRejected]: st.rejected, [M.meanLogpAccuracy]: st.accuracy, [M.meanLogpMargin]: st.margin };
  return { ...result, metrics: { ...result.metrics, ...neutral }, tokens: scored.tokens, meanLogpsChosen: lc, meanLogpsRejected: lr };
}

export interface PreferenceOptions {
  method?: Method;
  /** ORPO's λ, DPO's and SimPO's β (defaults 0.1, 0.1, 2.0) */
  beta?: number;
  /** NLL tokens of ORPO (default 'full') and SFT (default 'response') */
  sftScope?: SftScope;
  /** DPO's loss_type */
  lossType?: DpoLossType;
  /** SimPO's γ */
  simpoGamma?: number;
  /** DPO's reference model (same architecture and vocabulary) */
  refModel?: CausalLM;
  sharePrompt?: boolean;
}

/**
 * The public one-call API: loss, TRL metrics and the gradient of every parameter for a batch of token-id pairs
 * under any method, keyed by the checkpoint's Hugging Face parameter names, in the checkpoint's layout.
 */
export async function preferenceForwardBackward(model: CausalLM, batch: PreferenceBatch, opts: PreferenceOptions = {}): Promise<{
  loss: number; metrics: Metrics; grads: Map<string, Float32Array>;
}> {
  const objective = createObjective(opts);
  const packed = collatePairs(batch.pairs, batch.pad_token_id);
  const reference = opts.refModel === undefined ? null : modelReference(opts.refModel, { sharePrompt: opts.sharePrompt, description: 'refModel' });
  model.zeroGrad();
  const r = await objectiveStep(model, packed, objective, { sharePrompt: opts.sharePrompt ?? true, reference });
  // copies: the caller keeps them across later steps, which overwrite model.grads
  const grads = new Map(hfLayoutTensors(model.layout, model.grads).map((t) =>
    [t.name, t.data.buffer === model.grads.buffer ? t.data.slice() : t.data] as const));
  return { loss: r.loss, metrics: r.metrics, grads };
}
