// An objective's metrics (plus the method-neutral ones) of a model on a set of pairs, forward only, batch by batch
// (`orpo eval`, the trainer's evaluations, `orpo compare` and the demo's before/after numbers).

import type { TokenPair } from '../data/collate.js';
import { collatePairs } from '../data/collate.js';
import type { TokenLogprobHead } from '../loss/logprob-head.js';
import type { Metrics } from '../loss/metric-names.js';
import type { Objective, ReferenceLogps } from '../loss/objective.js';
import { objectiveEvaluate } from '../loss/preference.js';
import type { ReferenceModel } from '../loss/reference.js';
import type { CausalLM } from '../model/types.js';
import { MetricAccumulator } from './metrics.js';

export interface EvaluateOptions<F = Float32Array, I = Int32Array> {
  objective: Objective;
  /** one row per pair with the prompt shared (default true; see loss/pair-rows.ts) */
  sharePrompt?: boolean;
  batchSize: number;
  padTokenId: number;
  /** the loss head (e.g. the fused, chunked one); default: the unfused reference */
  head?: TokenLogprobHead<F, I>;
  /** the objective's reference model (DPO), or its log-probs of every pair (in the order of `pairs`), precomputed */
  reference?: ReferenceModel | ReferenceLogps | null;
  /** after every batch: pairs evaluated so far, of `total` (for a progress line: a large eval set takes minutes) */
  onProgress?: (done: number, total: number) => void;
}

export interface EvaluateResult {
  metrics: Metrics;
  pairs: number;
  tokens: number;
  /** evaluation batches run, and their wall time (transformers' eval_steps_per_second and eval_runtime) */
  batches: number;
  seconds: number;
  /** per pair, in input order: the mean response log-probs of chosen and rejected */
  logpsChosen: Float64Array;
  logpsRejected: Float64Array;
}

export async function evaluatePairs<F, I>(model: CausalLM<F, I>, pairs: readonly TokenPair[], opts: EvaluateOptions<F, I>): Promise<EvaluateResult> {
  if (pairs.length === 0) throw new Error('evaluatePairs: no pairs to evaluate');
  const started = performance.now();
  let batches = 0;
  const acc = new MetricAccumulator(opts.objective);
  const logpsChosen = new Float64Array(pairs.length);
  const logpsRejected = new Float64Array(pairs.length);
  let tokens = 0;
  for (let start = 0; start < pairs.length; start += opts.batchSize) {
    const batch = collatePairs(pairs.slice(start, start + opts.batchSize), opts.padTokenId);
    const ref = opts.reference ?? null;
    const end = start + batch.nPairs;
    const reference = ref === null || 'logps' in ref ? ref : { chosen: ref.chosen.subarray(start, end), rejected: ref.rejected.subarray(start, end) };
    const out = await objectiveEvaluate(model, batch, opts.objective, { sharePrompt: opts.sharePrompt ?? true, head: opts.head, reference });
    acc.add(out.metrics, opts.objective.units(batch));
    logpsChosen.set(out.meanLogpsChosen, start);
    logpsRejected.set(out.meanLogpsRejected, start);
    tokens += batch.tokens;
    batches++;
    opts.onProgress?.(end, pairs.length);
  }
  return { metrics: acc.result(), pairs: pairs.length, tokens, batches, seconds: (performance.now() - started) / 1000, logpsChosen, logpsRejected };
}
