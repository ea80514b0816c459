// ORPO metrics of a model on a set of pairs, forward only, batch by batch (`orpo eval`, the trainer's
// evaluations and the demo's before/after numbers).

import type { TokenPair } from '../data/collate.js';
import { collatePairs } from '../data/collate.js';
import { countNllTokens, orpoEvaluate, type OrpoMetrics } from '../loss/orpo.js';
import type { TokenLogprobHead } from '../loss/logprob-head.js';
import type { CausalLM } from '../model/types.js';
import { MetricAccumulator } from './metrics.js';

export interface EvaluateOptions {
  beta: number;
  sftScope: 'full' | 'response';
  /** one row per pair with the prompt shared (default true; see loss/pair-rows.ts) */
  sharePrompt?: boolean;
  batchSize: number;
  padTokenId: number;
  /** the loss head (e.g. the fused, chunked one); default: the unfused reference */
  head?: TokenLogprobHead;
}

export interface EvaluateResult {
  metrics: OrpoMetrics;
  pairs: number;
  tokens: number;
  /** per pair, in input order: the length-normalised log-probs of chosen and rejected */
  logpsChosen: Float64Array;
  logpsRejected: Float64Array;
}

export function evaluatePairs(model: CausalLM, pairs: readonly TokenPair[], opts: EvaluateOptions): EvaluateResult {
  if (pairs.length === 0) throw new Error('evaluatePairs: no pairs to evaluate');
  const acc = new MetricAccumulator();
  const logpsChosen = new Float64Array(pairs.length);
  const logpsRejected = new Float64Array(pairs.length);
  let tokens = 0;
  for (let start = 0; start < pairs.length; start += opts.batchSize) {
    const batch = collatePairs(pairs.slice(start, start + opts.batchSize), opts.padTokenId);
    const out = orpoEvaluate(model, batch, { beta: opts.beta, sftScope: opts.sftScope, sharePrompt: opts.sharePrompt ?? true,
      ...(opts.head ? { head: opts.head } : {}) });
    acc.add(out.metrics, batch.nPairs, countNllTokens(batch, opts.sftScope));
    logpsChosen.set(out.logpsChosen, start);
    logpsRejected.set(out.logpsRejected, start);
    tokens += batch.tokens;
  }
  return { metrics: acc.result(opts.beta), pairs: pairs.length, tokens, logpsChosen, logpsRejected };
}
